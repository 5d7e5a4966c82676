"""The paper's figures, each a ``matplotlib.figure.Figure`` with its caption (no pyplot state)."""

from __future__ import annotations

import itertools
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.transforms import offset_copy  # noqa: E402

from llmrl_bench import plots, stats  # noqa: E402
from llmrl_bench.metrics import HEADLINE_METRICS, METRICS  # noqa: E402
from llmrl_bench.results import RunResult  # noqa: E402
from paper import equal_budget  # noqa: E402
from paper.select import Cell, ScoreMatrices, env_key, score_matrices  # noqa: E402
from paper.settings import AGGREGATES, CONFIDENCE, IQM_IS_MEAN, MIN_VALUES_FOR_IQM, RANDOM_STATE, iqm_label  # noqa: E402

PNG_DPI = 150
PNG_METADATA = {"Software": None}
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None}
FIGURE_FORMATS = ("png", "pdf")


@dataclass(frozen=True)
class PaperFigure:
    name: str
    figure: Figure
    caption: str

    def save(self, directory: Path) -> list[Path]:
        """``name.png`` and ``name.pdf`` with no date or version in their metadata."""
        paths = []
        for fmt in FIGURE_FORMATS:
            path = directory / f"{self.name}.{fmt}"
            metadata = PNG_METADATA if fmt == "png" else PDF_METADATA
            self.figure.savefig(path, metadata=metadata, **({"dpi": PNG_DPI} if fmt == "png" else {}))
            paths.append(path)
        return paths


def paper_colors(cells: Iterable[Cell]) -> dict[str, str]:
    """The one colour map of the paper, keyed by algorithm (``agent/repr``): one colour per agent, the i-th agent
    (sorted) of ``cells`` getting ``plots.PALETTE[i]``. Build it once from every cell and pass it to every figure."""
    cells = list(cells)
    by_agent = plots.algorithm_colors(cell.agent for cell in cells)
    return {cell.algorithm: by_agent[cell.agent] for cell in cells}


def write_note(ax, note: str) -> None:
    """A visible note in the middle of ``ax``, for a panel whose data is absent."""
    ax.text(0.5, 0.5, note, ha="center", va="center", fontsize="large", transform=ax.transAxes,
            bbox={"boxstyle": "round", "facecolor": "0.95", "edgecolor": "0.6"})


def note_figure(title: str, note: str, xlabel: str = "", ylabel: str = "", figsize=(6.0, 3.5)) -> Figure:
    """An empty axes with a visible note, for figures whose data is absent."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    write_note(ax, note)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


#: A learning-curve figure gets a log step axis where its cells' budgets span more than this factor.
LOG_STEPS_BUDGET_RATIO = 10


def log_steps(cells: Sequence[Cell]) -> bool:
    """Whether the cells' budgets span more than :data:`LOG_STEPS_BUDGET_RATIO` (a linear axis would squeeze the short ones)."""
    budgets = [float(cell.budget["env_steps"]) for cell in cells]
    return bool(budgets) and max(budgets) > LOG_STEPS_BUDGET_RATIO * min(budgets)


def learning_curve_figure(env: str, cells: Sequence[Cell], colors: dict[str, str], n_resamples: int) -> Figure:
    """IQM training-split return per evaluation step, one line and 95% band per algorithm, its mode in the legend.

    Budgets spanning more than :data:`LOG_STEPS_BUDGET_RATIO` get a log step axis, without step 0.
    """
    fig = Figure(figsize=(7.2, 5.0), layout="constrained")
    ax = fig.subplots()
    log = log_steps(cells)
    for cell in cells:
        steps, curves, mode = equal_budget.headline_curves(cell)
        source = "protocol" if equal_budget.cell_follows_protocol(cell) else "own policy"
        label = f"{cell.algorithm}: {mode}, {source} ({iqm_label(len(cell.runs))})"
        keep = steps > 0 if log else np.ones_like(steps, dtype=bool)
        plots.plot_learning_curves(
            steps[keep], {label: curves[:, keep]}, n_resamples=n_resamples, random_state=RANDOM_STATE,
            confidence=CONFIDENCE, colors={label: colors[cell.algorithm]}, ax=ax,
            xlabel="Environment steps" + (" (log scale)" if log else ""),
            ylabel="IQM evaluation return (training split)",
        )
    if log:
        ax.set_xscale("log")
    ax.get_legend().remove()
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize="small", frameon=False)
    ax.set_title(f"{env}: IQM over seeds, 95% CI band", fontsize="medium")
    return fig


