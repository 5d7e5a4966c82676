"""Figures for aggregate RL results, in the style of rliable's ``plot_utils``.

Every function takes arrays (or the ``(point, low, high)`` estimates of
:mod:`llmrl_bench.stats`) and returns ``(fig, ax)``; none writes files or touches
pyplot's global state. Figures are plain ``matplotlib.figure.Figure`` objects, so they
render under Agg (or any backend) with ``fig.savefig(...)``, done by a separate script.
Rendering is deterministic: the only randomness is the bootstrap in
:func:`plot_learning_curves`, which takes a ``random_state``.

Colours: :func:`algorithm_colors` maps sorted algorithm names onto a colour-blind
palette. Pass one mapping built from *all* algorithms as ``colors=`` to keep an
algorithm's colour the same across figures that show different subsets.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from llmrl_bench import stats

__all__ = [
    "PALETTE",
    "algorithm_colors",
    "plot_interval_estimates",
    "plot_learning_curves",
    "plot_performance_profiles",
    "plot_probability_of_improvement",
    "plot_train_vs_held_out",
    "plot_return_vs_compute",
]

PALETTE: tuple[str, ...] = (
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
    "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9",
)  # seaborn "colorblind", rliable's default palette
"""Colour-blind-safe palette, assigned in order to sorted algorithm names."""

Estimate = tuple[float, float, float]  # (point, low, high), e.g. stats.IntervalEstimate

_METRIC_TITLES = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality Gap"}


def algorithm_colors(names: Iterable[str]) -> dict[str, str]:
    """Deterministic colour per algorithm: the i-th name in sorted order gets PALETTE[i % 10]."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(set(names)))}


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots()


def _decorate(ax: Axes, xlabel: str = "", ylabel: str = "", grid_axis: str = "both") -> Axes:
    ax.set_xlabel(xlabel, fontsize="large")
    ax.set_ylabel(ylabel, fontsize="large")
    ax.spines["right"].set_visible(False)
    ax.spines["top"].set_visible(False)
    ax.grid(True, axis=grid_axis, alpha=0.25)
    return ax


def plot_interval_estimates(
    point_and_cis: Mapping[str, Mapping[str, Estimate]],
    metric_names: Sequence[str],
    xlabel: str = "Normalized score",
    algorithms: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
    titles: Mapping[str, str] | None = None,
    subfigure_width: float = 3.2,
    row_height: float = 0.45,
) -> tuple[Figure, np.ndarray]:
    """Aggregate metrics with CIs, one panel per metric (rliable's ``plot_interval_estimates``).

    Args:
        point_and_cis: algorithm -> metric name -> ``(point, low, high)``, e.g. the
            output of :func:`llmrl_bench.stats.aggregate_with_cis`.
        metric_names: metrics to show, one panel each, left to right.
        xlabel: shared x-axis label.
        algorithms: rows, top to bottom; defaults to the keys of ``point_and_cis``.
        colors: algorithm -> colour; defaults to :func:`algorithm_colors`.
        titles: metric name -> panel title; defaults to "IQM", "Mean", ... for the
            built-in metrics and to the metric name otherwise.
        subfigure_width, row_height: figure size per panel and per algorithm (inches).

    Returns:
        ``(fig, axes)``, axes an array shaped (len(metric_names),). Each CI is a bar from
        low to high; the black tick is the point estimate.
    """
    algorithms = list(point_and_cis) if algorithms is None else list(algorithms)
    colors = dict(algorithm_colors(algorithms) if colors is None else colors)
    titles = {**_METRIC_TITLES, **(titles or {})}
    height = 0.6
    figsize = (subfigure_width * len(metric_names), 1.0 + row_height * len(algorithms))
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, len(metric_names), squeeze=False)[0]
    for ax, metric in zip(axes, metric_names):
        ax.use_sticky_edges = False  # bars start at their CI's low end; keep a margin there too
        for row, algorithm in enumerate(algorithms):
            point, low, high = point_and_cis[algorithm][metric]
            ax.barh(y=row, width=high - low, left=low, height=height, color=colors[algorithm], alpha=0.75)
            ax.vlines(x=point, ymin=row - height / 2, ymax=row + height / 2, color="k", linewidth=1.5)
        ax.set_yticks(range(len(algorithms)), algorithms if ax is axes[0] else [])
        ax.set_ylim(len(algorithms) - 0.5, -0.5)  # first algorithm on top
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.set_title(titles.get(metric, metric), fontsize="large")
        _decorate(ax, grid_axis="x")
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
    fig.supxlabel(xlabel, fontsize="large")
    return fig, axes


