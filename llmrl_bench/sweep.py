"""Sweep bookkeeping: each job leaves its outcome beside its Hydra output; the end of a multirun sums them up."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

OUTCOME_FILE = "outcome.json"


def write_outcome(output_dir: str | Path, status: str, title: str, error: str | None = None) -> None:
    """Record one job's outcome (``done``, ``skipped`` or ``failed``) in its Hydra output dir."""
    path = Path(output_dir) / OUTCOME_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"status": status, "title": title, "error": error}))


def read_outcomes(sweep_dir: str | Path) -> list[dict[str, Any]]:
    outcomes = []
    for path in sorted(Path(sweep_dir).glob(f"*/{OUTCOME_FILE}")):
        try:
            outcomes.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            outcomes.append({"status": "failed", "title": str(path.parent), "error": "no readable outcome"})
    return outcomes


class SweepSummary(Callback):
    """Prints one summary line per sweep, then one line per failed run; exits 1 if any failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        outcomes = read_outcomes(config.hydra.sweep.dir)
        counts = {status: sum(o["status"] == status for o in outcomes) for status in ("done", "skipped", "failed")}
        print(f"sweep {config.sweep}: {len(outcomes)} runs: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed", file=sys.stderr)
        failures = [o for o in outcomes if o["status"] == "failed"]
        for outcome in failures:
            print(f"  failed {outcome['title']}: {outcome['error']}", file=sys.stderr)
        if failures:
            sys.exit(1)
