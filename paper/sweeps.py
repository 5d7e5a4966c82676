"""Figures and tables of single experiments, read from the runs of their sweep.

``maze_levels`` (Cobbe et al. 2019, "Quantifying Generalization in Reinforcement Learning"):
PPO's final normalized return on its training layouts and on held-out layouts against the
number of training layouts. A normalized return is the final evaluation return divided by
the mean exact ceiling of the episodes it was evaluated on (``env_info.optimal_return``,
recorded by the runner); runs made before the runner recorded ceilings are left out.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from llmrl_bench import stats
from llmrl_bench.results import TRAIN_SPLIT as TRAIN
from llmrl_bench.results import RunResult
from paper.formatting import Table, fmt_estimate, fmt_seeds
from paper.settings import CONFIDENCE, RANDOM_STATE

MAZE_LEVELS = "maze_levels"
#: The held-out context of the training mazes' own size: the like-for-like held-out set.
SAME_SIZE_HELD_OUT = "held_out_7x7"


def normalized_final_returns(run: RunResult) -> dict[str, float] | None:
    """Per split (``train`` and each held-out context), the final return over the split's ceiling; ``None`` without ceilings."""
    ceilings = run.env_info.get("optimal_return") or {}
    final = run.curve[-1]
    returns = {TRAIN: final["train_return"], **final.get("held_out", {})}
    if any(ceilings.get(split) in (None, 0) for split in returns):
        return None
    return {split: value / ceilings[split] for split, value in returns.items()}


def layout_count(run: RunResult) -> float:
    """``env.num_train_layouts`` as a number (``inf`` for a fresh layout every episode)."""
    return float(run.config["env"]["num_train_layouts"])


def levels_runs(runs: Sequence[RunResult]) -> dict[float, list[RunResult]]:
    """The ``maze_levels`` runs that recorded ceilings, by number of training layouts (sorted, ``inf`` last)."""
    by_count: dict[float, list[RunResult]] = {}
    for run in runs:
        if run.sweep == MAZE_LEVELS and normalized_final_returns(run) is not None:
            by_count.setdefault(layout_count(run), []).append(run)
    return {count: sorted(by_count[count], key=lambda run: run.seed) for count in sorted(by_count)}


def _estimate(runs: Sequence[RunResult], split: str, n_resamples: int) -> stats.IntervalEstimate:
    values = np.array([normalized_final_returns(run)[split] for run in runs])
    return stats.iqm_across_seeds(values, CONFIDENCE, n_resamples, RANDOM_STATE)


def _count_label(count: float) -> str:
    return "inf" if math.isinf(count) else str(int(count))


def levels_figure(runs: Sequence[RunResult], n_resamples: int) -> Figure | None:
    """Normalized final return (IQM over seeds, 95% CI) against the number of training layouts; ``None`` without runs."""
    by_count = levels_runs(runs)
    if not by_count:
        return None
    counts = list(by_count)
    x = np.arange(len(counts))  # evenly spaced: the counts grow geometrically, then inf
    held_out = sorted({split for group in by_count.values() for split in normalized_final_returns(group[0]) if split != TRAIN},
                      key=lambda split: int(split.rsplit("x", 1)[-1]))
    fig = Figure(figsize=(6.6, 4.2), layout="constrained")
    ax = fig.subplots()
    styles = {TRAIN: ("C0", "o", "training layouts")}
    styles |= {split: (f"C{i + 1}", "s^v"[i % 3], f"held out, {split.removeprefix('held_out_')}")
               for i, split in enumerate(held_out)}
    for split, (color, marker, label) in styles.items():
        estimates = [_estimate(by_count[count], split, n_resamples) for count in counts]
        point = np.array([e.point for e in estimates])
        low, high = np.array([e.low for e in estimates]), np.array([e.high for e in estimates])
        ax.plot(x, point, marker=marker, color=color, label=label, lw=2 if split in (TRAIN, SAME_SIZE_HELD_OUT) else 1)
        ax.fill_between(x, low, high, color=color, alpha=0.15)
    ax.set_xticks(x, [_count_label(c) for c in counts])
    ax.set_xlabel("training layouts (env.num_train_layouts; inf: a fresh layout every episode)")
    ax.set_ylabel("normalized final return (return / exact optimum)")
    ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    seeds = sorted({len(group) for group in by_count.values()})
    ax.set_title(f"PPO on 7x7 mazes: generalization against the number of training layouts\n"
                 f"IQM over {'/'.join(map(str, seeds))} seeds, {CONFIDENCE:.0%} bootstrap CI", fontsize="medium")
    ax.legend(fontsize="small", loc="best")
    return fig


def levels_table(runs: Sequence[RunResult], n_resamples: int) -> Table | None:
    """Per number of training layouts: normalized training and held-out (7x7) return and their gap."""
    by_count = levels_runs(runs)
    if not by_count:
        return None
    rows = []
    for count, group in by_count.items():
        gaps = np.array([normalized_final_returns(r)[TRAIN] - normalized_final_returns(r)[SAME_SIZE_HELD_OUT] for r in group])
        rows.append((_count_label(count), fmt_seeds(tuple(r.seed for r in group)), str(group[0].config["budget"]["env_steps"]),
                     fmt_estimate(_estimate(group, TRAIN, n_resamples)),
                     fmt_estimate(_estimate(group, SAME_SIZE_HELD_OUT, n_resamples)),
                     fmt_estimate(stats.iqm_across_seeds(gaps, CONFIDENCE, n_resamples, RANDOM_STATE))))
    header = ("training layouts", "seeds", "env steps", "training: normalized return", "held out 7x7: normalized return",
              "gap (training − held out)")
    caption = (f"Experiment {MAZE_LEVELS}: PPO's final greedy return on its training layouts and on 16 held-out 7x7 "
               "layouts, each divided by the exact optimum of the episodes evaluated, against the number of training "
               f"layouts; IQM over seeds [{CONFIDENCE:.0%} stratified-bootstrap CI].")
    return Table(MAZE_LEVELS, caption, header, tuple(rows), "lrrrrr")