def plot_learning_curves(
    steps: np.ndarray,
    curves_by_algorithm: Mapping[str, np.ndarray],
    aggregate_fn: Callable[[np.ndarray], np.ndarray] = stats.iqm,
    confidence: float = 0.95,
    n_resamples: int = stats.N_RESAMPLES,
    random_state: int = 0,
    xlabel: str = "Environment steps",
    ylabel: str = "IQM return",
    colors: Mapping[str, str] | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (6.0, 4.0),
) -> tuple[Figure, Axes]:
    """Aggregate learning curve per algorithm with a stratified-bootstrap CI band.

    Args:
        steps: x positions shaped (num_steps,).
        curves_by_algorithm: algorithm -> curves shaped (num_runs, num_steps) or
            (num_runs, num_tasks, num_steps).
        aggregate_fn, confidence, n_resamples, random_state: passed to
            :func:`llmrl_bench.stats.aggregate_curve_with_cis` (IQM and a 95% CI by default).
        xlabel, ylabel: axis labels.
        colors: algorithm -> colour; defaults to :func:`algorithm_colors`.
        ax: draw into this axes instead of a new figure.
        figsize: size of a new figure.

    Returns:
        ``(fig, ax)``: one line (the aggregate) and one shaded band (its CI) per algorithm.
    """
    x = np.asarray(steps, dtype=float)
    colors = dict(algorithm_colors(curves_by_algorithm) if colors is None else colors)
    fig, ax = _new_axes(ax, figsize)
    for algorithm, curves in curves_by_algorithm.items():
        point, low, high = stats.aggregate_curve_with_cis(curves, aggregate_fn, confidence, n_resamples, random_state)
        if np.shape(point) != x.shape:
            raise ValueError(f"{algorithm}: curves have {np.shape(point)} steps but steps has shape {x.shape}")
        ax.plot(x, point, color=colors[algorithm], linewidth=2, label=algorithm)
        ax.fill_between(x, low, high, color=colors[algorithm], alpha=0.2, linewidth=0)
    ax.legend(frameon=False)
    return fig, _decorate(ax, xlabel, ylabel)


def plot_performance_profiles(
    taus: np.ndarray,
    profiles_by_algorithm: Mapping[str, Estimate | np.ndarray],
    xlabel: str = r"Normalized score ($\tau$)",
    ylabel: str = r"Fraction of runs with score $> \tau$",
    colors: Mapping[str, str] | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (6.0, 4.0),
) -> tuple[Figure, Axes]:
    """Performance profiles with CI bands (rliable's ``plot_performance_profiles``).

    Args:
        taus: thresholds shaped (num_taus,).
        profiles_by_algorithm: algorithm -> ``(profile, low, high)``, each shaped
            (num_taus,) (e.g. :func:`llmrl_bench.stats.performance_profiles`), or a bare
            profile shaped (num_taus,) to draw without a band.
        xlabel, ylabel: axis labels.
        colors: algorithm -> colour; defaults to :func:`algorithm_colors`.
        ax: draw into this axes instead of a new figure.
        figsize: size of a new figure.

    Returns:
        ``(fig, ax)`` with one line and, where given, one band per algorithm.
    """
    x = np.asarray(taus, dtype=float)
    colors = dict(algorithm_colors(profiles_by_algorithm) if colors is None else colors)
    fig, ax = _new_axes(ax, figsize)
    for algorithm, profile in profiles_by_algorithm.items():
        if isinstance(profile, tuple):
            profile, low, high = profile
            ax.fill_between(x, low, high, color=colors[algorithm], alpha=0.2, linewidth=0)
        ax.plot(x, profile, color=colors[algorithm], linewidth=2, label=algorithm)
    ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylim(-0.02, 1.02)
    ax.legend(frameon=False)
    return fig, _decorate(ax, xlabel, ylabel)


