"""The strict checks of a results folder before the paper uses it.

A problem is an invalid result file, stored metrics that disagree with the metrics
recomputed from the run's own curve, or two run folders that hold the same run (the same
configuration and seed, or identical per-episode data that varies between episodes). The build stops on any problem
unless told to leave the named runs out (``python -m paper.build --allow-invalid``).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from llmrl_bench import metrics
from llmrl_bench.results import EPISODES_FILE, ResultError, RunResult, read_results, recomputed_metrics
from paper.reproductions import configuration_key


@dataclass(frozen=True)
class Problem:
    """One problem, as one line; ``paths`` are the result files it leaves out."""

    kind: str
    message: str
    paths: tuple[Path, ...]

    def line(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass
class Audit:
    """The valid completed runs by path, and every problem found."""

    runs: dict[Path, RunResult]
    problems: list[Problem]

    def usable(self) -> list[RunResult]:
        """The runs no problem leaves out, in path order."""
        left_out = {path for problem in self.problems for path in problem.paths}
        return [run for path, run in sorted(self.runs.items()) if path not in left_out]


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path


def _episodes_digest(run_folder: Path) -> str | None:
    """SHA-256 of the per-episode arrays (names, dtypes, shapes, bytes).

    ``None`` without a file, or when every episode has the same return and length (an
    agent that always times out): such data cannot tell two seeds apart.
    """
    path = run_folder / EPISODES_FILE
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with np.load(path) as data:
        if all(np.unique(data[name]).size <= 1 for name in ("return", "length") if name in data.files):
            return None
        for name in sorted(data.files):
            array = np.ascontiguousarray(data[name])
            digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def _evaluation_settings(run: RunResult) -> str:
    budget = run.config.get("budget", {})
    return json.dumps({key: value for key, value in budget.items() if key != "env_steps"}, sort_keys=True)


def _duplicates(runs: dict[Path, RunResult], root: Path) -> list[Problem]:
    """One problem per group of folders holding the same run; the first folder (its own run_id first) stays."""
    by_identity: dict[tuple[str, int], list[Path]] = defaultdict(list)
    by_episodes: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path, run in runs.items():
        by_identity[(configuration_key(run), run.seed)].append(path)
        digest = _episodes_digest(path.parent)
        if digest is not None:  # the same training evaluated under other settings is another run
            by_episodes[(digest, _evaluation_settings(run))].append(path)
    problems, seen = [], set()
    for reason, groups in (("same config and seed", by_identity.values()),
                           ("identical per-episode data", by_episodes.values())):
        for paths in groups:
            paths = sorted(paths, key=lambda p: (p.parent.name != runs[p].run_id, str(p)))
            if len(paths) < 2 or frozenset(paths) in seen:
                continue
            seen.add(frozenset(paths))
            names = ", ".join(str(_relative(p.parent, root)) for p in paths)
            problems.append(Problem("duplicate run", f"{names} hold the same run ({reason}); "
                                    f"{_relative(paths[0].parent, root)} is kept", tuple(paths[1:])))
    return problems


def audit(results_dir: str | Path) -> Audit:
    """Load every completed run under ``results_dir`` and find every problem (see the module docstring)."""
    root = Path(results_dir)
    runs: dict[Path, RunResult] = {}
    problems: list[Problem] = []
    for path, run in read_results(root):
        if isinstance(run, ResultError):
            problems.append(Problem("invalid result file", f"{_relative(path, root)}: {run.reason}", (path,)))
            continue
        if run.status != "completed":
            continue
        runs[path] = run
        if "score_range" not in run.env_info:
            problems.append(Problem("metrics cannot be checked", f"{_relative(path, root)}: env_info has no "
                                    "score_range to recompute them from", (path,)))
            continue
        differences = metrics.metric_differences(run.metrics, recomputed_metrics(run))
        if differences:
            problems.append(Problem("metrics disagree with the curve",
                                    f"{_relative(path, root)}: {'; '.join(differences)}", (path,)))
    problems += _duplicates(runs, root)
    return Audit(runs, problems)


class BuildError(RuntimeError):
    """The results folder has problems and the build was not told to leave them out."""

    def __init__(self, problems: Sequence[Problem]):
        super().__init__(f"{len(problems)} problem(s) in the results folder")
        self.problems = list(problems)
