"""Our PPO and DQN against Stable-Baselines3 on CartPole-v1: same hyperparameters, same steps, same process.

Both sides use one torch thread and the hyperparameters the suite uses on CartPole
(``conf/agent/<algo>.yaml`` merged with ``conf/hparams/<algo>_cartpole.yaml``), translated to
SB3 arguments (``lin_`` schedules included). Reported in ``benchmark.extra_info``:

- ``*_steps_per_second``: env steps per second of training (evaluation time excluded);
- ``*_seconds_to_475``: training wall time until the first greedy evaluation (10 episodes,
  evaluation seeds, every ``EVAL_EVERY`` steps) with mean return >= 475, or ``None``;
- ``*_cpu_*``: the same with the process's CPU time instead of wall time, which other
  processes on a shared machine disturb far less;
- ``speedup_*``: SB3's time over ours (> 1: ours is faster).

The assertions (full budget only) are issue 15's targets: both sides reach a greedy return of 475,
and ours is at least ``MIN_SPEEDUP`` (3) times SB3's in wall-clock steps per second and in wall time
to 475. Wall time is what the issue asks for; the CPU-time ratios beside it show how much of a
wall ratio a loaded machine made.

Not part of the default run (CI runs ``pytest tests --ignore=tests/benchmarks``)::

    pytest tests/benchmarks/test_vs_sb3.py -s                               # full budgets (~5 min), asserts
    LLMRL_BENCH_BUDGET_FRACTION=0.2 pytest tests/benchmarks/test_vs_sb3.py -s  # reduced, no speed assertion

Our PPO steps CartPole through Gymnasium's native ``CartPoleVectorEnv`` (as ``env=cartpole``
does); SB3 through its ``DummyVecEnv`` of 8 ``CartPole-v1``. Our DQN and SB3's both use one env.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from llmrl_bench import registry
from llmrl_bench.runner import build_agent
from llmrl_bench.agents.base import NullHooks
from llmrl_bench.config import CONFIG_DIR
from llmrl_bench.envs.base import EVAL_SEED_OFFSET
from tests.conftest import load_experiment

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

SB3_MAZE = load_experiment("sb3_maze")  # the translation of our hyperparameters to SB3's arguments

pytestmark = pytest.mark.benchmark(group="vs_sb3", min_rounds=1, warmup=False)

BUDGET_FRACTION = float(os.environ.get("LLMRL_BENCH_BUDGET_FRACTION", "1.0"))
MIN_SPEEDUP = float(os.environ.get("LLMRL_BENCH_MIN_SPEEDUP", "3.0"))  # issue 15
EVAL_EVERY = 2_500
EVAL_EPISODES = 10
SOLVED = 475.0
SEED = 0


class CartPoleEnvs:
    """The EnvFactory ``env=cartpole`` gives with ``repr=vector``: plain CartPole-v1."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def make(self) -> gym.Env:
        return gym.make("CartPole-v1")

    def make_vec(self, num_envs: int) -> gym.vector.VectorEnv:
        return gym.make_vec("CartPole-v1", num_envs, vectorization_mode="vector_entry_point")


def greedy_mean_return(act: Callable[[np.ndarray], np.ndarray]) -> float:
    """Mean return of ``EVAL_EPISODES`` greedy episodes on evaluation seeds, stepped as one batch."""
    envs = [gym.make("CartPole-v1") for _ in range(EVAL_EPISODES)]
    observations = [env.reset(seed=EVAL_SEED_OFFSET + i)[0] for i, env in enumerate(envs)]
    returns = np.zeros(EVAL_EPISODES)
    active = list(range(EVAL_EPISODES))
    while active:
        actions = act(np.stack([observations[i] for i in active]))
        still_active = []
        for i, action in zip(active, actions):
            observations[i], reward, terminated, truncated, _ = envs[i].step(int(action))
            returns[i] += reward
            if not (terminated or truncated):
                still_active.append(i)
        active = still_active
    return float(returns.mean())


class EvalClock:
    """Training time (wall and CPU) with evaluations paused, and when the greedy policy first solves CartPole."""

    def __init__(self, act: Callable[[np.ndarray], np.ndarray]):
        self.act = act
        self.next_eval = EVAL_EVERY
        self.paused = np.zeros(2)  # wall, cpu seconds spent evaluating
        self.to_solved: np.ndarray | None = None
        self.curve: list[tuple[int, float]] = []
        self.start = self.now()

    @staticmethod
    def now() -> np.ndarray:
        return np.array([time.perf_counter(), time.process_time()])

    def training_seconds(self) -> np.ndarray:
        """(wall, cpu) seconds of training so far."""
        return self.now() - self.start - self.paused

    def maybe_evaluate(self, global_step: int) -> None:
        if global_step < self.next_eval:
            return
        self.next_eval += EVAL_EVERY
        paused = self.now()
        mean_return = greedy_mean_return(self.act)
        self.curve.append((global_step, mean_return))
        if mean_return >= SOLVED and self.to_solved is None:
            self.to_solved = paused - self.start - self.paused
        self.paused += self.now() - paused


