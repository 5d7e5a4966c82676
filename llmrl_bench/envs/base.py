"""What the runner needs from an environment: a training split, held-out contexts, a score range.

An env config (``conf/env/*.yaml``) instantiates an :class:`EnvSuite` through ``_target_``.
Environments themselves are plain Gymnasium envs registered by id; the suite only says
which ids/contexts form the training distribution and which are held out.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np
from hydra.utils import get_class

from llmrl_bench import registry

TRAIN = "train"

#: Evaluation episodes are reset with seeds from here on, never used in training.
EVAL_SEED_OFFSET = 1_000_003

#: OmegaConf resolver: ``gamma: ${recommended_gamma:0.99}`` is the env's recommended discount, else 0.99
#: (``${recommended_gamma:}``: else the agent's own default).
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
            0.9), or ``None``; agent configs read it through ``${recommended_gamma:<fallback>}``.

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

    def make_native_vec(self, num_envs: int) -> gym.vector.VectorEnv | None:
        """``num_envs`` raw training envs in one natively vectorised env (autoreset mode NEXT_STEP),
        or ``None`` when the suite has none (the runner then steps single envs together)."""
        return None


def recommended_gamma(fallback: float | None = None, *, _parent_: Any, _root_: Any) -> float:
    """Resolver of ``gamma: ${recommended_gamma:<fallback>}`` in an agent's config (``conf/hparams/*_maze.yaml``).

    The discount the config's env recommends (``recommended_gamma_of``), else ``fallback``, else
    (``${recommended_gamma:}``) the default of the agent schema's ``gamma``. A user's
    ``agent.gamma=...`` replaces the interpolation, so it always wins.
    """
    env_cfg = _root_.get("env")
    if env_cfg is not None and "_target_" in env_cfg:
        gamma = get_class(env_cfg._target_).recommended_gamma_of(env_cfg)
        if gamma is not None:
            return gamma
    if fallback is not None:
        return fallback
    schema = registry.schema_of(str(_parent_._target_))
    return next(field.default for field in dataclasses.fields(schema) if field.name == "gamma")
