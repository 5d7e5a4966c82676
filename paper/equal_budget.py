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
from paper.formatting import Table, fmt, fmt_estimate
from paper.select import Cell
from paper.settings import CONFIDENCE, RANDOM_STATE

#: The protocol's evaluation modes, as ``llmrl_bench.evaluation.EVAL_MODES`` (not imported: it loads torch; a test
#: checks they agree).
MODES = ("greedy", "sampled")
#: The mode the protocol reports for every agent (docs/metrics.md); the other is shown beside it, labelled.
HEADLINE_MODE = "greedy"
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


def cell_follows_protocol(cell: Cell) -> bool:
    return all(follows_protocol(run) for run in cell.runs)


def protocol_cells(cells: Sequence[Cell], env: str) -> list[Cell]:
    """The cells of ``env`` whose runs all follow the protocol."""
    return [cell for cell in cells if cell.env == env and cell_follows_protocol(cell)]


def own_policy_mode(run: RunResult) -> str:
    """The mode a run's own evaluation policy (``train_return``) plays: ``sampled`` for LLM agents with
    ``llm.eval_sampling``, else ``greedy`` (the argmax action)."""
    llm = run.config.get("agent", {}).get("llm") or {}
    return "sampled" if llm.get("eval_sampling") else "greedy"


def headline_curves(cell: Cell) -> tuple[np.ndarray, np.ndarray, str]:
    """Steps ``(num_steps,)``, training-split returns ``(num_runs, num_steps)`` and their mode: the protocol's
    :data:`HEADLINE_MODE` where the cell recorded the modes, else the runs' own evaluation policy."""
    if cell_follows_protocol(cell):
        steps = np.array([point["step"] for point in cell.runs[0].curve], dtype=float)
        curves = np.array([[point["modes"][HEADLINE_MODE][TRAIN_SPLIT] for point in run.curve] for run in cell.runs])
        return steps, curves.astype(float), HEADLINE_MODE
    steps, curves = cell.curves("train_return")
    return steps, curves, own_policy_mode(cell.runs[0])


def mode_estimate(cell: Cell, mode: str, budget: int, n_resamples: int) -> stats.IntervalEstimate | None:
    """IQM [CI] over seeds of the normalized return in ``mode`` at ``budget`` (:func:`value_at`); ``None``
    where no run trained that long."""
    values = np.array([value_at(run, mode, budget) for run in cell.runs])
    values = values[np.isfinite(values)]
    return stats.iqm_across_seeds(values, CONFIDENCE, n_resamples, RANDOM_STATE) if values.size else None


def final_estimate(cell: Cell, mode: str, n_resamples: int) -> stats.IntervalEstimate | None:
    """:func:`mode_estimate` at the cell's own budget: the final policy."""
    return mode_estimate(cell, mode, int(cell.budget["env_steps"]), n_resamples)


def left_out_note(cells: Sequence[Cell], env: str, chosen: Sequence[Cell]) -> str:
    """The sentence naming the cells of ``env`` recorded before the protocol, or ``""``."""
    left_out = sorted(cell.algorithm for cell in cells if cell.env == env and cell not in chosen)
    return (f" {len(left_out)} cell(s) of {env} were recorded before the protocol and are not shown: "
            f"{', '.join(left_out)}." if left_out else "")


def equal_budget_table(cells: Sequence[Cell], env: str, n_resamples: int) -> Table | None:
    """Normalized IQM [CI] per cell at every cell's own budget, both modes; ``None`` without protocol runs."""
    chosen = protocol_cells(cells, env)
    if not chosen:
        return None
    budgets = sorted({int(cell.budget["env_steps"]) for cell in chosen})
    header = ("agent", "repr", "seeds", "trained for", *(f"{mode} @ {budget:,}" for budget in budgets for mode in MODES))
    rows = []
    for cell in chosen:
        estimates = [fmt_estimate(mode_estimate(cell, mode, budget, n_resamples)) for budget in budgets for mode in MODES]
        rows.append((cell.agent, cell.repr, str(len(cell.runs)), f"{int(cell.budget['env_steps']):,}", *estimates))
    caption = (f"Equal budgets on {env}: normalized return (training split, return / exact optimum) of every agent at "
               "each budget an agent was trained for, read from its curve at the last evaluation at or before that "
               "budget, in both evaluation modes (greedy: argmax of the agent's action distribution; sampled: a draw "
               f"from it); IQM over seeds [{CONFIDENCE:.0%} stratified-bootstrap CI]; – : trained for less."
               + left_out_note(cells, env, chosen))
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


#: Provenance fields a run records its compute in, with their column titles (classic agents record no FLOPs).
COMPUTE_FIELDS = {"llm_flops": "LLM FLOPs", "wall_seconds": "wall s"}


def spread_text(values: np.ndarray) -> str:
    """``median [min, max]`` of one provenance field over seeds; ``–`` where a run lacks it."""
    if not values.size or not np.isfinite(values).all():
        return "–"
    return f"{fmt(float(np.median(values)))} [{fmt(float(values.min()))}, {fmt(float(values.max()))}]"


def mode_title(mode: str) -> str:
    return f"{mode} (headline)" if mode == HEADLINE_MODE else mode


def compute_table(cells: Sequence[Cell], env: str, n_resamples: int) -> Table | None:
    """Per protocol cell of ``env``: its recorded compute and its final normalized return in both modes."""
    chosen = protocol_cells(cells, env)
    if not chosen:
        return None
    header = ("agent", "repr", "seeds", "env steps", *(f"{title}: median [min, max]" for title in COMPUTE_FIELDS.values()),
              *(f"{mode_title(mode)}: final" for mode in MODES))
    rows = tuple((cell.agent, cell.repr, str(len(cell.runs)), f"{int(cell.budget['env_steps']):,}",
                  *(spread_text(cell.provenance(name)) for name in COMPUTE_FIELDS),
                  *(fmt_estimate(final_estimate(cell, mode, n_resamples)) for mode in MODES)) for cell in chosen)
    caption = (f"Compute on {env}: each run's recorded LLM FLOPs (forward and backward passes of its language model, "
               "evaluations included; none for classic agents, whose network FLOPs are not recorded) and wall-clock "
               "seconds (training with its evaluations), median [min, max] over seeds, next to the final normalized "
               f"return (training split, return / exact optimum) in both evaluation modes, IQM over seeds "
               f"[{CONFIDENCE:.0%} stratified-bootstrap CI]." + left_out_note(cells, env, chosen))
    return Table(f"compute_{env}", caption, header, rows, "llrr" + "r" * (len(header) - 4))
