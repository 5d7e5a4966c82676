"""Standard MiniGrid ids as suites (``env=MiniGrid-Empty-5x5-v0`` and friends), held out by seed range.

Training episodes are reset with MiniGrid seeds drawn from ``[0, EVAL_SEED_OFFSET)``; held-out
episodes use MiniGrid seeds ``EVAL_SEED_OFFSET + s`` for a reset seed ``s``, so evaluation
episode ``i`` (reset seed ``EVAL_SEED_OFFSET + i``) plays MiniGrid seed ``2 * EVAL_SEED_OFFSET + i``,
a seed training never uses. Where MiniGrid registers a larger variant of the same task, it is a
second held-out context (``larger_size``), also on held-out seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import gymnasium as gym
import numpy as np
from omegaconf import MISSING

import llmrl_bench.envs.maze_solver as maze_solver
from llmrl_bench.registry import register
from llmrl_bench.envs.base import EVAL_SEED_OFFSET, TRAIN, EnvSuite

#: MiniGrid seeds of held-out episodes start here (reset seed s plays MiniGrid seed HELD_OUT_SEED_OFFSET + s).
HELD_OUT_SEED_OFFSET = EVAL_SEED_OFFSET

HELD_OUT_SEEDS = "held_out_seeds"
LARGER_SIZE = "larger_size"


def walls_and_goal(env: Any) -> maze_solver.WallsAndGoal | None:
    """The current grid of a raw MiniGrid env as a solver task, or ``None`` if it holds anything but walls and one goal."""
    walls = np.zeros((env.height, env.width), dtype=bool)
    goals = []
    for index, cell in enumerate(env.grid.grid):
        y, x = divmod(index, env.width)
        if cell is None:
            continue
        if cell.type == "wall":
            walls[y, x] = True
        elif cell.type == "goal":
            goals.append((x, y))
        else:
            return None
    if len(goals) != 1:
        return None
    return maze_solver.WallsAndGoal(walls, tuple(int(v) for v in env.agent_pos), int(env.agent_dir), goals[0])


class TrainingSeeds(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Resets the wrapped env only with seeds from the training range ``[0, EVAL_SEED_OFFSET)``.

    Each reset draws the inner seed from this wrapper's own generator; ``reset(seed=s)`` first
    reseeds that generator with ``s``. Evaluating the train split with evaluation seeds therefore
    plays training-range episodes, reproducibly.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._seed_rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._seed_rng = np.random.default_rng(seed)
        inner_seed = int(self._seed_rng.integers(0, EVAL_SEED_OFFSET))
        return self.env.reset(seed=inner_seed, options=options)


class HeldOutSeeds(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Resets the wrapped env only with held-out seeds, at or above ``HELD_OUT_SEED_OFFSET``.

    ``reset(seed=s)`` plays MiniGrid seed ``HELD_OUT_SEED_OFFSET + s``; each later ``reset()``
    plays the next seed.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._next_seed: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._next_seed = HELD_OUT_SEED_OFFSET + seed
        elif self._next_seed is None:
            self._next_seed = HELD_OUT_SEED_OFFSET + int(np.random.default_rng().integers(0, EVAL_SEED_OFFSET))
        inner_seed, self._next_seed = self._next_seed, self._next_seed + 1
        return self.env.reset(seed=inner_seed, options=options)


class MiniGridSuite(EnvSuite):
    """One registered MiniGrid id: training seeds for training, held-out seeds (and a larger variant) for evaluation.

    Contexts: ``held_out_seeds`` (same id, held-out seeds) and, when ``larger_gym_id`` is set,
    ``larger_size`` (that id, held-out seeds). Returns lie in [0, 1] (MiniGrid's
    ``1 - 0.9 * steps / max_steps`` on success).
    """

    family = "minigrid"
    score_range = (0.0, 1.0)

    def __init__(self, name: str, gym_id: str, reward_threshold: float, larger_gym_id: Optional[str] = None):
        self.name = name
        self.gym_id = gym_id
        self.reward_threshold = float(reward_threshold)
        self.larger_gym_id = larger_gym_id
        self.held_out_contexts = [HELD_OUT_SEEDS] + ([LARGER_SIZE] if larger_gym_id else [])
        probe = gym.make(gym_id)
        self.max_episode_steps = int(probe.unwrapped.max_steps)
        probe.close()

    def make(self, context: str = TRAIN) -> gym.Env:
        if context == TRAIN:
            return TrainingSeeds(gym.make(self.gym_id))
        if context == HELD_OUT_SEEDS:
            return HeldOutSeeds(gym.make(self.gym_id))
        if context == LARGER_SIZE and self.larger_gym_id:
            return HeldOutSeeds(gym.make(self.larger_gym_id))
        raise ValueError(f"unknown context {context!r} of {self.name}; expected {TRAIN!r} or one of {self.held_out_contexts}")

    def optimal_return(self, context: str, seed: int) -> float:
        """Exact where the episode's grid holds only walls and a goal (Empty, Empty-Random, FourRooms: breadth-first
        search over MiniGrid's moves); otherwise MiniGrid's documented maximum 1.0, an upper bound (DoorKey)."""
        env = self.make(context)
        env.reset(seed=seed)
        task = walls_and_goal(env.unwrapped)
        if task is None:
            return self.score_range[1]
        return maze_solver.optimal_return(task, "all", "default", env.unwrapped.max_steps)


@register("env", "minigrid")
@dataclass
class MiniGridConfig:
    """A standard MiniGrid id, held out by seed range and larger size (``env=MiniGrid-DoorKey-5x5-v0`` etc.)."""

    _target_: str = "llmrl_bench.envs.minigrid_ids.MiniGridSuite"
    name: str = MISSING
    """Suite name in results: the config option's name, which is the MiniGrid id."""
    gym_id: str = MISSING
    """Registered MiniGrid id of the training env."""
    reward_threshold: float = 0.9
    """Return at which the env counts as solved."""
    larger_gym_id: Optional[str] = None
    """Registered id of the larger variant held out as context ``larger_size`` (null: none)."""
