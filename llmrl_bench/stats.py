"""Aggregate metrics and stratified-bootstrap interval estimates for RL results.

Follows Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (NeurIPS), and mirrors the `rliable` library's definitions,
built on scipy instead (rliable 1.2.0 does not import with pandas 3).

Every metric is a pure function of an array of (normalized) scores shaped
``(num_runs, num_tasks)``: ``scores[n, m]`` is the score of run (seed) ``n`` on task
``m``. Metrics that accept a trailing steps axis, ``(num_runs, num_tasks, num_steps)``,
aggregate over runs and tasks and return one value per step.

Interval estimates take the metric as a function plus a ``random_state``, so the
confidence intervals themselves are reproducible. They return an
:class:`IntervalEstimate` ``(point, low, high)``. See ``docs/statistics.md``.
"""

from __future__ import annotations

import inspect
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
import scipy.stats

__all__ = [
    "IntervalEstimate",
    "iqm",
    "mean",
    "median",
    "optimality_gap",
    "METRICS",
    "stratified_bootstrap_ci",
    "aggregate_with_cis",
    "aggregate_curve_with_cis",
    "performance_profile",
    "performance_profile_with_cis",
    "performance_profiles",
    "probability_of_improvement",
    "probability_of_improvement_with_ci",
    "iqm_across_seeds",
    "N_RESAMPLES",
]

#: Bootstrap resamples per interval by default, as rliable's ``get_interval_estimates``.
#: At 2,000, 5-seed interval endpoints moved by up to 7% of the CI width between random
#: states; at 50,000 they match 1,000,000 resamples (docs/statistics.md).
N_RESAMPLES = 50_000

# Cap on floats materialised per bootstrap batch (~32 MiB of float64).
_MAX_BATCH_ELEMENTS = 2**22
# scipy 1.15 renamed bootstrap's `random_state` to `rng`; both take a Generator as-is.
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(scipy.stats.bootstrap).parameters else "random_state"


class IntervalEstimate(NamedTuple):
    """A point estimate with its confidence interval; unpacks as ``point, low, high``.

    Each field is a float for scalar metrics, or an array of the metric's output shape
    (e.g. ``(num_taus,)`` for a performance profile, ``(num_steps,)`` for a curve).
    """

    point: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray


# --------------------------------------------------------------------------- metrics


def _as_scores(scores: np.ndarray, name: str = "scores", max_ndim: int = 3) -> np.ndarray:
    """Return ``scores`` as a float array shaped (num_runs, num_tasks[, num_steps])."""
    array = np.asarray(scores, dtype=float)
    if not 2 <= array.ndim <= max_ndim or array.shape[0] == 0 or array.shape[1] == 0:
        expected = "(num_runs, num_tasks)" if max_ndim == 2 else "(num_runs, num_tasks[, num_steps])"
        raise ValueError(f"{name} must be shaped {expected} and non-empty; got shape {array.shape}")
    return array


def _scalar_or_array(value: np.ndarray) -> float | np.ndarray:
    value = np.asarray(value)
    return float(value) if value.ndim == 0 else value


def iqm(scores: np.ndarray) -> float | np.ndarray:
    """Interquartile mean: the 25% trimmed mean of all runs × tasks scores.

    Args:
        scores: array shaped (num_runs, num_tasks) or (num_runs, num_tasks, num_steps).

    Returns:
        A float, or an array shaped (num_steps,) for 3-D input. As ``rliable.metrics.
        aggregate_iqm``: ``scipy.stats.trim_mean(scores, 0.25, axis=None)``, which cuts
        ``floor(0.25 * num_runs * num_tasks)`` values from each end.
    """
    s = _as_scores(scores)
    if s.ndim == 2:
        return float(scipy.stats.trim_mean(s, proportiontocut=0.25, axis=None))
    flat = s.reshape(s.shape[0] * s.shape[1], s.shape[2])
    return scipy.stats.trim_mean(flat, proportiontocut=0.25, axis=0)


def mean(scores: np.ndarray) -> float | np.ndarray:
    """Mean over tasks of the per-task mean score (``rliable.metrics.aggregate_mean``).

    Args:
        scores: array shaped (num_runs, num_tasks) or (num_runs, num_tasks, num_steps).

    Returns:
        A float, or an array shaped (num_steps,). Equals the mean of all runs × tasks
        values, since every task has the same number of runs.
    """
    s = _as_scores(scores)
    return _scalar_or_array(np.mean(np.mean(s, axis=0), axis=0))