def plot_probability_of_improvement(
    pairs: Mapping[tuple[str, str], Estimate],
    xlabel: str = "P(X > Y)",
    colors: Mapping[str, str] | None = None,
    figsize: tuple[float, float] | None = None,
) -> tuple[Figure, Axes]:
    """Probability of improvement of X over Y with CIs, one row per pair (as rliable).

    Args:
        pairs: ``(x_name, y_name)`` -> ``(point, low, high)`` of P(X > Y), e.g. from
            :func:`llmrl_bench.stats.probability_of_improvement_with_ci`. Rows top to bottom
            in mapping order.
        xlabel: x-axis label.
        colors: algorithm -> colour (a row takes X's colour); defaults to
            :func:`algorithm_colors` over all names in the pairs.
        figsize: defaults to a height that grows with the number of pairs.

    Returns:
        ``(fig, ax)``. Algorithm X is labelled on the left axis, Y on the right; the
        dashed line at 0.5 marks no improvement.
    """
    keys = list(pairs)
    colors = dict(algorithm_colors([name for pair in keys for name in pair]) if colors is None else colors)
    fig, ax = _new_axes(None, figsize or (5.0, 1.0 + 0.5 * len(keys)))
    height = 0.6
    for row, (x_name, y_name) in enumerate(keys):
        point, low, high = pairs[(x_name, y_name)]
        ax.barh(y=row, width=high - low, left=low, height=height, color=colors[x_name], alpha=0.75)
        ax.vlines(x=point, ymin=row - height / 2, ymax=row + height / 2, color="k", linewidth=1.5)
    ax.axvline(0.5, color="k", linestyle="--", linewidth=1, alpha=0.5)
    ax.set_xlim(-0.02, 1.02)  # a CI ending at 0 or 1 stays visible
    ax.set_xticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylim(len(keys) - 0.5, -0.5)
    ax.set_yticks(range(len(keys)), [x_name for x_name, _ in keys])
    ax.set_ylabel("Algorithm X", fontsize="large")
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(range(len(keys)), [y_name for _, y_name in keys])
    right.set_ylabel("Algorithm Y", fontsize="large", rotation=-90, labelpad=15)
    for axis in (ax, right):
        axis.tick_params(axis="y", length=0)
        for side in ("left", "right", "top"):
            axis.spines[side].set_visible(False)
    ax.set_xlabel(xlabel, fontsize="large")
    ax.grid(True, axis="x", alpha=0.25)
    return fig, ax


def _error_bar_lengths(points, lows, highs) -> np.ndarray:
    """``(2, n)`` lengths below and above each point for ``errorbar``, clipped at 0: a bootstrap
    bound can miss its point estimate (by a rounding error when all but one seed tie)."""
    points, lows, highs = (np.asarray(values, dtype=float) for values in (points, lows, highs))
    return np.maximum(np.stack([points - lows, highs - points]), 0.0)


