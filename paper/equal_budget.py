"""Every agent on one env at matched env-step budgets, in both evaluation modes (issue 17's protocol).

A run's value at budget ``B`` is read from its curve: the evaluation at the largest step ``<= B``
(the policy it had then), in mode ``greedy`` or ``sampled`` (``curve[i]["modes"]``), on the
training split, divided by the mean exact ceiling of the episodes evaluated
(``env_info.optimal_return``). Runs trained for less than ``B`` have no value there. Runs
recorded before the protocol (no ``modes``) or before ceilings are left out, and the table says
how many cells that leaves.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from llmrl_bench import stats
from llmrl_bench.results import TRAIN_SPLIT, RunResult
from paper.formatting import Table, fmt_estimate
from paper.select import Cell
from paper.settings import CONFIDENCE, RANDOM_STATE

MODES = ("greedy", "sampled")
MODE_STYLES = {"greedy": "-", "sampled": "--"}


def follows_protocol(run: RunResult) -> bool:
    """Whether ``run`` recorded both evaluation modes and its training split's ceiling."""
    ceiling = (run.env_info.get("optimal_return") or {}).get(TRAIN_SPLIT)
    return bool(ceiling) and all("modes" in point for point in run.curve)


def normalized_curve(run: RunResult, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and the training-split return of ``mode`` over the ceiling, one value per evaluation."""
    ceiling = run.env_info["optimal_return"][TRAIN_SPLIT]
    steps = np.array([point["step"] for point in run.curve])
    return steps, np.array([point["modes"][mode][TRAIN_SPLIT] for point in run.curve]) / ceiling


def value_at(run: RunResult, mode: str, budget: int) -> float:
    """Normalized return of the last evaluation at or before ``budget``; NaN if the run trained for less."""
    if run.curve[-1]["step"] < budget:
        return float("nan")
    steps, values = normalized_curve(run, mode)
    return float(values[np.searchsorted(steps, budget, side="right") - 1])


def protocol_cells(cells: Sequence[Cell], env: str) -> list[Cell]:
    """The cells of ``env`` whose runs all follow the protocol."""
    return [cell for cell in cells if cell.env == env and all(follows_protocol(run) for run in cell.runs)]


def equal_budget_table(cells: Sequence[Cell], env: str, n_resamples: int) -> Table | None:
    """Normalized IQM [CI] per cell at every cell's own budget, both modes; ``None`` without protocol runs."""
    chosen = protocol_cells(cells, env)
    if not chosen:
        return None
    budgets = sorted({int(cell.budget["env_steps"]) for cell in chosen})
    header = ("agent", "repr", "seeds", "trained for", *(f"{mode} @ {budget:,}" for budget in budgets for mode in MODES))
    rows = []
    for cell in chosen:
        estimates = []
        for budget in budgets:
            for mode in MODES:
                values = np.array([value_at(run, mode, budget) for run in cell.runs])
                values = values[np.isfinite(values)]
                estimates.append(fmt_estimate(stats.iqm_across_seeds(values, CONFIDENCE, n_resamples, RANDOM_STATE))
                                 if values.size else "–")
        rows.append((cell.agent, cell.repr, str(len(cell.runs)), f"{int(cell.budget['env_steps']):,}", *estimates))
    left_out = sum(cell.env == env for cell in cells) - len(chosen)
    caption = (f"Equal budgets on {env}: normalized return (training split, return / exact optimum) of every agent at "
               "each budget an agent was trained for, read from its curve at the last evaluation at or before that "
               "budget, in both evaluation modes (greedy: argmax of the agent's action distribution; sampled: a draw "
               f"from it); IQM over seeds [{CONFIDENCE:.0%} stratified-bootstrap CI]; – : trained for less."
               + (f" {left_out} cell(s) of {env} were recorded before the protocol and are not shown." if left_out else ""))
    return Table(f"equal_budget_{env}", caption, header, tuple(rows), "llrr" + "r" * (len(header) - 4))


def equal_budget_figure(cells: Sequence[Cell], env: str, colors: dict[str, str], n_resamples: int) -> Figure | None:
    """Normalized IQM return against env steps (log axis), one colour per agent, line style per mode."""
    chosen = protocol_cells(cells, env)
    if not chosen:
        return None
    fig = Figure(figsize=(7.2, 4.4), layout="constrained")
    ax = fig.subplots()
    for cell in chosen:
        for mode in MODES:
            curves = [normalized_curve(run, mode) for run in cell.runs]
            steps = curves[0][0]
            keep = steps > 0  # log axis
            point, low, high = stats.aggregate_curve_with_cis(np.stack([c[1] for c in curves]), stats.iqm, CONFIDENCE,
                                                              n_resamples, RANDOM_STATE)
            color = colors[cell.algorithm]
            ax.plot(steps[keep], point[keep], MODE_STYLES[mode], color=color, marker=".",
                    label=f"{cell.algorithm}, {mode} (n={len(cell.runs)})")
            ax.fill_between(steps[keep], low[keep], high[keep], color=color, alpha=0.12)
    for budget in sorted({int(cell.budget["env_steps"]) for cell in chosen}):
        ax.axvline(budget, color="0.6", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("env steps (log scale; dotted: the agents' budgets)")
    ax.set_ylabel("normalized return (return / exact optimum)")
    ax.set_title(f"{env}: every agent under one protocol\nIQM over seeds, {CONFIDENCE:.0%} CI; solid greedy, dashed sampled",
                 fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", loc="upper left", ncols=2)
    return fig
