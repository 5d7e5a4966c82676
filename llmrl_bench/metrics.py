"""The benchmark's metrics: one registry (:data:`METRICS`) and pure functions on arrays.

Shapes: a *curve* is an array ``(..., num_points)`` of mean evaluation returns at the
evaluation steps ``(num_points,)``; leading axes (runs, tasks) are kept, so one call
scores a run or a whole ``runs × tasks`` table. The reliability metrics follow Chan et
al. (2020) and their reference implementation (google-research/rl-reliability-metrics,
``rl_reliability_metrics/metrics/metrics_online.py`` and ``metric_utils.py``).
Definitions, parameter values and citations: ``docs/metrics.md``.

A reliability metric is *undefined* (NaN here, ``null`` in ``result.json``) for a run
whose curve never improves: its curve range (95th percentile minus first value, the
reference's normaliser) is below :data:`MIN_CURVE_RANGE` of the env's score range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import scipy.signal
import scipy.stats

#: Tail fraction of every CVaR (the reference's ``alpha``).
CVAR_ALPHA = 0.05
#: Sliding-window width of dispersion across time, as a fraction of the run's steps.
WINDOW_FRACTION = 0.2
#: Low-pass cutoff period of the across-run metrics, as a fraction of the run's steps.
LOWPASS_PERIOD_FRACTION = 0.1
#: A run "never learned" when its curve range is below this fraction of the score range.
MIN_CURVE_RANGE = 0.3
#: Percentile that sets the top of a curve's range (reference: ``curve_range``).
CURVE_TOP_PERCENTILE = 95


# ------------------------------------------------------------------------ registry


@dataclass(frozen=True)
class MetricSpec:
    """What one metric means: the single source for the runner, schema, paper, leaderboard and docs.

    ``higher_is_better`` is ``None`` where closer to 0 is better. ``scope`` is ``"run"``
    (one value per run, stored in ``result.json``) or ``"runs"`` (one value per set of
    seeds, computed by the paper). ``pooled`` names the metric pooled across envs (a
    score-range- or curve-range-free companion). ``nullable``: may be undefined.
    ``required``: every completed ``result.json`` must hold it.
    """

    name: str
    title: str
    higher_is_better: bool | None
    units: str
    description: str
    citation: str
    scope: str = "run"
    pooled: str | None = None
    nullable: bool = False
    required: bool = False

    @property
    def direction(self) -> str:
        """``higher is better``, ``lower is better`` or ``closer to 0 is better``."""
        return {True: "higher is better", False: "lower is better", None: "closer to 0 is better"}[self.higher_is_better]


CHAN_2020 = "Chan et al. 2020, Measuring the Reliability of Reinforcement Learning Algorithms (ICLR)"
COBBE_2019 = "Cobbe et al. 2019, Quantifying Generalization in Reinforcement Learning (ICML)"
TAYLOR_STONE_2009 = "Taylor & Stone 2009, Transfer Learning for RL Domains: A Survey (JMLR), area under the curve"
FINAL_RETURN = "mean undiscounted return of the final policy's evaluation episodes"

_SPECS = (
    MetricSpec("cumulative_reward", "Cumulative reward", True, "return",
               f"{FINAL_RETURN} on the training distribution", COBBE_2019,
               pooled="cumulative_reward_normalized", required=True),
    MetricSpec("cumulative_reward_normalized", "Cumulative reward (normalized)", True, "fraction of score range",
               "cumulative_reward mapped onto [0, 1] by the env's score range", COBBE_2019),
    MetricSpec("policy_stability", "Policy stability (long-term risk)", False, "fraction of curve range",
               "long-term risk across time: CVaR (worst 5%) of the drawdown of the training-split curve, "
               "divided by its curve range; undefined when the run never learned", CHAN_2020,
               pooled="policy_stability", nullable=True, required=True),
    MetricSpec("dispersion_across_time", "Dispersion across time", False, "curve ranges per env step",
               "median over sliding windows of the IQR of the curve's step-normalised differences, "
               "divided by its curve range", CHAN_2020, nullable=True),
    MetricSpec("short_term_risk", "Short-term risk across time", True, "curve ranges per env step",
               "CVaR (worst 5%) of the curve's step-normalised differences, divided by its curve range",
               CHAN_2020, nullable=True),
    MetricSpec("learning_speed", "Learning speed", True, "fraction of score range × budget",
               "area under the normalized training-split curve divided by the budget, in [0, 1]",
               TAYLOR_STONE_2009, pooled="learning_speed", required=True),
    MetricSpec("steps_to_threshold", "Steps to threshold", False, "env steps",
               "first evaluation step whose training-split return reaches the env's reward threshold",
               TAYLOR_STONE_2009, nullable=True, required=True),
    MetricSpec("generalization", "Generalization", True, "return",
               f"{FINAL_RETURN} on the held-out contexts (mean over contexts)", COBBE_2019,
               pooled="generalization_normalized", required=True),
    MetricSpec("generalization_normalized", "Generalization (normalized)", True, "fraction of score range",
               "generalization mapped onto [0, 1] by the env's score range", COBBE_2019),
    MetricSpec("generalization_gap", "Generalization gap", None, "return",
               "cumulative_reward minus generalization; positive means overfitting", COBBE_2019,
               pooled="generalization_gap_normalized", required=True),
    MetricSpec("generalization_gap_normalized", "Generalization gap (normalized)", None, "fraction of score range",
               "generalization_gap divided by the width of the env's score range", COBBE_2019),
    MetricSpec("dispersion_across_runs", "Dispersion across runs", False, "fraction of curve range",
               "median over evaluation steps of the IQR across seeds of the (low-passed) curves, divided by "
               "the seeds' median curve range", CHAN_2020, scope="runs", nullable=True),
    MetricSpec("risk_across_runs", "Risk across runs", True, "fraction of curve range",
               "CVaR (worst 5%) across seeds of the (low-passed) final return above the score minimum, "
               "divided by the seeds' median curve range", CHAN_2020, scope="runs", nullable=True),
)

#: Every metric by name, in report order.
METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}
#: The four headline metrics, in the order the paper reports them.
HEADLINE_METRICS = ("cumulative_reward", "policy_stability", "learning_speed", "generalization")
#: The metrics of one run, as :func:`compute_run_metrics` returns them.
RUN_METRICS = tuple(name for name, spec in METRICS.items() if spec.scope == "run")
#: The metrics of a set of seeds, as :func:`compute_across_run_metrics` returns them.
ACROSS_RUN_METRICS = tuple(name for name, spec in METRICS.items() if spec.scope == "runs")


def result_schema() -> dict[str, Any]:
    """JSON Schema of ``result.json``'s ``metrics`` (properties) and what a completed run requires."""
    return {
        "properties": {
            name: {"type": ["number", "null"] if METRICS[name].nullable else "number",
                   "description": f"{METRICS[name].description} ({METRICS[name].direction})"}
            for name in RUN_METRICS
        },
        "required": [name for name in RUN_METRICS if METRICS[name].required],
    }


