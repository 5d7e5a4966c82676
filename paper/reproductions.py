"""Reproductions: our numbers next to published ones (``paper/published.yaml``).

Our side of a row is ``cumulative_reward`` (mean return of the final greedy policy over
the budget's ``eval_episodes`` training-distribution episodes) of the matching runs: its
mean over seeds, its IQM with a 95% stratified-bootstrap CI, and how many seeds reach
the published figure within its stated tolerance (``>= mean - tolerance``). An IQM of
10 seeds trims the 2 lowest, so the mean and the count say what the IQM hides.

Runs match a published row by agent, env, representation (``vector``), training budget
(``budget.env_steps``) and the row's ``agent_config`` (hyperparameters the run must hold:
RL Zoo's own values for an "RL Zoo's settings" row, the suite's changes for a "tuned here"
row), not by sweep name: a run of ``cartpole_classic`` is the
same experiment, with the same ``run_id``, as one of ``reproduce_rlzoo_cartpole``, and
the runner skips whichever comes second. If several configurations match (say, the
hyperparameters changed between sweeps), the one whose sweep is the table's name wins,
then the one with the most seeds. A row with no matching run is reported as not run.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from llmrl_bench import stats
from llmrl_bench.results import RunResult, experiment_identity

PUBLISHED_PATH = Path(__file__).with_name("published.yaml")

#: The representation our reproductions use: RL Zoo trains on the envs' vector observations.
REPRESENTATION = "vector"

def configuration_key(result: RunResult) -> str:
    """The run's experiment identity without its seed (``results.experiment_identity``, as its run_id sees it):
    runs with equal keys differ only in seed, whichever identity-neutral options their configs spell out."""
    identity = {key: value for key, value in experiment_identity(result.config).items() if key != "seed"}
    return json.dumps(identity, sort_keys=True, default=str)


@dataclass(frozen=True)
class PublishedRow:
    """One published number: ``mean ± std`` of ``agent`` on ``env`` after ``env_steps``,
    over ``eval_episodes`` episodes; a seed reaches it at ``>= mean - tolerance``."""

    agent: str
    env: str
    gym_id: str
    env_steps: int
    mean: float
    std: float | None
    eval_episodes: int
    tolerance: float
    settings: str = "RL Zoo's settings"
    """What the matching runs were trained with, in words (``RL Zoo's settings`` or ``tuned here: ...``)."""
    agent_config: dict[str, Any] = field(default_factory=dict)
    """Agent hyperparameters a run must hold to match this row (names as in our agent configs)."""

    def holds_settings(self, result: RunResult) -> bool:
        agent = result.config.get("agent", {})
        return all(name in agent and agent[name] == value for name, value in self.agent_config.items())

    def reached_by(self, value: float) -> bool:
        return value >= self.mean - self.tolerance


@dataclass(frozen=True)
class PublishedTable:
    """The rows of one reproduction table, named after its experiment."""

    name: str
    title: str
    rows: tuple[PublishedRow, ...]
    note: str = ""
    """How our setting differs from the source's, in words (observation, evaluation)."""


@dataclass(frozen=True)
class Published:
    """``published.yaml``: the source and the reproduction tables."""

    source: dict[str, str]
    tables: tuple[PublishedTable, ...]


def load_published(path: str | Path = PUBLISHED_PATH) -> Published:
    """Read the published numbers and their source."""
    data = yaml.safe_load(Path(path).read_text())
    tables = tuple(
        PublishedTable(
            name=name,
            title=table["title"],
            rows=tuple(PublishedRow(**row) for row in table["rows"]),
            note=table.get("note", ""),
        )
        for name, table in data["tables"].items()
    )
    return Published(source=dict(data["source"]), tables=tables)


@dataclass(frozen=True)
class ReproductionRow:
    """A published row and our estimate; ``estimate`` is ``None`` when no run matches."""

    published: PublishedRow
    estimate: stats.IntervalEstimate | None
    mean: float | None
    reached: int
    seeds: tuple[int, ...]
    sweeps: tuple[str, ...]
    eval_episodes: int | None


def matching_runs(results: Sequence[RunResult], row: PublishedRow, table_name: str) -> list[RunResult]:
    """The runs (sorted by seed) of the one configuration that reproduces ``row``; may be empty."""
    by_configuration: dict[str, list[RunResult]] = defaultdict(list)
    for result in results:
        budget: dict[str, Any] = result.config.get("budget", {})
        if (result.agent, result.env, result.repr) == (row.agent, row.env, REPRESENTATION) and budget.get(
            "env_steps"
        ) == row.env_steps and row.holds_settings(result):
            by_configuration[configuration_key(result)].append(result)
    if not by_configuration:
        return []

    def preference(key: str) -> tuple[bool, int, str]:
        runs = by_configuration[key]
        return (any(run.sweep == table_name for run in runs), len(runs), key)

    best = max(by_configuration, key=preference)
    return sorted(by_configuration[best], key=lambda run: run.seed)


def reproduce(
    results: Sequence[RunResult], table: PublishedTable, n_resamples: int = 50_000, random_state: int = 0
) -> list[ReproductionRow]:
    """Our estimate for every row of ``table``, in the table's order."""
    rows = []
    for published in table.rows:
        runs = matching_runs(results, published, table.name)
        values = np.array([_number(run.metrics.get("cumulative_reward")) for run in runs], dtype=float)
        finite = np.isfinite(values)
        kept = values[finite]
        rows.append(
            ReproductionRow(
                published=published,
                estimate=stats.iqm_across_seeds(kept, n_resamples=n_resamples, random_state=random_state)
                if kept.size else None,
                mean=float(np.mean(kept)) if kept.size else None,
                reached=sum(published.reached_by(value) for value in kept),
                seeds=tuple(run.seed for run, ok in zip(runs, finite) if ok),
                sweeps=tuple(sorted({run.sweep for run in runs})),
                eval_episodes=runs[0].config["budget"].get("eval_episodes") if runs else None,
            )
        )
    return rows


def _number(value: Any) -> float:
    """A stored metric as a float; ``null`` (a NaN at write time) becomes NaN."""
    return float("nan") if value is None else float(value)
