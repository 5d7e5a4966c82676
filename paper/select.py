"""Which runs the paper reports: one configuration per agent × representation × env (a *cell*).

Reads results only as :class:`llmrl_bench.results.RunResult` records; the strict checks of
a results folder (invalid files, stale metrics, duplicate runs) are in :mod:`paper.checks`.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from llmrl_bench.metrics import METRICS
from llmrl_bench.results import RunResult, options_off_default
from paper import reproductions
from paper.settings import MIN_DEFINED_FRACTION


def number(value: Any) -> float:
    """A stored value as a float; ``null`` (undefined) becomes NaN."""
    return float("nan") if value is None else float(value)


@dataclass(frozen=True)
class Cell:
    """The runs of one agent × representation × env configuration, sorted by seed."""

    agent: str
    repr: str
    env: str
    runs: tuple[RunResult, ...]

    @property
    def algorithm(self) -> str:
        return f"{self.agent}/{self.repr}"

    @property
    def budget(self) -> dict[str, Any]:
        return self.runs[0].config.get("budget", {})

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    @property
    def sweeps(self) -> list[str]:
        return sorted({run.sweep for run in self.runs})

    @property
    def score_range(self) -> tuple[float, float]:
        low, high = self.runs[0].env_info.get("score_range", (0.0, 1.0))
        return float(low), float(high)

    def metric(self, name: str) -> np.ndarray:
        """One value per run, ``(num_runs,)``; a stored ``null`` is NaN."""
        return np.array([number(run.metrics.get(name)) for run in self.runs], dtype=float)

    def reported(self, name: str) -> np.ndarray:
        """The finite values of ``name``, or none if fewer than :data:`MIN_DEFINED_FRACTION` of runs define it."""
        values = self.metric(name)
        values = values[np.isfinite(values)]
        return values if values.size >= MIN_DEFINED_FRACTION * len(self.runs) else values[:0]

    def provenance(self, name: str) -> np.ndarray:
        """A provenance field per run, ``(num_runs,)``; NaN where the run lacks it."""
        return np.array([number(run.provenance.get(name)) for run in self.runs], dtype=float)

    def curves(self, key: str = "train_return") -> tuple[np.ndarray, np.ndarray]:
        """Evaluation steps ``(num_steps,)`` and curves ``(num_runs, num_steps)``."""
        steps = np.array([point["step"] for point in self.runs[0].curve], dtype=float)
        curves = np.array([[number(point[key]) for point in run.curve] for run in self.runs], dtype=float)
        return steps, curves


@dataclass
class Selection:
    """The cells the paper reports and why any valid run was left out."""

    cells: list[Cell]
    notes: list[str] = field(default_factory=list)


def env_key(env: str) -> tuple[str, str]:
    """Envs in case-insensitive order: cartpole, maze, MiniGrid-..."""
    return (env.lower(), env)


def _chosen_configuration(configurations: dict[str, list[RunResult]]) -> str:
    """The configuration with the most seeds, then the larger budget, then the env's default options (a variant
    such as ``env.view=full`` does not displace the benchmark's runs), then the key."""

    def preference(key: str) -> tuple[int, int, int, str]:
        runs = configurations[key]
        return (len(runs), runs[0].config.get("budget", {}).get("env_steps", 0), -options_off_default(runs[0].config.get("env") or {}), key)

    return max(configurations, key=preference)


DIRECT_REWARD = "direct"


def training_reward(result: RunResult) -> str:
    """The run's training reward (``reward.name``): ``direct`` (the env's own, also for runs made before ``reward=``) or an indirect one."""
    return (result.config.get("reward") or {}).get("name", DIRECT_REWARD)