def learning_curve_caption(env: str, cells: Sequence[Cell]) -> str:
    budgets = sorted({int(cell.budget["env_steps"]) for cell in cells})
    axis = (f"The step axis is logarithmic, since the budgets span {budgets[0]:,} to {budgets[-1]:,} env steps (more "
            f"than {LOG_STEPS_BUDGET_RATIO}×): on a linear axis the short runs would be squeezed at 0; step 0 (the "
            "untrained policy) is not drawn on it. " if log_steps(cells) else
            f"The step axis is linear: the budgets span at most {LOG_STEPS_BUDGET_RATIO}×, beyond which it turns logarithmic. ")
    return (f"Learning curves on {env}: IQM over seeds of the training-split evaluation return at each evaluation "
            f"step, with {CONFIDENCE:.0%} bootstrap bands; n is the number of seeds ({IQM_IS_MEAN}). {axis}The legend "
            f"names each curve's evaluation mode: \"protocol\" curves are the protocol's headline mode "
            f"({equal_budget.HEADLINE_MODE}); \"own policy\" curves, from runs recorded before the protocol, are the "
            "agent's own evaluation policy: greedy (argmax), or sampled for LLM agents with llm.eval_sampling. "
            "One colour per agent in every figure.")


def distinct_aggregates(metric: str, num_tasks: int, runs: dict[str, int]) -> list[str]:
    """The aggregates worth a panel: none that equals another by construction for every algorithm.

    The median of one task's mean is the mean; the IQM of fewer than 4 runs × tasks is the
    mean; the optimality gap (a shortfall below 1) means nothing where lower is better.
    """
    names = list(AGGREGATES)
    if num_tasks == 1:
        names.remove("median")
    if runs and all(n * num_tasks < MIN_VALUES_FOR_IQM for n in runs.values()):
        names.remove("mean")
    if METRICS[metric].higher_is_better is not True:
        names.remove("optimality_gap")
    return names


def aggregate_figure(metric: str, estimates: dict[str, dict[str, stats.IntervalEstimate]], names: Sequence[str],
                     tasks: Sequence[str], matrix: ScoreMatrices, colors: dict[str, str]) -> Figure:
    """Aggregate interval estimates of one metric over the comparison tasks, one panel per aggregate."""
    spec, pooled = METRICS[metric], METRICS[METRICS[metric].pooled]
    labels = {a: f"{a} ({iqm_label(matrix.runs[a] * len(tasks))})" for a in sorted(estimates)}
    titles = {"optimality_gap": "Optimality gap\n(lower is better)"}
    if "mean" not in names:
        titles["iqm"] = "IQM (= mean, n < 4)"
    fig, _ = plots.plot_interval_estimates(
        {labels[a]: estimates[a] for a in labels}, names, xlabel=f"{pooled.title}, {spec.direction}",
        colors={labels[a]: colors[a] for a in labels}, titles=titles, subfigure_width=max(3.2, 7.0 / len(names)),
    )
    title = f"{spec.title}: 95% CIs over runs × tasks; tasks: {', '.join(tasks)}"
    if matrix.left_out:
        title += "\n" + textwrap.fill(f"not shown, fewer than half their runs define it: {', '.join(matrix.left_out)}", 90)
    fig.suptitle(title, fontsize="medium")
    return fig


