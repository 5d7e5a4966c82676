"""Benchmark environments: suites for the runner, Gymnasium ids registered on import.

Importing this package registers the ``LLMRL-*`` ids (and MiniGrid's own ids) with Gymnasium.
"""

from __future__ import annotations

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
from omegaconf import OmegaConf

from llmrl_bench.envs.base import EVAL_SEED_OFFSET, RECOMMENDED_GAMMA_RESOLVER, TRAIN, EnvSuite, recommended_gamma
from llmrl_bench.envs.cartpole import CARTPOLE_CONTEXTS, CartPoleConfig, CartPolePhysicsEnv, CartPoleSuite
from llmrl_bench.envs.maze import (
    DEFAULT_REWARD_THRESHOLD,
    HELD_OUT,
    MAZE_TRAIN_ID,
    REGISTERED_MAZE_SIZES,
    MazeConfig,
    MazeEnv,
    MazeLayout,
    MazeSuite,
    generate_maze_layout,
    maze_id,
    maze_layouts,
    maze_max_steps,
    shortest_solution,
)
from llmrl_bench.envs.maze_solver import optimal_q_values, optimal_return, shortest_actions
from llmrl_bench.envs.minigrid_ids import HeldOutSeeds, MiniGridConfig, MiniGridSuite, TrainingSeeds



def _register(env_id: str, **spec) -> None:
    if env_id not in gym.registry:  # re-imports (reload, workers) must not warn about overriding
        gym.register(id=env_id, **spec)


def _register_all() -> None:
    maze_entry = "llmrl_bench.envs.maze:MazeEnv"
    _register(
        MAZE_TRAIN_ID,
        entry_point=maze_entry,
        kwargs={"sizes": (7, 9)},
        max_episode_steps=maze_max_steps(9),
        reward_threshold=DEFAULT_REWARD_THRESHOLD,
    )
    for size in REGISTERED_MAZE_SIZES:
        for split in (TRAIN, HELD_OUT):
            _register(
                maze_id(size, split),
                entry_point=maze_entry,
                kwargs={"sizes": (size,), "split": split},
                max_episode_steps=maze_max_steps(size),
                reward_threshold=DEFAULT_REWARD_THRESHOLD,
            )
    for env_id, physics in CARTPOLE_CONTEXTS.values():
        _register(
            env_id,
            entry_point="llmrl_bench.envs.cartpole:CartPolePhysicsEnv",
            kwargs=dict(physics),
            max_episode_steps=500,
            reward_threshold=475.0,
        )


_register_all()
OmegaConf.register_new_resolver(RECOMMENDED_GAMMA_RESOLVER, recommended_gamma, replace=True)

__all__ = [
    "CARTPOLE_CONTEXTS",
    "EVAL_SEED_OFFSET",
    "TRAIN",
    "CartPolePhysicsEnv",
    "CartPoleSuite",
    "EnvSuite",
    "HeldOutSeeds",
    "MazeEnv",
    "MazeLayout",
    "MazeSuite",
    "MiniGridSuite",
    "TrainingSeeds",
    "generate_maze_layout",
    "maze_id",
    "maze_layouts",
    "optimal_q_values",
    "optimal_return",
    "shortest_actions",
    "shortest_solution",
]