def plot_train_vs_held_out(
    estimates: Mapping[str | tuple[str, ...], Mapping[str, Estimate]],
    splits: Sequence[str] | None = None,
    ylabel: str = "Return",
    colors: Mapping[str, str] | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> tuple[Figure, Axes]:
    """Grouped bars with CI error bars: each group's return on each split.

    Args:
        estimates: group -> split name -> ``(point, low, high)``. A group is an agent
            name, or a tuple ``(agent, representation, ...)`` whose first entry is the
            agent. Groups are drawn left to right in mapping order.
        splits: split names in bar order within a group (default: the first group's
            keys, e.g. ``("train", "held_out")``).
        ylabel: y-axis label.
        colors: agent -> colour; defaults to :func:`algorithm_colors` over the agents.
        ax: draw into this axes instead of a new figure.
        figsize: defaults to a width that grows with the number of groups.

    Returns:
        ``(fig, ax)``. Bars take the agent's colour; the first split is solid, later
        splits are hatched (see the legend). Error bars span low to high.
    """
    groups = list(estimates)
    splits = list(estimates[groups[0]]) if splits is None else list(splits)
    agents = [group[0] if isinstance(group, tuple) else group for group in groups]
    colors = dict(algorithm_colors(agents) if colors is None else colors)
    fig, ax = _new_axes(ax, figsize or (2.0 + 0.6 * len(groups) * len(splits), 4.0))
    hatches = ("", "//", "..", "xx", "\\\\")
    width = 0.8 / len(splits)
    for i, split in enumerate(splits):
        offset = (i - (len(splits) - 1) / 2) * width
        for g, (group, agent) in enumerate(zip(groups, agents)):
            point, low, high = estimates[group][split]
            solid = i == 0
            ax.bar(
                g + offset,
                point,
                width=width,
                color=colors[agent] if solid else "white",
                edgecolor=colors[agent],
                hatch=hatches[i % len(hatches)],
                linewidth=1.5,
                alpha=0.85 if solid else 1.0,
            )
            ax.errorbar(g + offset, point, yerr=_error_bar_lengths([point], [low], [high]), color="k", capsize=3, linewidth=1)
    labels = ["\n".join(group) if isinstance(group, tuple) else group for group in groups]
    ax.set_xticks(range(len(groups)), labels)
    legend = [
        Patch(facecolor="0.45" if i == 0 else "white", edgecolor="0.3", hatch=hatches[i % len(hatches)], label=split)
        for i, split in enumerate(splits)
    ]
    ax.legend(handles=legend, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(splits))
    ax.axhline(0.0, color="k", linewidth=0.8)
    return fig, _decorate(ax, "", ylabel, grid_axis="y")


def plot_return_vs_compute(
    flops_by_algorithm: Mapping[str, np.ndarray],
    returns_by_algorithm: Mapping[str, np.ndarray],
    return_cis_by_algorithm: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    xlabel: str = "Training compute (FLOPs)",
    ylabel: str = "Return",
    colors: Mapping[str, str] | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (6.0, 4.0),
) -> tuple[Figure, Axes]:
    """Return against compute on a log x-axis, one marked line per algorithm.

    Args:
        flops_by_algorithm: algorithm -> compute per point shaped (num_points,), all > 0.
        returns_by_algorithm: algorithm -> return per point shaped (num_points,).
        return_cis_by_algorithm: optional algorithm -> ``(low, high)``, each shaped
            (num_points,), drawn as error bars.
        xlabel, ylabel: axis labels.
        colors: algorithm -> colour; defaults to :func:`algorithm_colors`.
        ax: draw into this axes instead of a new figure.
        figsize: size of a new figure.

    Returns:
        ``(fig, ax)``; points are joined in order of increasing compute.
    """
    colors = dict(algorithm_colors(returns_by_algorithm) if colors is None else colors)
    fig, ax = _new_axes(ax, figsize)
    for algorithm, returns in returns_by_algorithm.items():
        flops = np.asarray(flops_by_algorithm[algorithm], dtype=float)
        returns = np.asarray(returns, dtype=float)
        if flops.shape != returns.shape or flops.ndim != 1:
            raise ValueError(f"{algorithm}: flops {flops.shape} and returns {returns.shape} must be equal 1-D shapes")
        if np.any(flops <= 0):
            raise ValueError(f"{algorithm}: flops must be positive for a log axis")
        order = np.argsort(flops, kind="stable")
        ax.plot(flops[order], returns[order], marker="o", color=colors[algorithm], linewidth=2, label=algorithm)
        if return_cis_by_algorithm is not None and algorithm in return_cis_by_algorithm:
            low, high = (np.asarray(bound, dtype=float)[order] for bound in return_cis_by_algorithm[algorithm])
            yerr = _error_bar_lengths(returns[order], low, high)
            ax.errorbar(flops[order], returns[order], yerr=yerr, fmt="none", ecolor=colors[algorithm], capsize=3)
    ax.set_xscale("log")
    ax.legend(frameon=False)
    return fig, _decorate(ax, xlabel, ylabel)