# ------------------------------------------------------------------- basic metrics


def normalize(values: np.ndarray | float, score_range: tuple[float, float]) -> np.ndarray:
    """Map returns onto [0, 1] by the env's ``(min, max)`` score range (any shape)."""
    low, high = score_range
    return (np.asarray(values, dtype=np.float64) - low) / (high - low)


def cumulative_reward(final_episode_returns: np.ndarray) -> np.ndarray:
    """Mean undiscounted return of the final policy: ``(..., episodes)`` → ``(...)``."""
    return np.mean(np.asarray(final_episode_returns, dtype=np.float64), axis=-1)


def normalized_auc(steps: np.ndarray, curve: np.ndarray, score_range: tuple[float, float]) -> np.ndarray:
    """Area under the normalized evaluation curve divided by the budget, in [0, 1].

    Trapezoidal rule over ``steps`` ``(num_points,)``; ``curve`` ``(..., num_points)`` → ``(...)``.
    """
    steps = np.asarray(steps, dtype=np.float64)
    heights = normalize(curve, score_range)
    area = np.sum((heights[..., 1:] + heights[..., :-1]) / 2 * np.diff(steps), axis=-1)
    return area / (steps[-1] - steps[0])


def steps_to_threshold(steps: np.ndarray, curve: np.ndarray, threshold: float | None) -> float | None:
    """First evaluation step whose return reaches ``threshold``; ``None`` if never (one run, ``(num_points,)``)."""
    if threshold is None:
        return None
    reached = np.flatnonzero(np.asarray(curve) >= threshold)
    return float(np.asarray(steps)[reached[0]]) if reached.size else None


def generalization_gap(train_return: np.ndarray, held_out_return: np.ndarray) -> np.ndarray:
    """Training minus held-out return (any matching shapes). Positive means overfitting."""
    return np.asarray(train_return, dtype=np.float64) - np.asarray(held_out_return, dtype=np.float64)


# --------------------------------------------------- reliability: building blocks


