"""``repr=vector``: flat float32 features, for the classic agents (tabular, DQN, PPO).

- CartPole (``classic_control``): the 4 state floats, unchanged.
- MiniGrid: the 7x7x3 egocentric symbolic view (object, colour, state indices, flattened in
  MiniGrid's ``[x, y, channel]`` order), the direction one-hot (east, south, west, north) and the
  agent's ``(x / width, y / height)`` grid position: ``7 * 7 * 3 + 4 + 2 = 153`` floats. In one
  fixed grid the position makes it a Markov state; across maze layouts it is not (the view does not
  tell layouts apart): the maze's ``view=full`` gives the whole grid instead (``13 * 13 * 3 + 6``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers.vector import TransformObservation
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

from llmrl_bench.registry import register
from llmrl_bench.representations.base import Representation

if TYPE_CHECKING:
    from llmrl_bench.envs.base import EnvSuite

_CHANNEL_HIGHS = np.array([max(OBJECT_TO_IDX.values()), max(COLOR_TO_IDX.values()), max(STATE_TO_IDX.values())])
_DIRECTION_ONE_HOT = np.eye(4, dtype=np.float32)


def minigrid_vector_space(image_space: gym.spaces.Box) -> gym.spaces.Box:
    """The Box of MiniGrid vectors for images of ``image_space`` (MiniGrid's 7x7x3 view, or a wrapper's).

    Each channel's bound is MiniGrid's largest index, or the image space's own bound where it declares a
    tighter one than uint8's 255 (``env.view=full`` declares the agent's direction in the state channel).
    """
    declared = np.asarray(image_space.high)
    image_high = np.where(declared < 255, declared, np.broadcast_to(_CHANNEL_HIGHS, image_space.shape)).reshape(-1)
    high = np.concatenate([image_high, np.ones(4 + 2)]).astype(np.float32)
    return gym.spaces.Box(low=np.zeros_like(high), high=high, dtype=np.float32)


class MiniGridVector(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """MiniGrid dict observations as one flat float32 vector: view, direction one-hot, position."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        self._base = env.unwrapped  # agent_pos and grid size live on the raw MiniGridEnv
        self._image_size = int(np.prod(env.observation_space["image"].shape))
        self.observation_space = minigrid_vector_space(env.observation_space["image"])

    def observation(self, observation: dict[str, Any]) -> np.ndarray:
        n = self._image_size
        vector = np.empty(n + 6, dtype=np.float32)
        vector[:n] = observation["image"].reshape(-1)
        vector[n : n + 4] = _DIRECTION_ONE_HOT[observation["direction"]]
        x, y = self._base.agent_pos
        vector[n + 4] = x / self._base.width
        vector[n + 5] = y / self._base.height
        return vector


class MiniGridBatchVectorizer:
    """Batched MiniGrid dict observations -> ``(num_envs, 153)`` float32; positions via ``get_attr``."""

    def __init__(self, envs: gym.vector.VectorEnv):
        self.envs = envs

    def __call__(self, observations: dict[str, Any]) -> np.ndarray:
        images = np.asarray(observations["image"])
        num_envs = images.shape[0]
        positions = np.asarray(self.envs.get_attr("agent_pos"), dtype=np.float32).reshape(num_envs, 2)
        sizes = np.stack([self.envs.get_attr("width"), self.envs.get_attr("height")], axis=1).astype(np.float32)
        return np.concatenate(
            [images.reshape(num_envs, -1).astype(np.float32), _DIRECTION_ONE_HOT[observations["direction"]], positions / sizes],
            axis=1,
        )


class VectorRepresentation(Representation):
    """Flat float32 features (see the module docstring for the layout per env family)."""

    is_text = False

    def __init__(self, name: str = "vector"):
        self.name = name

    def wrap(self, env: gym.Env, suite: "EnvSuite") -> gym.Env:
        if suite.family == "classic_control":
            return env
        if suite.family == "minigrid":
            return MiniGridVector(env)
        raise ValueError(f"vector representation: unknown env family {suite.family!r}")

    def wrap_vec(self, envs: gym.vector.VectorEnv, suite: "EnvSuite") -> gym.vector.VectorEnv:
        if suite.family == "classic_control":
            return envs
        if suite.family == "minigrid":
            space = minigrid_vector_space(envs.single_observation_space["image"])
            return TransformObservation(envs, MiniGridBatchVectorizer(envs), single_observation_space=space)
        raise ValueError(f"vector representation: unknown env family {suite.family!r}")


@register("repr", "vector")
@dataclass
class VectorConfig:
    """Flat float32 features: CartPole's state, or MiniGrid's view + direction + position (``repr=vector``)."""

    _target_: str = "llmrl_bench.representations.vector.VectorRepresentation"
    name: str = "vector"
    """Representation name in results."""