def aggregate_figures(cells: Sequence[Cell], tasks: Sequence[str], algorithms: Sequence[str],
                      colors: dict[str, str], n_resamples: int):
    """One aggregate figure per headline metric, with the estimates and score matrices the tables use."""
    figures, aggregates, matrices = [], {}, {}
    for metric in HEADLINE_METRICS:
        spec = METRICS[metric]
        matrix = score_matrices(cells, tasks, algorithms, spec.pooled)
        names = distinct_aggregates(metric, len(tasks), matrix.runs)
        reported = [n for n in AGGREGATES if n != "optimality_gap" or spec.higher_is_better is True]
        aggregates[metric] = stats.aggregate_with_cis(matrix.scores, reported, CONFIDENCE, n_resamples, RANDOM_STATE)
        matrices[metric] = matrix
        fig = (aggregate_figure(metric, aggregates[metric], names, tasks, matrix, colors) if matrix.scores
               else note_figure(spec.title, "no results in results/", METRICS[spec.pooled].title))
        dropped = sorted(set(AGGREGATES) - set(names))
        figures.append(PaperFigure(
            f"aggregate_{metric}", fig,
            f"{spec.title}: {', '.join(n.replace('_', ' ') for n in names)} of `{spec.pooled}` over runs × tasks "
            f"(tasks: {', '.join(tasks) or 'none'}), with {CONFIDENCE:.0%} stratified-bootstrap CIs; "
            f"{spec.direction}. Not drawn, being equal to a drawn panel or meaningless here: "
            f"{', '.join(n.replace('_', ' ') for n in dropped) or 'none'} ({IQM_IS_MEAN}; one task: median = mean)."))
    return figures, aggregates, matrices


def profile_figures(cells: Sequence[Cell], tasks: Sequence[str], algorithms: Sequence[str],
                    colors: dict[str, str], n_resamples: int) -> list[PaperFigure]:
    """Performance profiles and probability of improvement on the normalized final return."""
    matrix = score_matrices(cells, tasks, algorithms, "cumulative_reward_normalized")
    scores, labels = matrix.scores, {a: f"{a} (n={n})" for a, n in matrix.runs.items()}
    if scores:
        values = np.concatenate([s.ravel() for s in scores.values()])
        taus = np.linspace(min(0.0, float(values.min())), max(1.0, float(values.max())), 101)
        profiles = stats.performance_profiles(scores, taus, CONFIDENCE, n_resamples, RANDOM_STATE)
        fig, ax = plots.plot_performance_profiles(
            taus, {labels[a]: profiles[a] for a in sorted(profiles)}, colors={labels[a]: colors[a] for a in profiles})
        ax.set_title(f"Run-score distributions, tasks: {', '.join(tasks)}", fontsize="medium")
    else:
        fig = note_figure("Performance profiles", "no results in results/")
    pairs = {(x, y): stats.probability_of_improvement_with_ci(scores[x], scores[y], CONFIDENCE, n_resamples,
                                                              RANDOM_STATE)
             for x, y in itertools.combinations(sorted(scores), 2)}
    if pairs:
        pair_fig, ax = plots.plot_probability_of_improvement(pairs, colors=colors,
                                                             figsize=(7.0, 1.6 + 0.5 * len(pairs)))
        ax.set_title(f"P(X > Y), normalized final return; tasks: {', '.join(tasks)}", fontsize="medium")
    else:
        pair_fig = note_figure("Probability of improvement", "needs two algorithms on common envs", "P(X > Y)")
    return [
        PaperFigure("performance_profiles", fig,
                    "Performance profiles: fraction of runs × tasks whose normalized final return exceeds τ, with "
                    f"{CONFIDENCE:.0%} pointwise bootstrap bands (tasks: {', '.join(tasks) or 'none'})."),
        PaperFigure("probability_of_improvement", pair_fig,
                    "Probability of improvement: the probability that a run of X has a higher normalized final "
                    f"return than a run of Y on the same task, averaged over tasks, with {CONFIDENCE:.0%} "
                    "stratified-bootstrap CIs; 0.5 is no improvement."),
    ]


def _split_estimates(cell: Cell, n_resamples: int) -> dict[str, stats.IntervalEstimate]:
    splits = {}
    for split, metric in (("training", "cumulative_reward"), ("held out", "generalization")):
        values = cell.metric(metric)
        values = values[np.isfinite(values)]
        splits[split] = (stats.iqm_across_seeds(values, CONFIDENCE, n_resamples, RANDOM_STATE)
                         if values.size else (np.nan, np.nan, np.nan))
    return splits


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
        estimates = {(cell.algorithm, iqm_label(len(cell.runs))): _split_estimates(cell, n_resamples)
                     for cell in cells if cell.env == env}
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


