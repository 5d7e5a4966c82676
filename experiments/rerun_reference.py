"""Re-run committed reference runs from their stored config and compare run_id, metrics and curve.

    python experiments/rerun_reference.py results/reference/runs/<run_id> [...]

Each run is trained again into a temporary folder with the exact config its result.json stores
(W&B and the progress bar off); the script prints one line per run and exits 1 on any difference.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from llmrl_bench.commands import stored_run_config
from llmrl_bench.results import RESULT_FILE, curve_repeats, load_result, load_results
from llmrl_bench.runner import run


def rerun(run_dir: Path, scratch: Path) -> list[str]:
    """The differences between the stored run and its re-run (empty: identical)."""
    stored = load_result(run_dir / RESULT_FILE)
    cfg = stored_run_config(stored, results_dir=str(scratch), progress=False, overwrite=True, logger={"kind": "none"})
    run(cfg)
    (fresh,) = load_results(scratch)[0]
    differences = [f"run_id {fresh.run_id}"] if fresh.run_id != stored.run_id else []
    differences += [f"metrics.{key}: {stored.metrics.get(key)} -> {fresh.metrics.get(key)}"
                    for key in sorted(set(stored.metrics) | set(fresh.metrics)) if stored.metrics.get(key) != fresh.metrics.get(key)]
    if not curve_repeats(stored.curve, fresh.curve):
        differences.append("curve")
    return differences


def main(run_dirs: list[str]) -> int:
    failures = 0
    for run_dir in map(Path, run_dirs):
        with tempfile.TemporaryDirectory() as scratch:
            differences = rerun(run_dir, Path(scratch))
        stored = load_result(run_dir / RESULT_FILE)
        label = f"{stored.agent}/{stored.env}/seed={stored.seed} [{stored.run_id}]"
        print(f"{'identical' if not differences else 'DIFFERENT'} {label}" + (": " + "; ".join(differences) if differences else ""))
        failures += bool(differences)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
