"""Issue 15's maze table: IQM [95% CI] over seeds of the final training return / the optimal return
(the run's own evaluation policy, argmax for the classic agents; and the protocol's sampled mode where recorded).

Reads every completed ``result.json`` under the given directories (runs on ``env=maze`` with 7x7
training layouts), groups them by agent, maze view, budget and agent config, and divides each run's final
training return (mean over ``budget.eval_episodes`` episodes; episode i plays layout
``(EVAL_SEED_OFFSET + i) mod 32``) by the mean optimal return of those same layouts. Use
``budget.eval_episodes=32`` so every layout is played once.

    python experiments/maze_baselines_table.py /tmp/final/q_learning /tmp/final/reinforce
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from llmrl_bench import stats
from llmrl_bench.envs.base import EVAL_SEED_OFFSET
from llmrl_bench.envs.maze import maze_layouts

sys.path.insert(0, str(Path(__file__).parent))
from maze_probe import MAZE_SIZE, optimal_returns  # noqa: E402

#: Issue 15's must-show shares of the optimal return.
TARGETS = {"ppo": 0.95, "dqn": 0.90, "q_learning": 0.90, "reinforce": 0.70}


def main(directories: list[str]) -> None:
    layouts = maze_layouts(MAZE_SIZE, "train", 32, 16)
    optimal = optimal_returns(layouts)
    groups: dict[tuple, list[tuple[int, float, float, float]]] = defaultdict(list)
    for directory in directories:
        for path in sorted(Path(directory).glob("**/result.json")):
            record = json.loads(path.read_text())
            if record["status"] != "completed" or record["env"] != "maze":
                continue
            config = record["config"]
            episodes = config["budget"]["eval_episodes"]
            ceiling = optimal[[(EVAL_SEED_OFFSET + i) % len(layouts) for i in range(episodes)]].mean()
            view = config["env"].get("view", "egocentric")  # env.view=full is another observation: its own row
            label = record["agent"] if view == "egocentric" else f"{record['agent']} (view={view})"
            key = (label, config["budget"]["env_steps"], json.dumps(config["agent"], sort_keys=True))
            share = record["metrics"]["cumulative_reward"] / ceiling
            modes = record["curve"][-1].get("modes")  # the evaluation protocol's (docs/metrics.md); NaN before it
            sampled = modes["sampled"]["train"] / ceiling if modes else float("nan")
            groups[key].append((record["seed"], share, sampled, record["provenance"]["wall_seconds"]))
    print("| agent | budget | seeds | IQM [95% CI] of return / optimal | seeds >= target | sampled: IQM [95% CI] | wall per run |")
    print("| --- | ---: | ---: | --- | --- | --- | ---: |")
    for (agent, budget, config), runs in sorted(groups.items()):
        shares, sampled = (np.array([run[column] for run in runs]) for column in (1, 2))
        estimate = stats.stratified_bootstrap_ci(shares[:, None], stats.iqm)
        sampled_text = "–"
        if np.isfinite(sampled).all():
            sampled_estimate = stats.stratified_bootstrap_ci(sampled[:, None], stats.iqm)
            sampled_text = f"{sampled_estimate.point:.3f} [{sampled_estimate.low:.3f}, {sampled_estimate.high:.3f}]"
        target = TARGETS.get(agent.split(" ")[0], float("nan"))
        print(
            f"| {agent} | {budget:,} | {len(runs)} | {estimate.point:.3f} [{estimate.low:.3f}, {estimate.high:.3f}] | "
            f"{int((shares >= target).sum())} of {len(runs)} >= {target} | {sampled_text} | {np.mean([run[3] for run in runs]):.0f} s |"
        )
        print(f"<!-- {agent} seeds {[run[0] for run in runs]}: {np.round(shares, 3).tolist()}; sampled {np.round(sampled, 3).tolist()}; {config} -->")


if __name__ == "__main__":
    main(sys.argv[1:])
