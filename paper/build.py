"""``make paper``: every figure and table of the paper, rebuilt from ``results/`` alone.

    python -m paper.build [--results results] [--out paper]

Reads results only through :func:`llmrl_bench.results.load_results`: an invalid result
file is printed with its path and reason and never used. Writes

- ``<out>/figures/<name>.png`` and ``.pdf``: learning curves per env, aggregate interval
  estimates per metric, performance profiles, probability of improvement,
  training vs held-out return, return against LLM compute;
- ``<out>/tables/<name>.md`` and ``.tex``: the four metrics per agent × representation ×
  env, their aggregates, runtime and compute, the protocol, the reproductions;
- ``<out>/README.md`` and ``<out>/main.tex``, which include them.

The output is a function of the results: inputs are sorted, every bootstrap uses
``random_state=0`` and ``N_RESAMPLES`` resamples, and no date enters a file's metadata,
so two builds give byte-identical files.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from llmrl_bench import plots, stats  # noqa: E402
from llmrl_bench.metrics import HEADLINE_METRICS  # noqa: E402
from llmrl_bench.results import ResultError, RunResult, load_results  # noqa: E402
from paper import reproductions  # noqa: E402

#: Bootstrap resamples per interval: 2000 keeps a few hundred runs well under a minute;
#: the Monte Carlo error of a 95% bound is then about 1.5% of the CI width (docs/statistics.md).
N_RESAMPLES = 2000
CONFIDENCE = 0.95
RANDOM_STATE = 0
AGGREGATES = ("iqm", "mean", "median", "optimality_gap")
PNG_DPI = 150
PNG_METADATA = {"Software": None}
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None}
FIGURE_FORMATS = ("png", "pdf")
TABLE_FORMATS = ("md", "tex")


@dataclass(frozen=True)
class MetricSpec:
    """How one headline metric is reported: raw per env, normalized when envs are pooled."""

    name: str
    normalized: str
    title: str
    pooled_label: str
    lower_is_better: bool = False


METRIC_SPECS = {
    "cumulative_reward": MetricSpec(
        "cumulative_reward", "cumulative_reward_normalized", "Cumulative reward",
        "Normalized final return (higher is better)",
    ),
    "policy_stability": MetricSpec(
        "policy_stability", "policy_stability_normalized", "Policy stability",
        "Normalized dispersion across time (lower is more stable)", lower_is_better=True,
    ),
    "learning_speed": MetricSpec(
        "learning_speed", "learning_speed", "Learning speed",
        "Normalized area under the learning curve (higher is faster)",
    ),
    "generalization": MetricSpec(
        "generalization", "generalization_normalized", "Generalization",
        "Normalized held-out return (higher is better)",
    ),
}
assert tuple(METRIC_SPECS) == HEADLINE_METRICS


# ------------------------------------------------------------------------- selection


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

    def metric(self, name: str) -> np.ndarray:
        """One value per run, ``(num_runs,)``; a stored ``null`` is NaN."""
        return np.array([_number(run.metrics.get(name)) for run in self.runs], dtype=float)

    def provenance(self, name: str) -> np.ndarray:
        """A provenance field per run, ``(num_runs,)``; NaN where the run lacks it."""
        return np.array([_number(run.provenance.get(name)) for run in self.runs], dtype=float)

    def curves(self, key: str = "train_return") -> tuple[np.ndarray, np.ndarray]:
        """Evaluation steps ``(num_steps,)`` and curves ``(num_runs, num_steps)``."""
        steps = np.array([point["step"] for point in self.runs[0].curve], dtype=float)
        curves = np.array([[_number(point[key]) for point in run.curve] for run in self.runs], dtype=float)
        return steps, curves


@dataclass
class Selection:
    """The cells the paper reports and why any valid run was left out."""

    cells: list[Cell]
    notes: list[str] = field(default_factory=list)


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def env_key(env: str) -> tuple[str, str]:
    """Envs in case-insensitive order: cartpole, maze, MiniGrid-..."""
    return (env.lower(), env)


def select_cells(results: Sequence[RunResult]) -> Selection:
    """One configuration per agent × representation × env: the one with the most seeds.

    Ties go to the larger training budget, then to the configuration key, so the choice
    never depends on file order. Runs of other configurations (another budget, changed
    hyperparameters) are left out of the figures and named in ``notes``; the reproduction
    tables match their own budgets (:mod:`paper.reproductions`).
    """
    groups: dict[tuple[str, str, str], dict[str, list[RunResult]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        groups[(result.agent, result.repr, result.env)][reproductions.configuration_key(result)].append(result)
    cells, notes = [], []
    for (agent, repr_, env), configurations in sorted(groups.items(), key=lambda item: (env_key(item[0][2]), item[0])):

        def preference(key: str) -> tuple[int, int, str]:
            runs = configurations[key]
            return (len(runs), runs[0].config.get("budget", {}).get("env_steps", 0), key)

        chosen = max(configurations, key=preference)
        runs = sorted(configurations[chosen], key=lambda run: run.seed)
        length = len(runs[0].curve)
        kept = [run for run in runs if [p["step"] for p in run.curve] == [p["step"] for p in runs[0].curve]]
        if len(kept) < len(runs):
            notes.append(f"{agent}/{repr_} on {env}: {len(runs) - len(kept)} run(s) whose evaluation steps differ "
                         f"from the other runs' {length} points left out")
        cells.append(Cell(agent, repr_, env, tuple(kept)))
        for key in sorted(configurations):
            if key != chosen:
                other = configurations[key]
                steps = other[0].config.get("budget", {}).get("env_steps")
                notes.append(
                    f"{agent}/{repr_} on {env}: {len(other)} run(s) of another configuration "
                    f"({steps} env steps, sweep {', '.join(sorted({r.sweep for r in other}))}) left out of the "
                    f"figures; the chosen one has {len(kept)} seed(s) at {cells[-1].budget.get('env_steps')} env steps"
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


def score_matrices(
    cells: Sequence[Cell], tasks: Sequence[str], algorithms: Sequence[str], metric: str
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """``{algorithm: scores (num_runs, num_tasks)}`` of ``metric`` on ``tasks``.

    A task's runs are its finite values in seed order; every task of an algorithm keeps
    the smallest count among them (runs are independent across tasks, so which seeds
    fill a column does not pair anything). Algorithms with no finite value are dropped.
    """
    by_key = {(cell.algorithm, cell.env): cell for cell in cells}
    scores, runs = {}, {}
    for algorithm in algorithms:
        columns = []
        for env in tasks:
            values = by_key[(algorithm, env)].metric(metric)
            columns.append(values[np.isfinite(values)])
        count = min(len(column) for column in columns)
        if count:
            scores[algorithm] = np.stack([column[:count] for column in columns], axis=1)
            runs[algorithm] = count
    return scores, runs


# ------------------------------------------------------------------------- figures


def note_figure(title: str, note: str, xlabel: str = "", ylabel: str = "", figsize=(6.0, 3.5)) -> Figure:
    """An empty axes with a visible note, for figures whose data is absent."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    ax.text(0.5, 0.5, note, ha="center", va="center", fontsize="large", transform=ax.transAxes,
            bbox={"boxstyle": "round", "facecolor": "0.95", "edgecolor": "0.6"})
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def learning_curve_figure(env: str, cells: Sequence[Cell], colors: dict[str, str], n_resamples: int) -> Figure:
    """IQM training-split return per evaluation step, one line and 95% band per algorithm."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    for cell in cells:
        steps, curves = cell.curves("train_return")
        label = f"{cell.algorithm} (n={len(cell.runs)})"
        plots.plot_learning_curves(
            steps, {label: curves}, n_resamples=n_resamples, random_state=RANDOM_STATE,
            confidence=CONFIDENCE, colors={label: colors[cell.algorithm]}, ax=ax,
            ylabel="IQM evaluation return (training split)",
        )
    ax.set_title(f"{env}: IQM over seeds, 95% CI band", fontsize="medium")
    return fig


def aggregate_figure(spec: MetricSpec, estimates: dict[str, dict[str, stats.IntervalEstimate]],
                     metric_names: Sequence[str], tasks: Sequence[str], runs: dict[str, int],
                     colors: dict[str, str]) -> Figure:
    """Aggregate interval estimates of one metric over the comparison tasks."""
    algorithms = sorted(estimates)
    labelled = {f"{a} (n={runs[a]})": estimates[a] for a in algorithms}
    fig, _ = plots.plot_interval_estimates(
        labelled, metric_names, xlabel=spec.pooled_label,
        colors={f"{a} (n={runs[a]})": colors[a] for a in algorithms},
        titles={"optimality_gap": "Optimality gap (lower is better)"},
    )
    fig.suptitle(f"{spec.title}: 95% CIs over runs × tasks; tasks: {', '.join(tasks)}", fontsize="medium")
    return fig


def generalization_figure(cells: Sequence[Cell], colors: dict[str, str], n_resamples: int) -> Figure:
    """Per env: IQM over seeds of the final return on the training split and held out."""
    envs = sorted({cell.env for cell in cells}, key=env_key)
    ncols = min(3, len(envs))
    nrows = -(-len(envs) // ncols)
    widest = max(sum(cell.env == env for cell in cells) for env in envs)
    fig = Figure(figsize=(ncols * max(4.2, 1.2 + 1.1 * widest), 0.6 + nrows * 3.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    handles = []
    for ax, env in zip(axes, envs):
        estimates = {}
        for cell in (c for c in cells if c.env == env):
            splits = {}
            for split, metric in (("training", "cumulative_reward"), ("held out", "generalization")):
                values = cell.metric(metric)
                values = values[np.isfinite(values)]
                splits[split] = (
                    stats.iqm_across_seeds(values, CONFIDENCE, n_resamples, RANDOM_STATE)
                    if values.size else (np.nan, np.nan, np.nan)
                )
            estimates[(cell.algorithm, f"n={len(cell.runs)}")] = splits
        plots.plot_train_vs_held_out(estimates, ["training", "held out"], ylabel="IQM final return",
                                     colors=colors, ax=ax)
        legend = ax.get_legend()
        handles = handles or legend.legend_handles
        legend.remove()  # one legend for the whole figure, below
        ax.set_title(env, fontsize="medium")
        ax.tick_params(axis="x", labelsize="small")
    for ax in axes[len(envs):]:
        ax.set_axis_off()
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    fig.suptitle("Final return, training split vs held out\n(IQM over seeds, 95% CI)", fontsize="medium")
    return fig


def is_llm_run(run: RunResult) -> bool:
    return bool(run.provenance.get("llm_flops"))


def compute_figure(cells: Sequence[Cell], n_resamples: int) -> Figure:
    """Normalized IQM training return against cumulative LLM FLOPs, one line per LLM cell.

    A run's ``llm_flops`` counts all its LLM forward and backward passes, evaluations
    included; evaluations are evenly spaced, so the FLOPs spent by an evaluation step are
    taken pro rata, ``llm_flops × step / budget`` (median over seeds). Step 0 (no compute)
    is left out of the log axis.
    """
    xlabel, ylabel = "Cumulative LLM FLOPs (pro rata to env steps)", "Normalized IQM return (training split)"
    llm_cells = [cell for cell in cells if any(is_llm_run(run) for run in cell.runs)]
    if not llm_cells:
        return note_figure("Return against LLM compute", "no LLM runs in results/", xlabel, ylabel)
    flops, returns, cis = {}, {}, {}
    for cell in llm_cells:
        runs = tuple(run for run in cell.runs if is_llm_run(run))
        steps, curves = Cell(cell.agent, cell.repr, cell.env, runs).curves("train_return")
        total = float(np.median([run.provenance["llm_flops"] for run in runs]))
        low, high = runs[0].env_info.get("score_range", (0.0, 1.0))
        point, lo, hi = stats.aggregate_curve_with_cis((curves - low) / (high - low), stats.iqm, CONFIDENCE,
                                                       n_resamples, RANDOM_STATE)
        keep = steps > 0
        label = f"{cell.algorithm} on {cell.env} (n={len(runs)})"
        flops[label] = total * steps[keep] / steps[-1]
        returns[label], cis[label] = point[keep], (lo[keep], hi[keep])
    fig, ax = plots.plot_return_vs_compute(flops, returns, cis, xlabel=xlabel, ylabel=ylabel, figsize=(6.4, 4.2))
    ax.set_title("Return against LLM compute (IQM over seeds, 95% CI)", fontsize="medium")
    return fig


def save_figure(fig: Figure, directory: Path, name: str) -> list[Path]:
    """Write ``name.png`` and ``name.pdf`` with no date or version in their metadata."""
    paths = []
    for fmt in FIGURE_FORMATS:
        path = directory / f"{name}.{fmt}"
        if fmt == "png":
            fig.savefig(path, dpi=PNG_DPI, metadata=PNG_METADATA)
        else:
            fig.savefig(path, metadata=PDF_METADATA)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Table:
    """A table rendered identically to Markdown and LaTeX (booktabs)."""

    name: str
    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str  # LaTeX column spec, one letter per column

    def markdown(self) -> str:
        marks = {"l": "---", "r": "---:", "c": ":---:"}
        lines = [
            f"**{self.caption}**",
            "",
            "| " + " | ".join(self.header) + " |",
            "| " + " | ".join(marks[a] for a in self.align) + " |",
            *("| " + " | ".join(row) + " |" for row in self.rows),
        ]
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        lines = [
            r"\begin{table}[htbp]",
            r"\centering",
            r"\small",
            rf"\caption{{{latex_escape(self.caption)}}}",
            rf"\label{{tab:{self.name.replace('_', '-')}}}",
            r"\resizebox{\linewidth}{!}{%",
            rf"\begin{{tabular}}{{{self.align}}}",
            r"\toprule",
            " & ".join(latex_escape(cell) for cell in self.header) + r" \\",
            r"\midrule",
            *(" & ".join(latex_escape(cell) for cell in row) + r" \\" for row in self.rows),
            r"\bottomrule",
            r"\end{tabular}}",
            r"\end{table}",
        ]
        return "\n".join(lines) + "\n"


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {
    "±": r"$\pm$", "×": r"$\times$", "–": "--", "—": "---",
    "↓": r"$\downarrow$", "≥": r"$\geq$", "τ": r"$\tau$",
}


def latex_escape(text: str) -> str:
    """``text`` as LaTeX: specials escaped, the few Unicode symbols the tables use as math."""
    out = "".join(_LATEX_SPECIALS.get(char, char) for char in text)
    for symbol, replacement in _LATEX_SYMBOLS.items():
        out = out.replace(symbol, replacement)
    return out


def _digits(magnitude: float) -> int:
    return 1 if magnitude >= 100 else 2 if magnitude >= 10 else 3


def fmt(value: float | None, digits: int | None = None) -> str:
    """A number with precision by magnitude (500.0, 42.50, 0.964) or ``digits``; ``–`` when missing."""
    if value is None or not np.isfinite(value):
        return "–"
    magnitude = abs(value)
    if magnitude >= 1e5 or (0 < magnitude < 1e-3 and digits is None):
        return f"{value:.3g}"
    return f"{value:.{_digits(magnitude) if digits is None else digits}f}"


def fmt_estimate(estimate: stats.IntervalEstimate | None) -> str:
    """``point [low, high]``, all three at the precision of the largest."""
    if estimate is None or not np.isfinite(estimate.point):
        return "–"
    values = (estimate.point, estimate.low, estimate.high)
    largest = max(abs(v) for v in values)
    if largest >= 1e5:
        return f"{estimate.point:.3g} [{estimate.low:.3g}, {estimate.high:.3g}]"
    digits = _digits(largest)
    return f"{fmt(estimate.point, digits)} [{fmt(estimate.low, digits)}, {fmt(estimate.high, digits)}]"


def fmt_seeds(seeds: Sequence[int]) -> str:
    """``0–9 (10)`` for a contiguous range, else the list."""
    if not seeds:
        return "–"
    seeds = sorted(seeds)
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}–{seeds[-1]} ({len(seeds)})"
    return f"{', '.join(map(str, seeds))} ({len(seeds)})"


def metrics_table(cells: Sequence[Cell], n_resamples: int) -> Table:
    header = ("env", "agent", "repr", "seeds", "env steps", "cumulative reward", "policy stability ↓",
              "learning speed", "generalization")
    rows = []
    for cell in cells:
        estimates = []
        for metric in HEADLINE_METRICS:
            values = cell.metric(metric)
            values = values[np.isfinite(values)]
            estimates.append(fmt_estimate(
                stats.iqm_across_seeds(values, CONFIDENCE, n_resamples, RANDOM_STATE) if values.size else None))
        rows.append((cell.env, cell.agent, cell.repr, str(len(cell.runs)), str(cell.budget.get("env_steps", "–")),
                     *estimates))
    caption = ("The four metrics per agent × representation × env: IQM over seeds [95% stratified-bootstrap CI]. "
               "Raw units: return (cumulative reward, generalization), return change between evaluations "
               "(policy stability, lower is more stable), normalized area under the curve (learning speed).")
    return Table("metrics", caption, header, tuple(rows), "lllrr" + "r" * 4)


def aggregates_table(aggregates: dict[str, dict[str, dict[str, stats.IntervalEstimate]]],
                     runs: dict[str, dict[str, int]], tasks: Sequence[str]) -> Table:
    header = ("metric", "algorithm", "runs per task", "IQM", "mean", "median", "optimality gap")
    rows = []
    for metric, by_algorithm in aggregates.items():
        spec = METRIC_SPECS[metric]
        for algorithm, estimates in sorted(by_algorithm.items()):
            rows.append((spec.normalized, algorithm, str(runs[metric][algorithm]),
                         *(fmt_estimate(estimates.get(name)) for name in AGGREGATES)))
    caption = (f"Aggregates of the normalized metrics over runs × tasks, tasks: {', '.join(tasks) or '–'} "
               "[95% stratified-bootstrap CI]. The optimality gap is not defined for policy stability, "
               "where lower is better.")
    return Table("aggregates", caption, header, tuple(rows), "llr" + "r" * 4)


def runtime_table(cells: Sequence[Cell]) -> Table:
    header = ("env", "agent", "repr", "seeds", "env steps", "wall s (median)", "wall s (total)",
              "env steps/s (median)", "peak memory MB (max)", "LLM FLOPs (median)", "LLM tokens (median)")
    rows = []
    total = 0.0
    for cell in cells:
        wall = cell.provenance("wall_seconds")
        total += float(np.nansum(wall))
        flops, tokens = cell.provenance("llm_flops"), cell.provenance("llm_tokens")
        rows.append((
            cell.env, cell.agent, cell.repr, str(len(cell.runs)), str(cell.budget.get("env_steps", "–")),
            fmt(float(np.nanmedian(wall))), fmt(float(np.nansum(wall))),
            fmt(float(np.nanmedian(cell.provenance("env_steps_per_second")))),
            fmt(float(np.nanmax(cell.provenance("peak_memory_mb")))),
            f"{np.nanmedian(flops):.3g}" if np.isfinite(flops).any() else "–",
            f"{np.nanmedian(tokens):.3g}" if np.isfinite(tokens).any() else "–",
        ))
    rows.append(("all", "", "", str(sum(len(cell.runs) for cell in cells)), "", "", fmt(total), "", "", "", ""))
    caption = ("Runtime and compute per run (one process, one torch thread): wall-clock seconds of training "
               "with its evaluations, training env steps per wall-clock second, peak resident memory of the "
               "worker process (which may have run earlier jobs), and LLM FLOPs and tokens where the agent "
               "uses a language model.")
    return Table("runtime", caption, header, tuple(rows), "lllrr" + "r" * 6)


def evaluation_policy(run: RunResult) -> str:
    """``argmax``, or ``sampled (T=…)`` for an LLM agent run with ``llm.eval_sampling``."""
    llm = run.config.get("agent", {}).get("llm") or {}
    return f"sampled (T={llm.get('temperature')})" if llm.get("eval_sampling") else "argmax"


def protocol_table(cells: Sequence[Cell]) -> Table:
    header = ("env", "agent", "repr", "sweep", "seeds", "env steps", "evaluations", "evaluation policy",
              "eval episodes", "held-out episodes × contexts")
    rows = []
    for cell in cells:
        budget = cell.budget
        contexts = cell.runs[0].env_info.get("held_out_contexts")
        rows.append((
            cell.env, cell.agent, cell.repr, ", ".join(cell.sweeps), fmt_seeds(cell.seeds),
            str(budget.get("env_steps", "–")), str(budget.get("num_evals", 0) + 1),
            evaluation_policy(cell.runs[0]), str(budget.get("eval_episodes", "–")),
            f"{budget.get('held_out_episodes', '–')} × {len(contexts) if contexts is not None else '–'}",
        ))
    caption = ("Protocol per agent × representation × env: the sweep that made the runs, the seeds, the training "
               "budget, the number of evaluations (evenly spaced from step 0), the evaluation policy (the "
               "argmax action, or for LLM agents with llm.eval_sampling a sample of their softmax at "
               "temperature T), the episodes per evaluation on the training split, and the episodes per "
               "held-out context.")
    return Table("protocol", caption, header, tuple(rows), "llllrrrlrr")


def reproduction_table(table: reproductions.PublishedTable, rows: Sequence[reproductions.ReproductionRow],
                       source: dict[str, str]) -> Table:
    header = ("env", "agent", "env steps", "RL Zoo (mean ± std, 1 agent)", "ours: IQM [95% CI]", "seeds",
              "eval episodes", "sweep")
    out = []
    for row in rows:
        published = row.published
        digits = _digits(abs(published.mean))
        reference = fmt(published.mean, digits) + (
            f" ± {fmt(published.std, digits)}" if published.std is not None else "")
        if row.estimate is None:
            ours, seeds, episodes, sweeps = "not run", "0", "–", "–"
        else:
            ours, seeds = fmt_estimate(row.estimate), fmt_seeds(row.seeds)
            episodes, sweeps = str(row.eval_episodes), ", ".join(row.sweeps)
        out.append((published.gym_id, published.agent, str(published.env_steps), reference, ours, seeds,
                    episodes, sweeps))
    caption = (f"Reproduction, {table.title} (experiment {table.name}): final return of our runs, IQM over seeds "
               f"with a 95% stratified-bootstrap CI, next to {source['name']} ({source['url']}), whose ± is "
               f"the std over evaluation episodes of a single trained agent.")
    return Table(table.name, caption, header, tuple(out), "llrrrlrl")


def write_table(table: Table, directory: Path) -> list[Path]:
    paths = []
    for fmt_, text in (("md", table.markdown()), ("tex", table.latex())):
        path = directory / f"{table.name}.{fmt_}"
        path.write_text(text)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------- documents


def readme(report: "BuildReport", tables: dict[str, Table], figures: list[tuple[str, str]]) -> str:
    """``paper/README.md``: the protocol, every table, and links to every figure."""
    cells = report.cells
    budgets = sorted({cell.budget.get("env_steps") for cell in cells if cell.budget.get("env_steps") is not None})
    seed_counts = sorted({len(cell.runs) for cell in cells})
    lines = [
        "# Paper: figures and tables",
        "",
        "Generated by `make paper` (`python -m paper.build`) from the results in "
        f"`{report.results_dir}`; do not edit by hand. Every number below comes from that build.",
        "",
        f"- Valid runs read: {report.num_results}; runs reported: {sum(len(c.runs) for c in cells)} in "
        f"{len(cells)} agent × representation × env cells; invalid result files: {len(report.errors)}.",
        f"- Seeds per cell: {', '.join(map(str, seed_counts)) or '–'}; training budgets (env steps): "
        f"{', '.join(map(str, budgets)) or '–'}.",
        "",
        "## Protocol",
        "",
        "Each run trains one agent with one representation on one env from one seed, then evaluates its "
        "evaluation policy (the argmax action unless the protocol table says sampled) at evenly spaced steps "
        "from step 0 to the budget: episodes on the training distribution and on "
        "every held-out context, with fixed evaluation seeds that training never uses (`docs/metrics.md`).",
        "",
        tables["protocol"].markdown(),
        "### Metrics",
        "",
        "Definitions and citations: [`docs/metrics.md`](../docs/metrics.md).",
        "",
        "- **cumulative reward**: mean undiscounted return of the final policy on the training distribution;",
        "- **policy stability**: dispersion across time, the inter-quartile range of the differenced "
        "training-split evaluation curve (Chan et al. 2020); lower is more stable;",
        "- **learning speed**: normalized area under the training-split evaluation curve over the budget, in [0, 1];",
        "- **generalization**: mean return of the final policy on the held-out contexts.",
        "",
        "Pooled figures use the normalized companions (`cumulative_reward_normalized`, "
        "`policy_stability_normalized`, `learning_speed`, `generalization_normalized`), which map returns onto "
        "[0, 1] by each env's score range.",
        "",
        "### Statistics",
        "",
        f"Point estimates are interquartile means (IQM) over seeds, or over runs × tasks when envs are pooled; "
        f"intervals are {CONFIDENCE:.0%} percentile stratified-bootstrap CIs with {N_RESAMPLES} resamples and "
        f"`random_state={RANDOM_STATE}` (Agarwal et al. 2021; [`docs/statistics.md`](../docs/statistics.md)). "
        "With one seed an interval collapses to its point: that is no claim of certainty. "
        f"Pooled comparisons (aggregates, performance profiles, probability of improvement) use the tasks "
        f"{', '.join(f'`{t}`' for t in report.tasks) or '–'}, on which "
        f"{', '.join(f'`{a}`' for a in report.algorithms) or 'no algorithm'} all ran; algorithms missing one of "
        "these envs appear only in the per-env figures and tables.",
        "",
        "## Reproductions",
        "",
        "Our final return next to RL Baselines3 Zoo's published one. Runs match a row by agent, env, "
        "`repr=vector` and training budget, whichever sweep made them (`paper/reproductions.py`); "
        "published values and their source: [`published.yaml`](published.yaml).",
        "",
    ]
    for name in report.reproduction_tables:
        lines += [tables[name].markdown()]
    lines += ["## Figures", ""]
    for name, caption in figures:
        lines += [f"### {name}", "", caption, "", f"![{name}](figures/{name}.png)", "",
                  f"PDF: [`figures/{name}.pdf`](figures/{name}.pdf)", ""]
    lines += ["## Tables", ""]
    for name in ("metrics", "aggregates", "runtime"):
        lines += [tables[name].markdown(), f"LaTeX: [`tables/{name}.tex`](tables/{name}.tex)", ""]
    lines += ["## Left out", ""]
    if not report.errors and not report.notes:
        lines += ["Nothing: every result file was valid and every valid run is reported.", ""]
    for error in report.errors:
        lines.append(f"- invalid result file `{error.path}`: {error.reason}")
    for note in report.notes:
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"


def main_tex(tables: dict[str, Table], figures: list[tuple[str, str]], reproduction_names: Sequence[str]) -> str:
    """A short LaTeX paper that inputs every table and includes every figure (PDF)."""
    lines = [
        r"% Generated by `make paper` (python -m paper.build); do not edit by hand.",
        r"\documentclass{article}",
        r"\usepackage[margin=2cm]{geometry}",
        r"\usepackage{booktabs,graphicx}",
        r"\title{llmrl\_bench: results}",
        r"\date{}",
        r"\begin{document}",
        r"\maketitle",
        r"\section{Protocol}",
        latex_escape("Seeds, budgets and evaluation episodes per agent × representation × env are in ")
        + r"Table~\ref{tab:protocol}.",
        latex_escape(f"Point estimates are interquartile means; intervals are {CONFIDENCE:.0%} percentile "
                     f"stratified-bootstrap CIs with {N_RESAMPLES} resamples (Agarwal et al. 2021). "
                     "Metric definitions: docs/metrics.md."),
        r"\input{tables/protocol.tex}",
        r"\section{Reproductions}",
        *(rf"\input{{tables/{name}.tex}}" for name in reproduction_names),
        r"\section{Results}",
        *(rf"\input{{tables/{name}.tex}}" for name in ("metrics", "aggregates", "runtime")),
    ]
    for name, caption in figures:
        lines += [
            r"\begin{figure}[htbp]",
            r"\centering",
            rf"\includegraphics[width=\linewidth,height=0.4\textheight,keepaspectratio]{{figures/{name}.pdf}}",
            rf"\caption{{{latex_escape(caption)}}}",
            rf"\label{{fig:{name.replace('_', '-')}}}",
            r"\end{figure}",
        ]
    lines += [r"\clearpage", r"\end{document}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- the build


@dataclass
class BuildReport:
    """What one build read, reported and wrote."""

    results_dir: str
    num_results: int
    errors: list[ResultError]
    cells: list[Cell]
    notes: list[str]
    tasks: list[str]
    algorithms: list[str]
    reproduction_tables: list[str]
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def _clear(directory: Path, suffixes: Iterable[str]) -> None:
    """Remove a previous build's outputs, so a vanished env leaves no stale figure behind."""
    directory.mkdir(parents=True, exist_ok=True)
    for suffix in suffixes:
        for path in directory.glob(f"*.{suffix}"):
            path.unlink()


