"""Map a generated text to one of the listed actions, in stages, recording which stage matched.

Stages, tried in order (docs/llm_agents.md#parser-stages):

1. ``exact``: the output, less surrounding whitespace, is a listed action.
2. ``normalised``: equal after :func:`normalise` (case, punctuation, runs of whitespace).
3. ``contained``: a listed action occurs as whole words inside the normalised output; the one
   that starts earliest in the output wins (the longest on a tie), so "turn left, then go
   forward" is ``turn left``.
4. ``invalid``: none of the above; the agent's ``llm.invalid_action`` decides what happens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Optional, Sequence

_NOT_WORD = re.compile(r"[^0-9a-z]+")


class ParseStage(str, Enum):
    """Which stage of :func:`parse_action` matched."""

    exact = "exact"
    normalised = "normalised"
    contained = "contained"
    invalid = "invalid"


@dataclass(frozen=True)
class ParsedAction:
    """The listed action an output names (its index, None when invalid) and the stage that found it."""

    index: Optional[int]
    stage: ParseStage


def normalise(text: str) -> str:
    """Lower case, every run of non-alphanumeric characters one space, no leading or trailing space."""
    return _NOT_WORD.sub(" ", text.lower()).strip()


def parse_action(output: str, actions: Sequence[str]) -> ParsedAction:
    """The listed action that ``output`` names (see the module docstring for the stages)."""
    stripped = output.strip()
    if stripped in actions:
        return ParsedAction(list(actions).index(stripped), ParseStage.exact)
    normalised_actions = [normalise(action) for action in actions]
    text = normalise(output)
    if text and text in normalised_actions:
        return ParsedAction(normalised_actions.index(text), ParseStage.normalised)
    padded = f" {text} "
    found = [(padded.find(f" {action} "), -len(action), i) for i, action in enumerate(normalised_actions) if action]
    found = [match for match in found if match[0] >= 0]
    if found:
        return ParsedAction(min(found)[2], ParseStage.contained)
    return ParsedAction(None, ParseStage.invalid)
