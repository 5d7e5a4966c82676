"""PPO rollout collection on ``env=maze`` against the raw MiniGrid env step rate, in one process.

Baseline: one raw MiniGrid maze env (``MazeEnv(cache_observations=False)``: MiniGrid renders
every observation, no representation wrapper) stepped with random moves, resetting on episode
end. Ours: ``PPO.learn`` with ``n_epochs=0`` (rollout collection only: the suite's env with its
observation memo, vector representation, policy forward, storage, GAE) on the suite's vector
envs. Target: ours >= 70% of the raw rate. Reported beside it: the memoised raw env's rate (what
the memo buys) and the whole training run's steps/s (collection plus updates,
``conf/hparams/ppo_maze.yaml``).

    make bench   # or: pytest tests/benchmarks/test_maze_rollout.py --benchmark-enable -s
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from llmrl_bench.agents.base import NullHooks
from llmrl_bench.envs.base import TRAIN
from llmrl_bench.run_envs import RunEnvs
from llmrl_bench.runner import build_agent

pytestmark = pytest.mark.benchmark(group="maze_rollout", min_rounds=1, warmup=False)

STEPS = 20_000
MIN_RATIO = 0.70


def raw_steps_per_second(suite, steps: int, cache_observations: bool) -> float:
    env = gym.make(suite.gym_id, sizes=suite.train_sizes, cache_observations=cache_observations,
                   max_episode_steps=suite.max_episode_steps)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 3, size=steps)  # the moves a maze needs
    started = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - started)


def ppo_steps_per_second(cfg, steps: int, n_epochs: int | None) -> float:
    envs = RunEnvs(instantiate(cfg.env), instantiate(cfg.repr))
    overrides = {} if n_epochs is None else {"n_epochs": n_epochs}
    agent = build_agent(OmegaConf.merge(cfg.agent, overrides), envs, seed=0)
    started = time.perf_counter()
    agent.learn(envs, steps, NullHooks())
    return agent.global_step / (time.perf_counter() - started)


def test_ppo_rollout_vs_raw_maze(benchmark, make_config):
    torch.set_num_threads(1)
    cfg = make_config("agent=ppo", "env=maze")
    suite = instantiate(cfg.env)

    def measure():
        raw = raw_steps_per_second(suite, STEPS, cache_observations=False)
        rollout = ppo_steps_per_second(cfg, STEPS, n_epochs=0)
        return raw, rollout

    raw, rollout = benchmark.pedantic(measure, rounds=1, iterations=1)
    memoised = raw_steps_per_second(suite, STEPS, cache_observations=True)
    training = ppo_steps_per_second(cfg, STEPS, n_epochs=None)
    ratio = rollout / raw
    benchmark.extra_info.update(raw_steps_per_second=raw, memoised_raw_steps_per_second=memoised,
                                rollout_steps_per_second=rollout, rollout_over_raw=ratio,
                                rollout_over_memoised_raw=rollout / memoised, training_steps_per_second=training)
    print(f"\nmaze: raw MiniGrid env {raw:.0f} steps/s (memoised observations: {memoised:.0f}), "
          f"PPO rollout {rollout:.0f} steps/s ({ratio:.0%} of raw, {rollout / memoised:.0%} of memoised raw), "
          f"PPO training (rollout + updates) {training:.0f} steps/s")
    assert ratio >= MIN_RATIO