def select_cells(results: Sequence[RunResult]) -> Selection:
    """One configuration per agent × representation × env: the one with the most seeds.

    Ties go to the larger training budget, then to the fewer env options off their defaults, then
    to the configuration key, so the choice never depends on file order. Runs of other configurations (another budget, changed
    hyperparameters) are left out of the figures and named in ``notes``; the reproduction
    tables match their own budgets (:mod:`paper.reproductions`).
    """
    groups: dict[tuple[str, str, str], dict[str, list[RunResult]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        groups[(result.agent, result.repr, result.env)][reproductions.configuration_key(result)].append(result)
    cells, notes = [], []
    for (agent, repr_, env), configurations in sorted(groups.items(), key=lambda item: (env_key(item[0][2]), item[0])):
        chosen = _chosen_configuration(configurations)
        runs = sorted(configurations[chosen], key=lambda run: run.seed)
        steps = [p["step"] for p in runs[0].curve]
        kept = [run for run in runs if [p["step"] for p in run.curve] == steps]
        if len(kept) < len(runs):
            notes.append(f"{agent}/{repr_} on {env}: {len(runs) - len(kept)} run(s) whose evaluation steps differ "
                         f"from the other runs' {len(steps)} points left out")
        cells.append(Cell(agent, repr_, env, tuple(kept)))
        for key in sorted(set(configurations) - {chosen}):
            other = configurations[key]
            notes.append(
                f"{agent}/{repr_} on {env}: {len(other)} run(s) of another configuration "
                f"({other[0].config.get('budget', {}).get('env_steps')} env steps, sweep "
                f"{', '.join(sorted({r.sweep for r in other}))}) left out of the figures; the chosen one has "
                f"{len(kept)} seed(s) at {cells[-1].budget.get('env_steps')} env steps"
            )
    return Selection(cells, notes)


def comparison_tasks(cells: Sequence[Cell]) -> tuple[list[str], list[str]]:
    """The envs (tasks) and algorithms of the pooled comparisons.

    Aggregates over tasks compare algorithms only on tasks all of them ran. Of all env
    subsets, the one that keeps the most (algorithm, env) cells wins; ties go to more
    algorithms, then more envs, then the alphabetically first subset.
    """
    coverage: dict[str, set[str]] = defaultdict(set)
    for cell in cells:
        coverage[cell.algorithm].add(cell.env)
    envs = sorted({cell.env for cell in cells}, key=env_key)
    best: tuple[tuple[int, int, int], list[str], list[str]] | None = None
    for size in range(1, len(envs) + 1):
        for subset in itertools.combinations(envs, size):
            algorithms = sorted(a for a, covered in coverage.items() if set(subset) <= covered)
            score = (len(algorithms) * size, len(algorithms), size)
            if best is None or score > best[0]:
                best = (score, list(subset), algorithms)
    return (best[1], best[2]) if best else ([], [])


@dataclass(frozen=True)
class ScoreMatrices:
    """Per algorithm, ``scores (num_runs, num_tasks)`` of one metric, and what was left out.

    ``defined[algorithm]`` is ``(defined runs, runs)`` summed over tasks; ``left_out`` names
    the algorithms with too few defined runs on some task to be compared.
    """

    scores: dict[str, np.ndarray]
    runs: dict[str, int]
    defined: dict[str, tuple[int, int]]
    left_out: tuple[str, ...]


def score_matrices(cells: Sequence[Cell], tasks: Sequence[str], algorithms: Sequence[str],
                   metric: str) -> ScoreMatrices:
    """``metric`` per algorithm on ``tasks`` (:class:`ScoreMatrices`).

    A task's runs are its reported values (:meth:`Cell.reported`) in seed order; every
    task of an algorithm keeps the smallest count among them (runs are independent across
    tasks, so which seeds fill a column does not pair anything).
    """
    by_key = {(cell.algorithm, cell.env): cell for cell in cells}
    scores, runs, defined, left_out = {}, {}, {}, []
    for algorithm in algorithms:
        task_cells = [by_key[(algorithm, env)] for env in tasks]
        columns = [cell.reported(metric) for cell in task_cells]
        defined[algorithm] = (sum(int(np.isfinite(c.metric(metric)).sum()) for c in task_cells),
                              sum(len(c.runs) for c in task_cells))
        count = min(len(column) for column in columns)
        if count:
            scores[algorithm] = np.stack([column[:count] for column in columns], axis=1)
            runs[algorithm] = count
        else:
            left_out.append(algorithm)
    return ScoreMatrices(scores, runs, defined, tuple(left_out))


def pooled_metric(name: str) -> str:
    """The registry's name of ``name`` pooled across envs."""
    return METRICS[name].pooled or name