def median(scores: np.ndarray) -> float | np.ndarray:
    """Median over tasks of the per-task mean score (``rliable.metrics.aggregate_median``).

    Args:
        scores: array shaped (num_runs, num_tasks) or (num_runs, num_tasks, num_steps).

    Returns:
        A float, or an array shaped (num_steps,). Note: this is the median of the
        ``num_tasks`` task means, as in the paper and rliable, not the median of all
        runs × tasks values.
    """
    s = _as_scores(scores)
    return _scalar_or_array(np.median(np.mean(s, axis=0), axis=0))


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> float | np.ndarray:
    """How far scores fall short of ``gamma``: ``gamma - mean(min(scores, gamma))``.

    Args:
        scores: array shaped (num_runs, num_tasks) or (num_runs, num_tasks, num_steps).
        gamma: target normalized score; scores above it earn no credit.

    Returns:
        A float, or an array shaped (num_steps,) (``rliable.metrics.
        aggregate_optimality_gap``). Lower is better.
    """
    s = _as_scores(scores)
    return _scalar_or_array(gamma - np.mean(np.minimum(s, gamma), axis=(0, 1)))


METRICS: dict[str, Callable[[np.ndarray], float | np.ndarray]] = {
    "iqm": iqm,
    "mean": mean,
    "median": median,
    "optimality_gap": optimality_gap,
}
"""Aggregate metrics by name, as accepted by :func:`aggregate_with_cis`."""


# ----------------------------------------------------------------- stratified bootstrap


