"""How the final greedy policies of finished maze runs fail, layout by layout.

For each run in ``RESULTS_DIR`` of ``AGENT`` on the 7x7 maze that kept its ``policy.pt`` (runs made on this
machine; the file is not committed), the greedy policy plays the 32 training layouts once, as
``experiments/maze_probe.py`` does, and the line printed counts the layouts solved by a shortest path, solved by a
longer one, ``stuck`` (walking into a wall) and ``loop`` (a longer cycle), and the share of the optimal return lost
to longer paths and to failures.

    python experiments/maze_policy_failures.py dqn results/reference
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from llmrl_bench.envs.maze import MazeSuite, maze_layouts
from llmrl_bench.representations.vector import VectorRepresentation
from llmrl_bench.results import RunResult, read_results
from llmrl_bench.runner import RunEnvs, build_agent

sys.path.insert(0, str(Path(__file__).parent))
from maze_probe import MAZE_SIZE, greedy_rollouts, optimal_returns  # noqa: E402


def main(agent_name: str, results_dir: str) -> None:
    torch.set_num_threads(1)
    optimal = optimal_returns(maze_layouts(MAZE_SIZE, "train", 32, 16))
    runs = [(path.parent / "policy.pt", result) for path, result in read_results(results_dir) if isinstance(result, RunResult)]
    for policy, result in sorted(runs, key=lambda run: (str(run[1].config["agent"]), run[1].seed)):
        if result.agent != agent_name or result.env != "maze" or not policy.exists():
            continue
        envs = RunEnvs(MazeSuite(train_sizes=(MAZE_SIZE,)), VectorRepresentation())
        agent = build_agent(OmegaConf.create(result.config["agent"]), envs, result.seed)
        agent.load(policy)
        returns, stuck, looping = greedy_rollouts(agent, envs.make(), len(optimal))
        solved = returns > 0
        shortest = solved & (returns >= optimal - 1e-9)
        print(f"{result.run_id} seed {result.seed}: return / optimal {returns.mean() / optimal.mean():.3f}; "
              f"shortest {int(shortest.sum())}, longer {int((solved & ~shortest).sum())}, stuck {stuck}, loop {looping}; "
              f"lost to longer paths {(optimal - returns)[solved].sum() / optimal.sum():.3f}, "
              f"to failures {optimal[~solved].sum() / optimal.sum():.3f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python experiments/maze_policy_failures.py AGENT RESULTS_DIR")
    main(sys.argv[1], sys.argv[2])
