"""Issue 16's outcome check: ``llm_pg`` on the maze with the fast path against the runs before it.

Both sets are ``experiment=maze_llm``'s ``llm_pg`` runs (seeds 0-4, 32,768 env steps, the settings of
``conf/hparams/llm_pg_maze.yaml``), evaluated on the same 32 training layouts by sampling the policy:

- before: ``results/reference/superseded/maze_llm_before_fast_path`` (``fast_path`` absent: the earlier
  path), whose evaluations sampled the policy (``llm.eval_sampling``); their ``train_return``;
- fast path: ``results/reference/runs`` (``agent.fast_path: true``), under the evaluation protocol;
  their ``modes.sampled.train`` (the same 32 episodes, sampled from the protocol's own generator).

Prints the final return of each seed, each set's IQM [95% stratified-bootstrap CI] over seeds, and
whether each set's IQM lies inside the other's CI. Returns are raw (both sets play the same layouts,
so dividing by their common optimum changes no comparison).

    python experiments/llm_pg_fast_path_outcome.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmrl_bench import stats
from llmrl_bench.results import RunResult, load_results

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference"
BEFORE = REFERENCE / "superseded" / "maze_llm_before_fast_path"


def final_sampled(run: RunResult) -> float:
    """The last evaluation's sampled return on the training layouts."""
    point = run.curve[-1]
    return float(point["modes"]["sampled"]["train"] if "modes" in point else point["train_return"])


def maze_llm_pg(folder: Path, fast_path: bool) -> dict[int, float]:
    runs, _ = load_results(folder)
    chosen = [run for run in runs if run.sweep == "maze_llm" and run.agent == "llm_pg"
              and bool(run.config["agent"].get("fast_path", False)) == fast_path]
    return {run.seed: final_sampled(run) for run in sorted(chosen, key=lambda run: run.seed)}


def main() -> None:
    sets = {"before": maze_llm_pg(BEFORE, False), "fast path": maze_llm_pg(REFERENCE, True)}
    estimates = {}
    for name, values in sets.items():
        scores = np.array(list(values.values()))
        point, low, high = stats.iqm_across_seeds(scores)
        estimates[name] = (point, low, high)
        per_seed = ", ".join(f"{seed}: {value:.3f}" for seed, value in values.items())
        print(f"{name:9s} seeds {len(values)}  IQM {point:.3f} [{low:.3f}, {high:.3f}]  ({per_seed})")
    (a, a_low, a_high), (b, b_low, b_high) = estimates.values()
    print(f"fast-path IQM inside the earlier CI: {a_low <= b <= a_high}; earlier IQM inside the fast-path CI: {b_low <= a <= b_high}")


if __name__ == "__main__":
    main()
