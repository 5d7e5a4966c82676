"""What the runner needs from an environment: a training split, held-out contexts, a score range.

An env config (``conf/env/*.yaml``) instantiates an :class:`EnvSuite` through ``_target_``.
Environments themselves are plain Gymnasium envs registered by id; the suite only says
which ids/contexts form the training distribution and which are held out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from hydra.utils import get_class

if TYPE_CHECKING:
    from llmrl_bench.representations.base import Representation

TRAIN = "train"

#: Evaluation episodes are reset with seeds from here on, never used in training.
EVAL_SEED_OFFSET = 1_000_003

#: OmegaConf resolver: ``gamma: ${recommended_gamma:0.99}`` is the env's recommended discount, else 0.99.
RECOMMENDED_GAMMA_RESOLVER = "recommended_gamma"


class EnvSuite(ABC):
    """One benchmark environment: its training distribution and its held-out variants.

    Attributes:
        name: short name used in results (``cartpole``, ``maze``, ``MiniGrid-Empty-5x5-v0``).
        gym_id: registered id of the training env, citable in a paper.
        score_range: (min, max) return, used to normalise metrics across envs.
        reward_threshold: return at which the env counts as solved (``learning_speed``).
        max_episode_steps: the training env's time limit.
        held_out_contexts: names of the held-out variants, never seen in training.
        family: ``"classic_control"`` or ``"minigrid"``; tells representations how to read observations.
        recommended_gamma: the discount the env's reward is meant for (the maze's ``step_penalty``:
            0.9), or ``None``; agent configs read it through ``${recommended_gamma:<default>}``.

    Ceilings (best possible returns), for normalized returns and the optimality gap:

    - ``optimal_return(context, seed)``: the best return any policy earns in the episode that
      ``make(context).reset(seed=seed)`` starts, or ``None`` where the suite cannot say.
      Exact for the maze (every layout solved) and for MiniGrid grids of walls and a goal;
      CartPole gives its documented maximum, 500 (which a good controller reaches).
    - ``optimal_returns(context)``: one exact ceiling per layout of ``context``, in layout-index
      order (``reset(seed=s)`` plays layout ``s mod len``), where ``context`` has a fixed list of
      layouts (the maze with finite ``num_train_layouts``); ``None`` otherwise.
    """

    name: str
    gym_id: str
    score_range: tuple[float, float]
    reward_threshold: float | None
    max_episode_steps: int
    held_out_contexts: list[str]
    family: str
    recommended_gamma: float | None = None

    @classmethod
    def recommended_gamma_of(cls, env_cfg: Any) -> float | None:
        """The ``recommended_gamma`` of the suite that ``env_cfg`` (an ``env`` config node) builds, without building it."""
        return None

    def optimal_return(self, context: str, seed: int) -> float | None:
        """Best return of the episode ``make(context).reset(seed=seed)`` starts; ``None``: unknown (see the class docstring)."""
        return None

    def optimal_returns(self, context: str) -> np.ndarray | None:
        """Ceiling of each layout of ``context`` in layout-index order, where it has a fixed list of layouts; else ``None``."""
        return None

    @abstractmethod
    def make(self, context: str = TRAIN) -> gym.Env:
        """A raw env (no representation wrapper) of the training split or of one held-out context."""

    def make_vec(self, num_envs: int, representation: "Representation") -> gym.vector.VectorEnv:
        """``num_envs`` training envs stepped together, in ``representation``.

        Subclasses override this with a faster vectorisation where one exists (CartPole).
        """
        return gym.vector.SyncVectorEnv(
            [lambda: representation.wrap(self.make(TRAIN), self) for _ in range(num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
        )

    def normalize(self, value: float) -> float:
        """Map a return onto [0, 1] by the env's score range."""
        low, high = self.score_range
        return (value - low) / (high - low)


def recommended_gamma(default: float, *, _root_: Any) -> float:
    """Resolver of ``${recommended_gamma:<default>}``: the config's env's recommended discount, else ``default``.

    A user's ``agent.gamma=...`` replaces the interpolation, so it always wins.
    """
    env_cfg = _root_.get("env") if hasattr(_root_, "get") else None
    if env_cfg is None or "_target_" not in env_cfg:
        return default
    gamma = get_class(env_cfg._target_).recommended_gamma_of(env_cfg)
    return default if gamma is None else gamma