def build(results_dir: str | Path = "results/reference", out_dir: str | Path = "paper", n_resamples: int = N_RESAMPLES,
          log: Callable[[str], None] = print) -> BuildReport:
    """Rebuild every figure, table and document of the paper from ``results_dir``."""
    start = time.perf_counter()
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    results, errors = load_results(results_dir)
    for error in errors:
        log(f"invalid result file (not used): {error.path}: {error.reason}")
    selection = select_cells(results)
    for note in selection.notes:
        log(f"left out: {note}")
    cells = selection.cells
    tasks, algorithms = comparison_tasks(cells)
    published = reproductions.load_published()
    report = BuildReport(
        results_dir=str(results_dir), num_results=len(results),
        errors=[ResultError(_relative(e.path, results_dir), e.reason) for e in errors],
        cells=cells, notes=selection.notes, tasks=tasks, algorithms=algorithms,
        reproduction_tables=[table.name for table in published.tables],
    )
    figures_dir, tables_dir = out_dir / "figures", out_dir / "tables"
    _clear(figures_dir, FIGURE_FORMATS)
    _clear(tables_dir, TABLE_FORMATS)
    colors = plots.algorithm_colors(cell.algorithm for cell in cells)
    figures: list[tuple[str, str]] = []

    def emit(name: str, fig: Figure, caption: str) -> None:
        report.files.extend(save_figure(fig, figures_dir, name))
        figures.append((name, caption))

    # Learning curves, one figure per env.
    for env in sorted({cell.env for cell in cells}, key=env_key):
        emit(f"learning_curves_{env}", learning_curve_figure(env, [c for c in cells if c.env == env], colors,
                                                             n_resamples),
             f"Learning curves on {env}: IQM over seeds of the training-split evaluation return at each "
             f"evaluation step, with {CONFIDENCE:.0%} bootstrap bands; n is the number of seeds.")

    # Aggregate interval estimates, one figure per headline metric, pooled over the comparison tasks.
    aggregates: dict[str, dict[str, dict[str, stats.IntervalEstimate]]] = {}
    aggregate_runs: dict[str, dict[str, int]] = {}
    for metric, spec in METRIC_SPECS.items():
        scores, runs = score_matrices(cells, tasks, algorithms, spec.normalized)
        aggregate_runs[metric] = runs
        # The optimality gap is a shortfall below a target of 1: meaningless where lower is better.
        names = [name for name in AGGREGATES if not (spec.lower_is_better and name == "optimality_gap")]
        aggregates[metric] = stats.aggregate_with_cis(scores, names, CONFIDENCE, n_resamples, RANDOM_STATE)
        if scores:
            fig = aggregate_figure(spec, aggregates[metric], names, tasks, runs, colors)
        else:
            fig = note_figure(spec.title, "no results in results/", spec.pooled_label)
        emit(f"aggregate_{metric}", fig,
             f"{spec.title}: {', '.join(n.replace('_', ' ') for n in names)} of `{spec.normalized}` over runs × "
             f"tasks (tasks: {', '.join(tasks) or 'none'}), with {CONFIDENCE:.0%} stratified-bootstrap CIs"
             + ("; lower is more stable, so no optimality gap is shown." if spec.lower_is_better else "."))

    # Performance profiles and probability of improvement on the normalized final return.
    scores, runs = score_matrices(cells, tasks, algorithms, "cumulative_reward_normalized")
    if scores:
        values = np.concatenate([s.ravel() for s in scores.values()])
        taus = np.linspace(min(0.0, float(values.min())), max(1.0, float(values.max())), 101)
        profiles = stats.performance_profiles(scores, taus, CONFIDENCE, n_resamples, RANDOM_STATE)
        labelled = {f"{a} (n={runs[a]})": profiles[a] for a in sorted(profiles)}
        fig, ax = plots.plot_performance_profiles(
            taus, labelled, colors={f"{a} (n={runs[a]})": colors[a] for a in profiles})
        ax.set_title(f"Run-score distributions, tasks: {', '.join(tasks)}", fontsize="medium")
    else:
        fig = note_figure("Performance profiles", "no results in results/")
    emit("performance_profiles", fig,
         "Performance profiles: fraction of runs × tasks whose normalized final return exceeds τ, with "
         f"{CONFIDENCE:.0%} pointwise bootstrap bands (tasks: {', '.join(tasks) or 'none'}).")

    pairs = {
        (x, y): stats.probability_of_improvement_with_ci(scores[x], scores[y], CONFIDENCE, n_resamples,
                                                         RANDOM_STATE)
        for x, y in itertools.combinations(sorted(scores), 2)
    }
    if pairs:
        fig, ax = plots.plot_probability_of_improvement(pairs, colors=colors, figsize=(7.0, 1.6 + 0.5 * len(pairs)))
        ax.set_title(f"P(X > Y), normalized final return; tasks: {', '.join(tasks)}", fontsize="medium")
    else:
        fig = note_figure("Probability of improvement", "needs two algorithms on common envs", "P(X > Y)")
    emit("probability_of_improvement", fig,
         "Probability of improvement: the probability that a run of X has a higher normalized final return "
         "than a run of Y on the same task, averaged over tasks, with "
         f"{CONFIDENCE:.0%} stratified-bootstrap CIs; 0.5 is no improvement.")

    fig = (generalization_figure(cells, colors, n_resamples) if cells
           else note_figure("Generalization", "no results in results/"))
    emit("generalization", fig,
         "Generalization: IQM over seeds of the final policy's return on the training distribution (solid) "
         "and on the held-out contexts (hatched), per agent and representation, one panel per env.")

    emit("return_vs_llm_compute", compute_figure(cells, n_resamples),
         "Return against LLM compute: normalized IQM training-split return at each evaluation step against "
         "the cumulative LLM FLOPs spent by then, for runs of LLM agents.")

    # Tables.
    tables = {
        "metrics": metrics_table(cells, n_resamples),
        "aggregates": aggregates_table(aggregates, aggregate_runs, tasks),
        "runtime": runtime_table(cells),
        "protocol": protocol_table(cells),
    }
    for table in published.tables:
        tables[table.name] = reproduction_table(
            table, reproductions.reproduce(results, table, n_resamples, RANDOM_STATE), published.source)
    for table in tables.values():
        report.files.extend(write_table(table, tables_dir))

    for path, text in ((out_dir / "README.md", readme(report, tables, figures)),
                       (out_dir / "main.tex", main_tex(tables, figures, report.reproduction_tables))):
        path.write_text(text)
        report.files.append(path)
    report.seconds = time.perf_counter() - start
    return report


def _relative(path: Path, root: Path) -> Path:
    """``path`` relative to ``root`` when inside it, so documents do not name the machine's paths."""
    try:
        return Path(path).relative_to(root)
    except ValueError:
        return Path(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paper.build", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/reference", help="results directory to read (default: results/reference)")
    parser.add_argument("--out", default="paper", help="where figures/, tables/, README.md go (default: paper)")
    args = parser.parse_args(argv)
    if not Path(args.results).is_dir():
        print(f"paper: results directory {args.results!r} not found", file=sys.stderr)
        return 2
    report = build(args.results, args.out, log=lambda line: print(line, file=sys.stderr))
    figures = sum(path.suffix == ".png" for path in report.files)
    tables = sum(path.suffix == ".md" and path.parent.name == "tables" for path in report.files)
    print(f"paper: {report.num_results} runs ({len(report.errors)} invalid files), {len(report.cells)} cells -> "
          f"{figures} figures, {tables} tables in {args.out}/ ({report.seconds:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