class ClockHooks(NullHooks):
    def __init__(self, clock: EvalClock):
        self.clock = clock

    def on_step(self, global_step: int) -> None:
        self.clock.maybe_evaluate(global_step)


class ClockCallback(BaseCallback):
    def __init__(self, clock: EvalClock):
        super().__init__()
        self.clock = clock

    def _on_step(self) -> bool:
        self.clock.maybe_evaluate(self.num_timesteps)
        return True


def cartpole_config(algo: str) -> tuple[dict, int]:
    """The agent hyperparameters and budget the suite uses for ``algo`` on CartPole."""
    hparams = OmegaConf.load(CONFIG_DIR / "hparams" / f"{algo}_cartpole.yaml")
    merged = OmegaConf.merge(OmegaConf.structured(registry.schemas("agent")[algo]), hparams.get("agent", {}))
    budget = max(int(hparams.budget.env_steps * BUDGET_FRACTION), 1_000)
    return OmegaConf.to_container(merged), budget


def sb3_model(algo: str, cfg: dict):
    """SB3's model with our hyperparameters, translated as on the maze (``experiments/sb3_maze.py``)."""
    assert not cfg.get("normalize_obs") and not cfg.get("normalize_reward"), "CartPole runs without VecNormalize"
    env = make_vec_env("CartPole-v1", n_envs=cfg["n_envs"], seed=SEED) if algo == "ppo" else "CartPole-v1"
    model_class = {"ppo": sb3.PPO, "dqn": sb3.DQN}[algo]
    return model_class("MlpPolicy", env, **SB3_MAZE.sb3_arguments(algo, cfg), seed=SEED, device="cpu")


def summary(clock: EvalClock, steps: int, act: Callable[[np.ndarray], np.ndarray]) -> dict:
    wall, cpu = clock.training_seconds()
    return {
        "steps": steps,
        "seconds": wall,
        "cpu_seconds": cpu,
        "steps_per_second": steps / wall,
        "cpu_steps_per_second": steps / cpu,
        "seconds_to_475": None if clock.to_solved is None else float(clock.to_solved[0]),
        "cpu_seconds_to_475": None if clock.to_solved is None else float(clock.to_solved[1]),
        "final_return": greedy_mean_return(act),
        "curve": clock.curve,
    }


def train_ours(algo: str, cfg: dict, budget: int) -> dict:
    envs = CartPoleEnvs()
    agent = build_agent(cfg, envs, seed=SEED)
    act = lambda obs: agent.act(obs, greedy=True)  # noqa: E731
    clock = EvalClock(act)
    agent.learn(envs, budget, ClockHooks(clock))
    return summary(clock, agent.global_step, act)


def train_sb3(algo: str, cfg: dict, budget: int) -> dict:
    model = sb3_model(algo, cfg)
    act = lambda obs: model.predict(obs, deterministic=True)[0]  # noqa: E731
    clock = EvalClock(act)
    model.learn(budget, callback=ClockCallback(clock))
    return summary(clock, model.num_timesteps, act)


def ratio(sb3_value: float | None, ours: float | None) -> float | None:
    return None if sb3_value is None or ours is None else round(sb3_value / ours, 2)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_speed_vs_sb3(algo, benchmark):
    torch.set_num_threads(1)
    cfg, budget = cartpole_config(algo)
    sb3_result = train_sb3(algo, cfg, budget)
    ours = benchmark.pedantic(train_ours, args=(algo, cfg, budget), rounds=1, iterations=1)

    info = {"algo": algo, "budget": budget}
    for key in ("steps_per_second", "cpu_steps_per_second", "seconds", "cpu_seconds", "seconds_to_475",
                "cpu_seconds_to_475", "final_return"):
        info[f"ours_{key}"] = ours[key] if ours[key] is None else round(ours[key], 1)
        info[f"sb3_{key}"] = sb3_result[key] if sb3_result[key] is None else round(sb3_result[key], 1)
    info["speedup_steps_per_second"] = ratio(ours["steps_per_second"], sb3_result["steps_per_second"])
    info["speedup_cpu_steps_per_second"] = ratio(ours["cpu_steps_per_second"], sb3_result["cpu_steps_per_second"])
    info["speedup_seconds_to_475"] = ratio(sb3_result["seconds_to_475"], ours["seconds_to_475"])
    info["speedup_cpu_seconds_to_475"] = ratio(sb3_result["cpu_seconds_to_475"], ours["cpu_seconds_to_475"])
    benchmark.extra_info.update({**info, "ours_curve": ours["curve"], "sb3_curve": sb3_result["curve"]})
    print(f"\n{algo}: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    if BUDGET_FRACTION == 1.0:
        failures = [f"{side} never reached {SOLVED}" for side, result in (("ours", ours), ("SB3", sb3_result))
                    if result["seconds_to_475"] is None]
        failures += [f"{key} is {info[key]}x, below {MIN_SPEEDUP}x" for key in ("speedup_steps_per_second", "speedup_seconds_to_475")
                     if info[key] is not None and info[key] < MIN_SPEEDUP]
        assert not failures, f"{algo}: " + "; ".join(failures)