def _stratified_bootstrap(
    arrays: Sequence[np.ndarray],
    batch_statistic: Callable[..., np.ndarray],
    point: float | np.ndarray,
    confidence: float,
    n_resamples: int,
    random_state: int | np.random.Generator | None,
) -> IntervalEstimate:
    """Percentile CI of a statistic of several (num_runs, num_tasks, ...) arrays.

    Each (array, task) column is one stratum whose runs are resampled with replacement,
    independently of every other stratum (rliable's ``StratifiedBootstrap`` for one
    array, ``StratifiedIndependentBootstrap`` for several). The resampling is done by
    ``scipy.stats.bootstrap``: each stratum is passed as its own sample of run indices
    ``arange(num_runs)``, which scipy resamples independently because
    ``paired=False``; the statistic then gathers the scores those indices select.
    A run is kept whole along any trailing axes (a learning curve stays one curve).

    ``batch_statistic(*resampled)`` gets each array resampled with a leading batch
    axis, ``(batch, num_runs, num_tasks, ...)``, and returns ``(batch, *out_shape)``.
    Strata with one run cannot vary, so they are held fixed; if no stratum has two
    runs the interval collapses to ``point``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive; got {n_resamples}")
    strata = [(a, t) for a, array in enumerate(arrays) if array.shape[0] >= 2 for t in range(array.shape[1])]
    if not strata:
        return IntervalEstimate(point, point, point)

    def statistic(*run_indices: np.ndarray, axis: int = -1) -> np.ndarray:
        # run_indices[k]: (batch, num_runs) run indices drawn for stratum strata[k].
        batch = run_indices[0].shape[0]
        index = [np.zeros((batch, *array.shape[:2]), dtype=np.intp) for array in arrays]
        for (a, t), runs in zip(strata, run_indices):
            index[a][:, :, t] = runs
        resampled = [array[idx, np.arange(array.shape[1])] for array, idx in zip(arrays, index)]
        values = np.asarray(batch_statistic(*resampled), dtype=float)
        return np.moveaxis(values, 0, -1)  # scipy wants the resamples on the last axis

    samples = [np.arange(arrays[a].shape[0]) for a, _ in strata]
    batch = max(1, min(n_resamples, _MAX_BATCH_ELEMENTS // sum(array.size for array in arrays)))
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    result = scipy.stats.bootstrap(
        samples,
        statistic,
        n_resamples=n_resamples,
        batch=batch,
        vectorized=True,
        paired=False,
        confidence_level=confidence,
        method="percentile",
        **{_RNG_KEYWORD: rng},
    )
    low, high = result.confidence_interval
    return IntervalEstimate(point, _scalar_or_array(low), _scalar_or_array(high))


# The built-in metrics over a leading batch axis, (batch, num_runs, num_tasks[, num_steps]),
# so their bootstrap needs no Python loop per resample. Same values as the metrics above.
_BATCHED_METRICS: dict[Callable, Callable[[np.ndarray], np.ndarray]] = {
    iqm: lambda b: scipy.stats.trim_mean(b.reshape(b.shape[0], -1, *b.shape[3:]), proportiontocut=0.25, axis=1),
    mean: lambda b: np.mean(np.mean(b, axis=1), axis=1),
    median: lambda b: np.median(np.mean(b, axis=1), axis=1),
    optimality_gap: lambda b: 1.0 - np.mean(np.minimum(b, 1.0), axis=(1, 2)),
}


def _per_resample(fn: Callable[..., float | np.ndarray]) -> Callable[..., np.ndarray]:
    """Lift ``fn(*arrays)`` to arrays with a leading batch axis, one call per resample."""
    for metric, batched in _BATCHED_METRICS.items():
        if fn is metric:  # identity, not ==: fn need not be hashable
            return batched

    def batch_statistic(*resampled: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(fn(*(r[b] for r in resampled)), dtype=float) for b in range(len(resampled[0]))])

    return batch_statistic


def stratified_bootstrap_ci(
    scores: np.ndarray,
    aggregate_fn: Callable[[np.ndarray], float | np.ndarray],
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    random_state: int | np.random.Generator | None = 0,
) -> IntervalEstimate:
    """Point estimate and stratified-bootstrap percentile CI of ``aggregate_fn(scores)``.

    Runs are resampled with replacement within each task, so every resample keeps
    ``num_runs`` scores per task (``rliable.library.get_interval_estimates`` with
    ``method='percentile'``, ``task_bootstrap=False``).

    Args:
        scores: array shaped (num_runs, num_tasks) or (num_runs, num_tasks, num_steps);
            with steps, each resampled run keeps its whole curve.
        aggregate_fn: maps an array of that shape to a float or a fixed-shape array,
            e.g. :func:`iqm`.
        confidence: coverage of the two-sided interval.
        n_resamples: number of bootstrap resamples.
        random_state: seed or ``numpy.random.Generator``; a fixed seed gives the same
            interval on every call. ``None`` draws fresh entropy.

    Returns:
        ``IntervalEstimate(point, low, high)``, each of ``aggregate_fn``'s output shape.
        With a single run the bootstrap cannot vary, and ``low == high == point``.
    """
    s = _as_scores(scores)
    point = _scalar_or_array(aggregate_fn(s))
    return _stratified_bootstrap([s], _per_resample(aggregate_fn), point, confidence, n_resamples, random_state)


def aggregate_with_cis(
    scores_by_algorithm: Mapping[str, np.ndarray],
    fns: Sequence[str] | Mapping[str, Callable[[np.ndarray], float]] = ("iqm", "mean", "median", "optimality_gap"),
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    random_state: int | None = 0,
) -> dict[str, dict[str, IntervalEstimate]]:
    """Stratified-bootstrap CIs of several aggregate metrics for several algorithms.

    Args:
        scores_by_algorithm: algorithm name -> scores shaped (num_runs, num_tasks);
            algorithms may differ in num_runs but not in their tasks.
        fns: metric names from :data:`METRICS`, or a mapping name -> metric function.
        confidence, n_resamples: as in :func:`stratified_bootstrap_ci`.
        random_state: integer seed used afresh for every (algorithm, metric), so a
            result does not depend on dictionary order or on which metrics are asked.

    Returns:
        ``{algorithm: {metric_name: IntervalEstimate(point, low, high)}}``.
    """
    named = dict(fns) if isinstance(fns, Mapping) else {name: METRICS[name] for name in fns}
    return {
        algorithm: {
            name: stratified_bootstrap_ci(scores, fn, confidence, n_resamples, random_state)
            for name, fn in named.items()
        }
        for algorithm, scores in scores_by_algorithm.items()
    }


def aggregate_curve_with_cis(
    curves: np.ndarray,
    aggregate_fn: Callable[[np.ndarray], np.ndarray] = iqm,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    random_state: int | np.random.Generator | None = 0,
) -> IntervalEstimate:
    """Per-step aggregate of learning curves with stratified-bootstrap CI bands.

    Args:
        curves: array shaped (num_runs, num_steps) for one task, or
            (num_runs, num_tasks, num_steps).
        aggregate_fn: a metric accepting (num_runs, num_tasks, num_steps) and returning
            (num_steps,), e.g. :func:`iqm` (the default).
        confidence, n_resamples, random_state: as in :func:`stratified_bootstrap_ci`.

    Returns:
        ``IntervalEstimate`` of three arrays shaped (num_steps,): pointwise bands, as in
        rliable's sample-efficiency curves.
    """
    c = np.asarray(curves, dtype=float)
    if c.ndim == 2:
        c = c[:, None, :]
    if c.ndim != 3:
        expected = "(num_runs, num_steps) or (num_runs, num_tasks, num_steps)"
        raise ValueError(f"curves must be shaped {expected}; got shape {c.shape}")
    return stratified_bootstrap_ci(c, aggregate_fn, confidence, n_resamples, random_state)


def iqm_across_seeds(
    values: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    random_state: int | np.random.Generator | None = 0,
) -> IntervalEstimate:
    """IQM with a bootstrap CI of one metric measured once per seed.

    Args:
        values: array shaped (num_runs,): one value per seed (e.g. final eval return).
        confidence, n_resamples, random_state: as in :func:`stratified_bootstrap_ci`.

    Returns:
        ``IntervalEstimate`` of floats; the values are treated as (num_runs, 1) scores.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be shaped (num_runs,) and non-empty; got shape {v.shape}")
    return stratified_bootstrap_ci(v[:, None], iqm, confidence, n_resamples, random_state)


