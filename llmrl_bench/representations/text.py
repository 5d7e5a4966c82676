"""``repr=text``: deterministic natural-language observations, for the LLM agents.

The pure functions :func:`describe_minigrid` and :func:`describe_cartpole` turn one raw
observation into text; the wrappers apply them to single envs (an ``ObservationWrapper`` with a
``gymnasium.spaces.Text`` space) and, row by row, to vector envs (a tuple of strings).
The action names (``MINIGRID_ACTION_NAMES``, ``CARTPOLE_ACTION_NAMES``) are what the LLM agents'
prompts list (``agents/llm_policy.py``). The format is documented, with examples, in
``docs/representations.md``.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

import gymnasium as gym
import numpy as np
from gymnasium.wrappers.vector import TransformObservation
from minigrid.core.constants import IDX_TO_COLOR, OBJECT_TO_IDX

from llmrl_bench.registry import register
from llmrl_bench.representations.base import Representation

if TYPE_CHECKING:
    from llmrl_bench.envs.base import EnvSuite

#: Characters text observations may use (letters, digits, space, punctuation of the descriptions and missions).
TEXT_CHARSET = string.ascii_letters + string.digits + " .,;:!?'-/()"
#: Longest text observation allowed by the ``Text`` space.
TEXT_MAX_LENGTH = 4096

MINIGRID_ACTION_NAMES = ["turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done"]
#: The maze's default action space is MiniGrid's first three actions (turn left, turn right, go forward).
NUM_NAVIGATION_ACTIONS = 3
CARTPOLE_ACTION_NAMES = ["push the cart left", "push the cart right"]

#: MiniGrid's direction numbers as compass headings (x grows east, y grows south).
DIRECTION_NAMES = ("east", "south", "west", "north")

_UNSEEN = OBJECT_TO_IDX["unseen"]
_WALL = OBJECT_TO_IDX["wall"]
_DESCRIBED_OBJECTS = {OBJECT_TO_IDX[name]: name for name in ("door", "key", "ball", "box", "goal", "lava")}
_DOOR_STATES = ("open", "closed", "locked")


def _steps(count: int) -> str:
    return f"{count} step" if count == 1 else f"{count} steps"


def _place(right: int, ahead: int) -> str:
    """Where a cell is, relative to the agent: ``right`` cells to its right (negative: left), ``ahead`` cells ahead."""
    side = f"{_steps(-right)} left" if right < 0 else f"{_steps(right)} right" if right > 0 else ""
    front = f"{_steps(ahead)} ahead" if ahead > 0 else ""
    return " and ".join(part for part in (side, front) if part)


def _noun(cell: np.ndarray) -> str:
    """``cell`` (object, colour, state indices) as a noun phrase with its article."""
    kind = _DESCRIBED_OBJECTS[int(cell[0])]
    colour = IDX_TO_COLOR[int(cell[1])]
    if kind == "goal":
        return f"the {colour} goal"
    if kind == "lava":
        return "lava"
    if kind == "door":
        state = _DOOR_STATES[int(cell[2])]
        return f"{'an' if state == 'open' else 'a'} {state} {colour} door"
    return f"a {colour} {kind}"


def describe_minigrid(observation: Mapping[str, Any]) -> str:
    """One MiniGrid observation (dict of ``image``, ``direction``, ``mission``) in words.

    Format: ``"You face <heading>. <items>. [You carry <object>. ]Mission: <mission>"`` where
    ``<items>`` joins with ``"; "`` first the nearest wall straight ahead, directly left and
    directly right (each only if seen), then every visible door, key, ball, box, goal and lava
    cell, nearest first (by steps left/right plus steps ahead, then fewer steps ahead, then
    left before right). Places read ``"1 step left and 3 steps ahead"``. Unseen cells (behind
    walls) are not described; with nothing to describe, ``<items>`` is ``Nothing in sight``.
    """
    image = np.asarray(observation["image"])
    width, height = image.shape[:2]
    agent_x, agent_y = width // 2, height - 1  # the agent sits bottom-centre of its view, facing up
    objects = image[..., 0]

    items = []
    rays = (
        ((agent_x, agent_y - d) for d in range(1, height)),
        ((agent_x - d, agent_y) for d in range(1, agent_x + 1)),
        ((agent_x + d, agent_y) for d in range(1, width - agent_x)),
    )
    for ray in rays:
        for x, y in ray:
            if objects[x, y] == _UNSEEN:
                break
            if objects[x, y] == _WALL:
                items.append(f"a wall {_place(x - agent_x, agent_y - y)}")
                break

    cells = [
        (abs(x - agent_x) + agent_y - y, agent_y - y, x - agent_x, x, y)
        for x, y in zip(*np.nonzero(np.isin(objects, list(_DESCRIBED_OBJECTS))))
        if (x, y) != (agent_x, agent_y)
    ]
    for _, ahead, right, x, y in sorted(cells):
        items.append(f"{_noun(image[x, y])} {_place(right, ahead)}")

    text = f"You face {DIRECTION_NAMES[int(observation['direction'])]}. "
    listing = "; ".join(items) if items else "nothing in sight"
    text += listing[0].upper() + listing[1:] + ". "
    carried = image[agent_x, agent_y]
    if int(carried[0]) in _DESCRIBED_OBJECTS:  # MiniGrid shows the carried object in the agent's own cell
        text += f"You carry {_noun(carried)}. "
    return text + f"Mission: {observation['mission']}"


def _number(value: float, digits: int) -> str:
    return f"{round(value, digits) + 0.0:.{digits}f}"  # + 0.0 turns -0.0 into 0.0


def describe_cartpole(observation: np.ndarray) -> str:
    """One CartPole observation ``[x, x_dot, theta, theta_dot]`` in words.

    Position in metres (2 decimals, positive right of centre), speed in m/s (2 decimals), pole
    angle and angular speed in degrees and degrees/s (1 decimal); a direction word replaces each
    sign except the position's (zero counts as right). Example:
    ``"Cart position 0.12 m, moving right at 0.45 m/s; pole angle 2.3 degrees to the right, rotating left at 0.8 degrees/s."``
    """
    x, x_dot, theta, theta_dot = (float(v) for v in observation)
    angle, angular_speed = math.degrees(theta), math.degrees(theta_dot)
    return (
        f"Cart position {_number(x, 2)} m, moving {'left' if x_dot < 0 else 'right'} at {_number(abs(x_dot), 2)} m/s; "
        f"pole angle {_number(abs(angle), 1)} degrees to the {'left' if angle < 0 else 'right'}, "
        f"rotating {'left' if angular_speed < 0 else 'right'} at {_number(abs(angular_speed), 1)} degrees/s."
    )


def text_space() -> gym.spaces.Text:
    """The observation space of text observations."""
    return gym.spaces.Text(max_length=TEXT_MAX_LENGTH, min_length=1, charset=TEXT_CHARSET)


class TextObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Observations turned into strings by ``describe`` (a pure function of one raw observation)."""

    def __init__(self, env: gym.Env, describe: Callable[[Any], str]):
        gym.utils.RecordConstructorArgs.__init__(self, describe=describe)
        gym.ObservationWrapper.__init__(self, env)
        self.describe = describe
        self.observation_space = text_space()

    def observation(self, observation: Any) -> str:
        return self.describe(observation)


