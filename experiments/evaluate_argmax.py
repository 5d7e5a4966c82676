"""Evaluate finished LLM runs' final policies by their argmax, on the runs' own evaluation episodes.

The maze LLM runs are evaluated by sampling their policy (``llm.eval_sampling``, see
``docs/llm_agents.md#evaluation-argmax-or-sampling``). This script loads each run's final
policy (``policy.pt`` next to ``result.json``; kept locally, not committed), turns
``eval_sampling`` off and replays the run's final evaluation: ``budget.eval_episodes``
training episodes and ``budget.held_out_episodes`` per held-out context, with the same
evaluation seeds. It prints one row per run and the IQM with its 95% bootstrap CI.

    python experiments/evaluate_argmax.py results/runs/<run_id> [results/runs/<run_id> ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from llmrl_bench import stats
from llmrl_bench.envs.base import TRAIN
from llmrl_bench.results import POLICY_FILE, RESULT_FILE, load_result
from llmrl_bench.run_envs import RunEnvs
from llmrl_bench.runner import build_agent, seed_everything


def argmax_returns(run_dir: Path) -> tuple[str, int, float, float]:
    """(agent, seed, mean training return, mean held-out return) of the run's final policy's argmax."""
    result = load_result(run_dir / RESULT_FILE)
    config = OmegaConf.create(result.config)
    if "llm" in config.agent:
        config.agent.llm.eval_sampling = False
    seed_everything(result.seed)
    suite, representation = instantiate(config.env), instantiate(config.repr)
    envs = RunEnvs(suite, representation)
    agent = build_agent(config.agent, envs, result.seed)
    agent.load(run_dir / POLICY_FILE)

    def mean_return(context: str, episodes: int) -> float:
        evaluator = envs.evaluator(context, episodes)
        returns = evaluator.evaluate(agent)
        evaluator.close()
        return float(returns.mean())

    train = mean_return(TRAIN, config.budget.eval_episodes)
    held_out = float(np.mean([mean_return(context, config.budget.held_out_episodes) for context in suite.held_out_contexts]))
    return result.agent, result.seed, train, held_out


def main(run_dirs: list[str]) -> None:
    rows = [argmax_returns(Path(run_dir)) for run_dir in run_dirs]
    print("| agent | seed | training return (argmax) | held-out return (argmax) |")
    print("| --- | ---: | ---: | ---: |")
    for agent, seed, train, held_out in sorted(rows):
        print(f"| {agent} | {seed} | {train:.3f} | {held_out:.3f} |")
    for agent in sorted({row[0] for row in rows}):
        for column, name in ((2, "training"), (3, "held-out")):
            scores = np.array([row[column] for row in rows if row[0] == agent])
            point, low, high = stats.iqm_across_seeds(scores)
            print(f"{agent} {name}: IQM {point:.3f} [{low:.3f}, {high:.3f}] over {len(scores)} seeds")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python experiments/evaluate_argmax.py RUN_DIR [RUN_DIR ...]")
    main(sys.argv[1:])