def step_rates(steps: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """Differences divided by their step gaps, ``Δy / Δt``: ``(..., n)`` → ``(..., n - 1)``.

    Reference: ``metric_utils.differences``; dividing by the gap makes the rates
    independent of how often the run was evaluated.
    """
    return np.diff(np.asarray(curve, dtype=np.float64), axis=-1) / np.diff(np.asarray(steps, dtype=np.float64))


def curve_range(curve: np.ndarray) -> np.ndarray:
    """95th percentile minus first value (reference ``metric_utils.curve_range``): ``(..., n)`` → ``(...)``."""
    curve = np.asarray(curve, dtype=np.float64)
    return np.percentile(curve, CURVE_TOP_PERCENTILE, axis=-1) - curve[..., 0]


def learned(curve: np.ndarray, score_range: tuple[float, float]) -> np.ndarray:
    """Whether each curve's range reaches :data:`MIN_CURVE_RANGE` of the score range: ``(..., n)`` → ``(...)``."""
    low, high = score_range
    return curve_range(curve) >= MIN_CURVE_RANGE * (high - low)


def cvar(values: np.ndarray, tail: str, alpha: float = CVAR_ALPHA) -> np.ndarray:
    """Expected value of the worst ``alpha`` fraction of the ``lower`` or ``upper`` tail.

    The exact tail mean of the empirical distribution: the worst ``floor(alpha·n)``
    values plus the remaining fraction of the next one, divided by ``alpha·n`` (with
    ``alpha·n <= 1``, the single worst value). The reference's ``compute_cvar`` takes
    ``mean(values <= VaR)`` instead; the two agree when ``(n - 1)·alpha < 1`` and
    the worst value is unique, and differ on ties (``docs/metrics.md``).
    Over the last axis: ``(..., n)`` → ``(...)``.
    """
    if tail not in ("lower", "upper"):
        raise ValueError(f"tail must be 'lower' or 'upper'; got {tail!r}")
    ordered = np.sort(np.asarray(values, dtype=np.float64), axis=-1)
    if tail == "upper":
        ordered = ordered[..., ::-1]
    mass = round(alpha * ordered.shape[-1], 9)
    weights = np.clip(mass - np.arange(ordered.shape[-1]), 0.0, 1.0)
    return np.sum(ordered * weights, axis=-1) / weights.sum()


def drawdown(curve: np.ndarray) -> np.ndarray:
    """Drop below the highest value so far (reference ``compute_drawdown``), ``>= 0``: same shape."""
    curve = np.asarray(curve, dtype=np.float64)
    return np.maximum.accumulate(curve, axis=-1) - curve


def _where_learned(values: np.ndarray, curve: np.ndarray, score_range: tuple[float, float]) -> np.ndarray:
    """``values`` divided by the curve range, NaN where the run never learned."""
    ranges = curve_range(curve)
    ok = learned(curve, score_range)
    return np.where(ok, values / np.where(ok, ranges, 1.0), np.nan)


# ------------------------------------------------------- reliability: within runs


def long_term_risk(curve: np.ndarray, score_range: tuple[float, float], alpha: float = CVAR_ALPHA) -> np.ndarray:
    """Long-term risk across time: upper-tail CVaR of the drawdown over the curve range.

    Reference ``UpperCVaROnDrawdown(alpha=0.05, baseline='curve_range')``. 0 means the
    curve never fell below an earlier peak, 0.5 that its worst drops lost half its
    range. ``curve``: ``(..., num_points)`` → ``(...)``; NaN where the run never learned.
    """
    return _where_learned(cvar(drawdown(curve), "upper", alpha), curve, score_range)


def short_term_risk(steps: np.ndarray, curve: np.ndarray, score_range: tuple[float, float],
                    alpha: float = CVAR_ALPHA) -> np.ndarray:
    """Short-term risk across time: lower-tail CVaR of the step rates over the curve range.

    Reference ``LowerCVaROnDiffs(alpha=0.05, baseline='curve_range')``: the expected
    worst change per env step, in curve ranges (negative: a drop; closer to 0 is safer).
    ``steps`` ``(num_points,)``, ``curve`` ``(..., num_points)`` → ``(...)``; NaN where never learned.
    """
    return _where_learned(cvar(step_rates(steps, curve), "lower", alpha), curve, score_range)


def _window_masks(steps: np.ndarray, window_fraction: float) -> np.ndarray:
    """``(num_windows, num_points - 1)``: which rates fall in each sliding window.

    A rate sits at the later step of its pair; a window ends at each such step ``e``
    that has a full window behind it and holds the rates at steps in ``[e - W, e]``,
    ``W = window_fraction × (steps[-1] - steps[0])`` (reference ``apply_window_fn``
    with ``window_size = W + 1`` and ``get_all_valid_eval_points``).
    """
    steps = np.asarray(steps, dtype=np.float64)
    rate_steps = steps[1:]
    width = window_fraction * (steps[-1] - steps[0])
    ends = rate_steps[rate_steps >= rate_steps[0] + width]
    return (rate_steps >= ends[:, None] - width) & (rate_steps <= ends[:, None])


def dispersion_across_time(steps: np.ndarray, curve: np.ndarray, score_range: tuple[float, float],
                           window_fraction: float = WINDOW_FRACTION) -> np.ndarray:
    """Dispersion across time: median over sliding windows of the IQR of the step rates.

    Reference ``IqrWithinRuns(baseline='curve_range')`` (detrended by step rates, IQR in
    each window, divided by the curve range), collapsed to one value per run by the
    median over windows as the reference's analysis does. ``steps`` ``(num_points,)``,
    ``curve`` ``(..., num_points)`` → ``(...)``; NaN where the run never learned, or when
    a window holds fewer than two rates (fewer than ``1 / window_fraction`` evaluation gaps).
    """
    rates = step_rates(steps, curve)
    masks = _window_masks(steps, window_fraction)
    if masks.shape[0] == 0 or masks.sum(axis=1).min() < 2:
        return np.full(rates.shape[:-1], np.nan)
    iqrs = np.stack([scipy.stats.iqr(rates[..., mask], axis=-1) for mask in masks], axis=-1)
    return _where_learned(np.median(iqrs, axis=-1), curve, score_range)


# ------------------------------------------------------- reliability: across runs


def lowpass(steps: np.ndarray, curves: np.ndarray, period_fraction: float = LOWPASS_PERIOD_FRACTION) -> np.ndarray:
    """Zero-phase 8th-order Butterworth low-pass (reference ``metric_utils.lowpass_filter``).

    The cutoff is a period of ``period_fraction`` of the run's steps (the reference's
    0.01 × Nyquist at 1,000-step evaluations of a 2M-step run is a 200,000-step period,
    a tenth of the run). Where evaluations are too sparse for that (cutoff at or above
    Nyquist) the curves are returned unchanged. ``curves``: ``(..., num_points)``.
    """
    steps = np.asarray(steps, dtype=np.float64)
    curves = np.asarray(curves, dtype=np.float64)
    spacing = (steps[-1] - steps[0]) / (len(steps) - 1)
    cutoff = 2 * spacing / (period_fraction * (steps[-1] - steps[0]))  # fraction of Nyquist
    if cutoff >= 1:
        return curves
    b, a = scipy.signal.butter(8, cutoff)
    padlen = min(curves.shape[-1] - 1, 3 * max(len(a), len(b)))
    return scipy.signal.filtfilt(b, a, curves, axis=-1, padlen=padlen)


def _median_range(curves: np.ndarray, score_range: tuple[float, float]) -> float:
    """The seeds' median curve range, NaN when it is below :data:`MIN_CURVE_RANGE`."""
    low, high = score_range
    median = float(np.median(curve_range(curves)))
    return median if median >= MIN_CURVE_RANGE * (high - low) else float("nan")


def dispersion_across_runs(steps: np.ndarray, curves: np.ndarray, score_range: tuple[float, float]) -> float:
    """Dispersion across runs: median over evaluation steps of the IQR across seeds.

    Reference ``IqrAcrossRuns(lowpass_thresh=0.01, baseline='curve_range')``: curves
    low-passed (:func:`lowpass`), IQR across seeds at every evaluation after step 0,
    divided by the median curve range; the median over steps makes one value.
    ``curves``: ``(num_runs, num_points)``. NaN with fewer than 2 runs or if the median run never learned.
    """
    curves = np.asarray(curves, dtype=np.float64)
    if curves.shape[0] < 2:
        return float("nan")
    iqr = scipy.stats.iqr(lowpass(steps, curves)[:, 1:], axis=0)
    return float(np.median(iqr)) / _median_range(curves, score_range)


def risk_across_runs(steps: np.ndarray, curves: np.ndarray, score_range: tuple[float, float],
                     alpha: float = CVAR_ALPHA) -> float:
    """Risk across runs: lower-tail CVaR across seeds of the final (low-passed) return.

    Chan et al.'s RR (``LowerCVaROnAcross`` at the last evaluation): the final return
    above the score minimum, divided by the seeds' median curve range, so 1 means the
    worst seeds end as high as a typical seed climbed. ``curves``: ``(num_runs, num_points)``.
    NaN with fewer than 2 runs or if the median run never learned.
    """
    curves = np.asarray(curves, dtype=np.float64)
    if curves.shape[0] < 2:
        return float("nan")
    final = lowpass(steps, curves)[:, -1] - score_range[0]
    return float(cvar(final, "lower", alpha)) / _median_range(curves, score_range)


def compute_across_run_metrics(steps: np.ndarray, curves: np.ndarray,
                               score_range: tuple[float, float]) -> dict[str, float]:
    """:data:`ACROSS_RUN_METRICS` of one set of seeds: ``curves`` ``(num_runs, num_points)``."""
    return {
        "dispersion_across_runs": dispersion_across_runs(steps, curves, score_range),
        "risk_across_runs": risk_across_runs(steps, curves, score_range),
    }


# ------------------------------------------------------------------------- a run


def _defined(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def compute_run_metrics(
    steps: np.ndarray,
    train_curve: np.ndarray,
    held_out_curve: np.ndarray,
    final_train_returns: np.ndarray,
    final_held_out_returns: np.ndarray,
    score_range: tuple[float, float],
    reward_threshold: float | None,
) -> dict[str, Any]:
    """:data:`RUN_METRICS` of one run; an undefined metric is ``None``.

    Args:
        steps: ``(num_points,)`` evaluation steps, starting at 0.
        train_curve / held_out_curve: ``(num_points,)`` mean evaluation returns; the last
            point evaluates the final policy.
        final_train_returns: ``(episodes,)`` returns of the final policy, training split.
        final_held_out_returns: ``(contexts, episodes)`` returns of the final policy, held out.
    """
    low, high = score_range
    span = high - low
    reward = float(cumulative_reward(final_train_returns))
    held_out = float(np.mean(final_held_out_returns))
    gap = float(generalization_gap(reward, held_out))
    return {
        "cumulative_reward": reward,
        "cumulative_reward_normalized": float(normalize(reward, score_range)),
        "policy_stability": _defined(long_term_risk(train_curve, score_range)),
        "dispersion_across_time": _defined(dispersion_across_time(steps, train_curve, score_range)),
        "short_term_risk": _defined(short_term_risk(steps, train_curve, score_range)),
        "learning_speed": float(normalized_auc(steps, train_curve, score_range)),
        "steps_to_threshold": steps_to_threshold(steps, train_curve, reward_threshold),
        "generalization": held_out,
        "generalization_normalized": float(normalize(held_out, score_range)),
        "generalization_gap": gap,
        "generalization_gap_normalized": gap / span,
    }


def run_metrics_from_curve(curve: Sequence[dict[str, Any]], score_range: Sequence[float],
                           reward_threshold: float | None) -> dict[str, Any]:
    """:func:`compute_run_metrics` from a stored ``result.json`` curve alone.

    The last curve point's ``train_return`` and ``held_out_return`` are the means the
    runner takes of the final policy's episodes (mean over contexts of the per-context
    means, each context having the same episode count), so the stored curve suffices.
    """
    steps = np.array([point["step"] for point in curve], dtype=np.float64)
    train = np.array([point["train_return"] for point in curve], dtype=np.float64)
    held_out = np.array([point["held_out_return"] for point in curve], dtype=np.float64)
    return compute_run_metrics(
        steps=steps, train_curve=train, held_out_curve=held_out,
        final_train_returns=train[-1:], final_held_out_returns=held_out[-1:, None],
        score_range=(float(score_range[0]), float(score_range[1])), reward_threshold=reward_threshold,
    )


#: Stored and recomputed metrics come from the same float64 arithmetic; this slack only
#: absorbs a JSON writer that prints fewer digits.
RECOMPUTE_RTOL = 1e-9
RECOMPUTE_ATOL = 1e-12


def metric_differences(stored: dict[str, Any], recomputed: dict[str, Any]) -> list[str]:
    """``name: stored X, recomputed Y`` for every run metric where the two disagree (``None`` = undefined)."""
    differing = []
    for name in RUN_METRICS:
        have, want = stored.get(name, "missing"), recomputed[name]
        if have is None or want is None or isinstance(have, str):
            same = have is want
        else:
            same = bool(np.isclose(float(have), float(want), rtol=RECOMPUTE_RTOL, atol=RECOMPUTE_ATOL))
        if not same:
            differing.append(f"{name}: stored {have}, recomputed {want}")
    return differing