# ----------------------------------------------------------------- performance profiles


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Run-score distribution: fraction of all runs × tasks scores strictly above each tau.

    Args:
        scores: array shaped (num_runs, num_tasks).
        taus: thresholds shaped (num_taus,).

    Returns:
        Array shaped (num_taus,) (rliable's ``score_distributions``, the default profile
        of ``rliable.library.create_performance_profile``).
    """
    s = _as_scores(scores, max_ndim=2)
    t = np.asarray(taus, dtype=float)
    if t.ndim != 1:
        raise ValueError(f"taus must be shaped (num_taus,); got shape {t.shape}")
    return np.mean(s.reshape(-1, 1) > t.reshape(1, -1), axis=0)


def performance_profile_with_cis(
    scores: np.ndarray,
    taus: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    random_state: int | np.random.Generator | None = 0,
) -> IntervalEstimate:
    """Performance profile with pointwise stratified-bootstrap CI bands.

    Args:
        scores: array shaped (num_runs, num_tasks).
        taus: thresholds shaped (num_taus,).
        confidence, n_resamples, random_state: as in :func:`stratified_bootstrap_ci`.

    Returns:
        ``IntervalEstimate`` of three arrays shaped (num_taus,).
    """
    t = np.asarray(taus, dtype=float)
    return stratified_bootstrap_ci(
        _as_scores(scores, max_ndim=2), lambda s: performance_profile(s, t), confidence, n_resamples, random_state
    )


def performance_profiles(
    scores_by_algorithm: Mapping[str, np.ndarray],
    taus: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    random_state: int | None = 0,
) -> dict[str, IntervalEstimate]:
    """:func:`performance_profile_with_cis` for each algorithm (rliable's
    ``create_performance_profile``).

    Args:
        scores_by_algorithm: algorithm name -> scores shaped (num_runs, num_tasks).
        taus: thresholds shaped (num_taus,).
        confidence, n_resamples, random_state: as in :func:`aggregate_with_cis`.

    Returns:
        ``{algorithm: IntervalEstimate}`` of arrays shaped (num_taus,).
    """
    return {
        algorithm: performance_profile_with_cis(scores, taus, confidence, n_resamples, random_state)
        for algorithm, scores in scores_by_algorithm.items()
    }


# ----------------------------------------------------------- probability of improvement


def _probability_of_improvement_batched(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + 0.5 P(X = Y) averaged over tasks, for x (batch, n, tasks), y (batch, m, tasks)."""
    # The Mann-Whitney U of x counts pairs with x > y, plus one half per tie.
    u = scipy.stats.mannwhitneyu(x, y, axis=1, method="asymptotic").statistic
    return np.mean(u / (x.shape[1] * y.shape[1]), axis=-1)


def _check_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_scores(x, "x", max_ndim=2), _as_scores(y, "y", max_ndim=2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must cover the same tasks; got {x.shape[1]} and {y.shape[1]} tasks")
    return x, y


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """Average over tasks of P(X > Y) + 0.5 P(X = Y), for a run X of x and a run Y of y.

    Args:
        x: scores of algorithm X shaped (num_runs_x, num_tasks).
        y: scores of algorithm Y shaped (num_runs_y, num_tasks); num_runs may differ.

    Returns:
        A float in [0, 1]: per task the Mann-Whitney U statistic of x over
        ``num_runs_x * num_runs_y``, then the mean over tasks
        (``rliable.metrics.probability_of_improvement``). 0.5 means no improvement.
    """
    x, y = _check_pair(x, y)
    return float(_probability_of_improvement_batched(x[None], y[None])[0])


def probability_of_improvement_with_ci(
    x: np.ndarray,
    y: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    random_state: int | np.random.Generator | None = 0,
) -> IntervalEstimate:
    """:func:`probability_of_improvement` with a stratified-bootstrap percentile CI.

    x and y are resampled independently, each run-within-task (rliable's
    ``StratifiedIndependentBootstrap``).

    Args:
        x: scores shaped (num_runs_x, num_tasks).
        y: scores shaped (num_runs_y, num_tasks).
        confidence, n_resamples, random_state: as in :func:`stratified_bootstrap_ci`.

    Returns:
        ``IntervalEstimate`` of floats.
    """
    x, y = _check_pair(x, y)
    point = probability_of_improvement(x, y)
    return _stratified_bootstrap(
        [x, y], _probability_of_improvement_batched, point, confidence, n_resamples, random_state
    )