def compute_figure(cells: Sequence[Cell], n_resamples: int, colors: dict[str, str] | None = None) -> Figure:
    """Normalized IQM training return against cumulative LLM FLOPs, one panel per env, one line per LLM cell.

    A run's ``llm_flops`` counts all its LLM forward and backward passes, evaluations
    included; evaluations are evenly spaced, so the FLOPs spent by an evaluation step are
    taken pro rata, ``llm_flops × step / budget`` (median over seeds). Step 0 (no compute)
    is left out of the log axis. ``colors``: :func:`paper_colors` (default: of ``cells``).
    """
    xlabel, ylabel = "Cumulative LLM FLOPs (pro rata to env steps)", "Normalized IQM return (training split)"
    llm_cells = [cell for cell in cells if any(is_llm_run(run) for run in cell.runs)]
    if not llm_cells:
        return note_figure("Return against LLM compute", "no LLM runs in results/", xlabel, ylabel)
    colors = paper_colors(cells) if colors is None else colors
    envs = sorted({cell.env for cell in llm_cells}, key=env_key)
    fig = Figure(figsize=(0.6 + 4.6 * len(envs), 4.4), layout="constrained")
    axes = fig.subplots(1, len(envs), squeeze=False, sharey=True)[0]
    for ax, env in zip(axes, envs):
        flops, returns, cis, labels = {}, {}, {}, {}
        for cell in (cell for cell in llm_cells if cell.env == env):
            runs = tuple(run for run in cell.runs if is_llm_run(run))
            steps, curves = Cell(cell.agent, cell.repr, cell.env, runs).curves("train_return")
            total = float(np.median([run.provenance["llm_flops"] for run in runs]))
            low, high = cell.score_range
            point, lo, hi = stats.aggregate_curve_with_cis((curves - low) / (high - low), stats.iqm, CONFIDENCE,
                                                           n_resamples, RANDOM_STATE)
            keep = steps > 0
            label = f"{cell.algorithm} ({iqm_label(len(runs))})"
            flops[label] = total * steps[keep] / steps[-1]
            returns[label], cis[label], labels[label] = point[keep], (lo[keep], hi[keep]), colors[cell.algorithm]
        plots.plot_return_vs_compute(flops, returns, cis, xlabel=xlabel, ylabel=ylabel if ax is axes[0] else "",
                                     colors=labels, ax=ax)
        ax.legend(frameon=False, fontsize="small")
        ax.set_title(env, fontsize="medium")
    fig.suptitle("Return against LLM compute (IQM over seeds, 95% CI)", fontsize="medium")
    return fig


#: The compute panels of :func:`protocol_compute_figure`: provenance field -> (title, axis label).
COMPUTE_PANELS = {
    "llm_flops": ("LLM agents: against LLM FLOPs", "LLM FLOPs of the whole run (log scale)"),
    "wall_seconds": ("every agent: against wall-clock time", "wall-clock seconds of the whole run (log scale)"),
}
#: Horizontal offsets in points that set the two modes apart, so that their error bars do not overlap.
MODE_DODGE_POINTS = {"greedy": -4.0, "sampled": 4.0}


def _draw_compute_point(ax, cell: Cell, compute: np.ndarray, color: str, n_resamples: int) -> None:
    """The cell's final normalized return in both modes at its median compute; horizontal bars span the seeds."""
    center = float(np.median(compute))
    for mode in equal_budget.MODES:
        estimate = equal_budget.final_estimate(cell, mode, n_resamples)
        if estimate is None:
            continue
        point, low, high = (float(v) for v in estimate)
        ax.errorbar(center, point, yerr=[[max(point - low, 0.0)], [max(high - point, 0.0)]],
                    xerr=[[center - compute.min()], [compute.max() - center]], fmt="o", color=color, markersize=7,
                    capsize=3, markeredgewidth=1.5, markerfacecolor=color if mode == equal_budget.HEADLINE_MODE else "white",
                    transform=offset_copy(ax.transData, ax.figure, x=MODE_DODGE_POINTS[mode], units="points"))


