"""The staged parser of generated actions (``llmrl_bench.llm.parsing``)."""

from __future__ import annotations

import pytest

from llmrl_bench.llm.parsing import ParsedAction, ParseStage, normalise, parse_action

MAZE = ["go forward", "turn left", "turn right"]
MINIGRID = ["turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done"]


@pytest.mark.parametrize(
    "output, actions, index, stage",
    [
        ("go forward", MAZE, 0, ParseStage.exact),
        (" turn right", MAZE, 2, ParseStage.exact),                       # the space after "Action:"
        ("  turn left \t", MAZE, 1, ParseStage.exact),                     # padded
        ("Turn Left", MAZE, 1, ParseStage.normalised),                     # case
        ("turn left.", MAZE, 1, ParseStage.normalised),                    # punctuation
        ("'go   forward!'", MAZE, 0, ParseStage.normalised),               # quotes, inner whitespace
        ("turn-right", MAZE, 2, ParseStage.normalised),
        ("I will turn right now", MAZE, 2, ParseStage.contained),
        ("turn left, then go forward", MAZE, 1, ParseStage.contained),     # multi-action: the earliest in the output
        ("go forward or turn left", MAZE, 0, ParseStage.contained),
        ("Action: TURN RIGHT", MAZE, 2, ParseStage.contained),
        ("", MAZE, None, ParseStage.invalid),                              # empty
        ("   ", MAZE, None, ParseStage.invalid),
        ("forward", MAZE, None, ParseStage.invalid),                       # part of an action only
        ("turn leftwards", MAZE, None, ParseStage.invalid),                # not whole words
        ("x7#\u00e9\u00e9", MAZE, None, ParseStage.invalid),                # garbage
        ("pick up the key", MINIGRID, 3, ParseStage.contained),
        ("I am done", MINIGRID, 6, ParseStage.contained),
    ],
)
def test_parse_table(output, actions, index, stage):
    assert parse_action(output, actions) == ParsedAction(index, stage)


def test_earliest_then_longest_match_wins():
    # "go" and "go forward" both start at 0: the longer one; "stop" starts later.
    assert parse_action("go forward stop", ["stop", "go", "go forward"]) == ParsedAction(2, ParseStage.contained)


def test_normalise():
    assert normalise("  Go,  FORWARD!\n") == "go forward"
    assert normalise("...") == ""
