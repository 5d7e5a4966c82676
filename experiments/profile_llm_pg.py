"""Where an ``llm_pg`` maze run spends its time: collection against the PPO update, and inside the update.

Builds ``agent=llm_pg env=maze`` as the CLI composes it (``conf/hparams/llm_pg_maze.yaml``, real SmolLM2-135M,
one torch thread), trains one rollout untimed (model loading, first frozen-layer forwards), then trains ``STEPS``
more env steps under ``cProfile`` and prints the split and the most expensive calls. docs/llm_agents.md#speed
quotes its output.

    python experiments/profile_llm_pg.py STEPS [override ...]
    python experiments/profile_llm_pg.py 2048
    python experiments/profile_llm_pg.py 2048 agent.fast_path=false
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

import torch
from hydra import compose, initialize_config_dir

from llmrl_bench.agents.base import NullHooks
from llmrl_bench.config import CONFIG_DIR, CONFIG_NAME, register_configs
from llmrl_bench.envs import MazeSuite
from llmrl_bench.representations import TextRepresentation
from llmrl_bench.runner import RunEnvs, build_agent

#: Rows of the split: label, and the (file name ending, function name) that cProfile records.
SPLIT = {
    "update (PPO epochs)": ("llm_pg.py", "_update"),
    "  backward passes": ("~", "<method 'run_backward' of 'torch._C._EngineBase' objects>"),
    "  optimizer steps": ("optim/adam.py", "step"),
}


def cumulative_seconds(stats: pstats.Stats, file_end: str, function: str) -> float:
    """Cumulative time of the profiled function ``function`` of a file whose name ends with ``file_end``."""
    return sum(row[3] for (file, _, name), row in stats.stats.items() if name == function and file.endswith(file_end))


def main(argv: list[str]) -> None:
    steps, overrides = int(argv[0]), argv[1:]
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name=CONFIG_NAME, overrides=["agent=llm_pg", "env=maze", *overrides])
    torch.set_num_threads(1)
    envs = RunEnvs(MazeSuite(), TextRepresentation())
    agent = build_agent(cfg.agent, envs, int(cfg.seed))
    rollout = cfg.agent.n_envs * cfg.agent.n_steps
    agent.learn(envs, rollout, NullHooks())

    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    agent.learn(envs, rollout + steps, NullHooks())
    profile.disable()
    seconds = time.perf_counter() - started
    trained = agent.global_step - rollout

    stats = pstats.Stats(profile)
    total = stats.total_tt
    print(f"{trained} env steps in {seconds:.1f} s: {trained / seconds:.1f} env steps/s (profiled; one thread)")
    for label, (file_end, function) in SPLIT.items():
        value = cumulative_seconds(stats, file_end, function)
        print(f"{label:<28} {value:7.1f} s  {value / total:6.1%}")
    update = cumulative_seconds(stats, *SPLIT["update (PPO epochs)"])
    print(f"{'collection (the rest)':<28} {total - update:7.1f} s  {(total - update) / total:6.1%}")
    stats.sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main(sys.argv[1:])