def _log_limits(ax, values: np.ndarray) -> None:
    """Log x limits around ``values`` (dodged points escape autoscaling), at least a decade wide for readable ticks."""
    low, high = float(values.min()) / 1.5, float(values.max()) * 1.5
    middle, half_span = np.sqrt(low * high), max(np.sqrt(high / low), np.sqrt(10))
    ax.set_xscale("log")
    ax.set_xlim(middle / half_span, middle * half_span)


def protocol_compute_figure(cells: Sequence[Cell], env: str, colors: dict[str, str], n_resamples: int) -> Figure | None:
    """Final normalized return of every protocol cell of ``env`` in both modes against its recorded compute, one
    panel per :data:`COMPUTE_PANELS` field (a cell appears where every run records it); ``None`` without protocol runs."""
    chosen = equal_budget.protocol_cells(cells, env)
    if not chosen:
        return None
    fig = Figure(figsize=(10.0, 4.8), layout="constrained")
    axes = fig.subplots(1, len(COMPUTE_PANELS), sharey=True)
    for ax, (field, (title, xlabel)) in zip(axes, COMPUTE_PANELS.items()):
        drawn = [cell for cell in chosen if np.all(cell.provenance(field) > 0)]  # NaN (not recorded) is not > 0
        for cell in drawn:
            _draw_compute_point(ax, cell, cell.provenance(field), colors[cell.algorithm], n_resamples)
        if drawn:
            _log_limits(ax, np.concatenate([cell.provenance(field) for cell in drawn]))
        else:
            write_note(ax, f"no run under the protocol\nrecords {field}")
            ax.set_xticks([])
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize="medium")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final normalized return\n(training split, return / exact optimum)")
    axes[0].set_ylim(-0.02, 1.05)
    handles = [Line2D([], [], color=colors[cell.algorithm], marker="o", ls="",
                      label=f"{cell.algorithm} ({iqm_label(len(cell.runs))})") for cell in chosen]
    handles += [Line2D([], [], color="0.3", marker="o", ls="", label=equal_budget.mode_title(mode),
                       markerfacecolor="0.3" if mode == equal_budget.HEADLINE_MODE else "white")
                for mode in equal_budget.MODES]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), frameon=False, fontsize="small")
    left_out = equal_budget.left_out_note(cells, env, chosen).strip()
    fig.suptitle(f"{env}: final return against compute, IQM over seeds, {CONFIDENCE:.0%} CI"
                 + ("\n" + textwrap.fill(left_out, 110) if left_out else ""), fontsize="medium")
    return fig


def all_figures(cells: Sequence[Cell], tasks: Sequence[str], algorithms: Sequence[str], n_resamples: int,
                colors: dict[str, str]):
    """Every figure of the paper, in order, plus the aggregate estimates and score matrices for the tables.

    ``colors``: the paper's one colour map (:func:`paper_colors`), shared with the protocol's figures.
    """
    figures = [
        PaperFigure(f"learning_curves_{env}",
                    learning_curve_figure(env, [c for c in cells if c.env == env], colors, n_resamples),
                    learning_curve_caption(env, [c for c in cells if c.env == env]))
        for env in sorted({cell.env for cell in cells}, key=env_key)
    ]
    aggregated, aggregates, matrices = aggregate_figures(cells, tasks, algorithms, colors, n_resamples)
    figures += aggregated + profile_figures(cells, tasks, algorithms, colors, n_resamples)
    figures.append(PaperFigure(
        "generalization",
        generalization_figure(cells, colors, n_resamples) if cells else note_figure("Generalization", "no results in results/"),
        "Generalization: IQM over seeds of the final policy's return on the training distribution (solid) "
        f"and on the held-out contexts (hatched), per agent and representation, one panel per env ({IQM_IS_MEAN})."))
    figures.append(PaperFigure(
        "return_vs_llm_compute", compute_figure(cells, n_resamples, colors),
        "Return against LLM compute: normalized IQM training-split return (the runs' own evaluation policy, mapped "
        "onto [0, 1] by the env's score range) at each evaluation step against the cumulative LLM FLOPs spent by "
        "then, for runs of LLM agents, one panel per env."))
    return figures, aggregates, matrices