class _BatchDescriber:
    """Batched raw observations -> tuple of strings, one ``describe`` call per row."""

    def __init__(self, describe: Callable[[Any], str]):
        self.describe = describe

    def __call__(self, observations: Any) -> tuple[str, ...]:
        if isinstance(observations, Mapping):  # dict spaces batch per key
            keys = list(observations)
            rows = [dict(zip(keys, values)) for values in zip(*(observations[key] for key in keys))]
        else:
            rows = list(observations)
        return tuple(self.describe(row) for row in rows)


def describer(suite: "EnvSuite") -> Callable[[Any], str]:
    """The ``describe_*`` function for ``suite``'s env family."""
    if suite.family == "minigrid":
        return describe_minigrid
    if suite.family == "classic_control":
        return describe_cartpole
    raise ValueError(f"text representation: unknown env family {suite.family!r}")


class TextRepresentation(Representation):
    """Deterministic natural-language observations (``repr=text``)."""

    is_text = True

    def __init__(self, name: str = "text"):
        self.name = name

    def wrap(self, env: gym.Env, suite: "EnvSuite") -> gym.Env:
        return TextObservation(env, describer(suite))

    def wrap_vec(self, envs: gym.vector.VectorEnv, suite: "EnvSuite") -> gym.vector.VectorEnv:
        return TransformObservation(envs, _BatchDescriber(describer(suite)), single_observation_space=text_space())


@register("repr", "text")
@dataclass
class TextConfig:
    """Natural-language observations for LLM agents (``repr=text``)."""

    _target_: str = "llmrl_bench.representations.text.TextRepresentation"
    name: str = "text"
    """Representation name in results."""
