"""Aggregate metrics and stratified bootstrap CIs on tiny hand-built arrays (runs × tasks)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from llmrl_bench import stats

# rliable's own test matrices (tests/rliable/metrics_test.py): runs × tasks.
X = np.array([[1, 2], [2, 2], [1, 1], [2, 1]], dtype=float)
Y = np.array([[1, 1], [2, 2], [3, 3]], dtype=float)


# ------------------------------------------------------------------------------ metrics


def test_iqm_trims_a_quarter_from_each_end_of_all_runs_and_tasks():
    assert stats.iqm(np.arange(1, 9).reshape(4, 2)) == 4.5  # mean(3, 4, 5, 6)
    assert stats.iqm(np.arange(1, 11).reshape(5, 2)) == 5.5  # floor(2.5) = 2 cut per end: mean(3..8)
    assert stats.iqm(np.array([[0.0, 100.0], [1.0, 2.0]])) == 1.5  # the outliers 0 and 100 are cut


def test_metrics_match_rliable_reference_values():
    assert (stats.median(X), stats.mean(X), stats.iqm(X)) == (1.5, 1.5, 1.5)
    assert (stats.median(Y), stats.mean(Y), stats.iqm(Y)) == (2.0, 2.0, 2.0)
    assert stats.probability_of_improvement(X, Y) == pytest.approx(1 / 3)


def test_median_is_of_task_means_not_of_all_values():
    scores = np.array([[0.0, 4.0, 9.0], [2.0, 0.0, 1.0]])  # task means 1, 2, 5
    assert stats.median(scores) == 2.0  # the median of all six values would be 1.5
    assert stats.mean(scores) == pytest.approx(16 / 6)


def test_optimality_gap_clips_scores_at_gamma():
    scores = np.array([[0.5, 1.5], [0.0, 1.0]])  # clipped: 0.5, 1, 0, 1 -> mean 0.625
    assert stats.optimality_gap(scores) == pytest.approx(0.375)
    assert stats.optimality_gap(scores, gamma=2.0) == pytest.approx(2.0 - 0.75)
    assert stats.optimality_gap(np.full((3, 2), 1.2)) == 0.0


def test_metrics_with_a_steps_axis_give_one_value_per_step():
    scores = np.stack([np.arange(1, 9).reshape(4, 2), 10 * np.arange(1, 9).reshape(4, 2)], axis=-1)  # 4 × 2 × 2
    np.testing.assert_allclose(stats.iqm(scores), [4.5, 45.0])
    np.testing.assert_allclose(stats.mean(scores), [4.5, 45.0])
    np.testing.assert_allclose(stats.median(scores), [4.5, 45.0])  # task means 4 and 5
    np.testing.assert_allclose(stats.optimality_gap(scores), [0.0, 0.0])


def test_metrics_reject_arrays_that_are_not_runs_by_tasks():
    with pytest.raises(ValueError, match="num_runs, num_tasks"):
        stats.iqm(np.arange(4.0))
    with pytest.raises(ValueError, match="num_runs, num_tasks"):
        stats.performance_profile(np.ones((2, 2, 2)), [0.5])


# --------------------------------------------------------------------- performance profile


def test_performance_profile_counts_scores_strictly_above_tau():
    scores = np.array([[0.1, 0.5], [0.9, 1.5]])
    np.testing.assert_array_equal(stats.performance_profile(scores, [0.0, 0.5, 1.0, 2.0]), [1.0, 0.5, 0.25, 0.0])


def test_performance_profile_ci_at_each_tau_equals_the_ci_at_that_tau_alone():
    scores = np.random.default_rng(3).uniform(0, 2, size=(6, 3))
    taus = np.array([0.25, 0.5, 1.0, 1.5])
    profile = stats.performance_profile_with_cis(scores, taus, n_resamples=300, random_state=7)
    single = stats.performance_profile_with_cis(scores, taus[2:3], n_resamples=300, random_state=7)
    np.testing.assert_array_equal(profile.point, stats.performance_profile(scores, taus))
    assert (profile.low[2], profile.high[2]) == (single.low[0], single.high[0])
    assert np.all(profile.low <= profile.point) and np.all(profile.point <= profile.high)


def test_performance_profiles_per_algorithm():
    scores = {"a": np.array([[0.1, 0.5], [0.9, 1.5]]), "b": np.ones((2, 2))}
    profiles = stats.performance_profiles(scores, [0.5, 1.0], n_resamples=100)
    assert list(profiles) == ["a", "b"]
    np.testing.assert_array_equal(profiles["a"].point, [0.5, 0.25])
    np.testing.assert_array_equal(profiles["b"], [[1.0, 0.0]] * 3)  # no spread: bands collapse


# --------------------------------------------------------------- probability of improvement


def test_probability_of_improvement_by_hand():
    x = np.array([[3.0, 1.0], [4.0, 2.0]])
    y = np.array([[1.0, 2.0], [2.0, 3.0]])
    # task 0: x beats y in all 4 pairs -> 1. task 1: one tie (2, 2) in 4 pairs -> 0.125.
    assert stats.probability_of_improvement(x, y) == pytest.approx((1.0 + 0.125) / 2)
    assert stats.probability_of_improvement(y, x) == pytest.approx(1 - (1.0 + 0.125) / 2)
    assert stats.probability_of_improvement(x, x) == 0.5
    assert stats.probability_of_improvement(np.ones((3, 2)), np.ones((5, 2))) == 0.5


def test_probability_of_improvement_equals_pair_counting():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, size=(5, 3)).astype(float), rng.integers(0, 4, size=(4, 3)).astype(float)
    per_task = [
        np.mean([(a > b) + 0.5 * (a == b) for a, b in itertools.product(x[:, t], y[:, t])]) for t in range(3)
    ]
    assert stats.probability_of_improvement(x, y) == pytest.approx(np.mean(per_task))


def test_probability_of_improvement_needs_the_same_tasks():
    with pytest.raises(ValueError, match="same tasks"):
        stats.probability_of_improvement(np.ones((2, 2)), np.ones((2, 3)))


def test_probability_of_improvement_ci():
    rng = np.random.default_rng(1)
    x, y = rng.normal(1.0, 1.0, size=(8, 4)), rng.normal(0.0, 1.0, size=(5, 4))
    point, low, high = stats.probability_of_improvement_with_ci(x, y, n_resamples=500)
    assert point == stats.probability_of_improvement(x, y)
    assert 0.0 <= low <= point <= high <= 1.0
    assert stats.probability_of_improvement_with_ci(x, y, n_resamples=500) == (point, low, high)
    # A one-run y is fixed, x still varies.
    _, low1, high1 = stats.probability_of_improvement_with_ci(x, y[:1], n_resamples=500)
    assert low1 < high1


# ------------------------------------------------------------------- stratified bootstrap


def test_bootstrap_ci_is_reproducible_and_contains_the_point():
    scores = np.random.default_rng(0).normal(1.0, 0.3, size=(10, 4))
    first = stats.stratified_bootstrap_ci(scores, stats.iqm, random_state=5)
    assert stats.stratified_bootstrap_ci(scores, stats.iqm, random_state=5) == first
    assert stats.stratified_bootstrap_ci(scores, stats.iqm, random_state=6) != first
    assert first.point == stats.iqm(scores)
    assert first.low < first.point < first.high
    generator = stats.stratified_bootstrap_ci(scores, stats.iqm, random_state=np.random.default_rng(5))
    assert generator == first


def test_stratification_keeps_each_task_and_its_run_count():
    scores = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])  # task 0 < 10 <= task 1
    seen = []

    def spy(resample: np.ndarray) -> float:
        seen.append(resample.copy())
        return float(np.mean(resample >= 10))  # 0.5 only if each task keeps its 3 runs

    assert stats.stratified_bootstrap_ci(scores, spy, n_resamples=200) == (0.5, 0.5, 0.5)
    resamples = np.array(seen[1:])  # seen[0] is the point estimate
    assert resamples.shape == (200, 3, 2)
    assert np.isin(resamples[:, :, 0], scores[:, 0]).all() and np.isin(resamples[:, :, 1], scores[:, 1]).all()
    assert len({r.tobytes() for r in resamples}) > 100  # runs really are resampled


def test_bootstrap_keeps_a_run_whole_along_steps():
    steps = np.arange(5.0)
    curves = np.array([[steps + 10 * run] for run in range(4)])  # 4 runs × 1 task × 5 steps
    seen = []

    def spy(resample: np.ndarray) -> np.ndarray:
        seen.append(resample.copy())
        return resample.mean(axis=(0, 1))

    stats.stratified_bootstrap_ci(curves, spy, n_resamples=50)
    for resample in seen:
        np.testing.assert_array_equal(resample[:, 0, :] - resample[:, 0, :1], np.tile(steps, (4, 1)))


def test_degenerate_inputs_give_the_point_as_interval_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stats.stratified_bootstrap_ci(np.full((5, 3), 0.7), stats.iqm) == (0.7, 0.7, 0.7)
        assert stats.stratified_bootstrap_ci(np.array([[0.1, 0.9]]), stats.mean) == (0.5, 0.5, 0.5)
        assert stats.iqm_across_seeds([3.0]) == (3.0, 3.0, 3.0)
        assert stats.probability_of_improvement_with_ci(np.ones((1, 2)), np.zeros((1, 2))) == (1.0, 1.0, 1.0)


def test_built_in_metrics_bootstrap_like_any_other_function():
    # Built-in metrics take a vectorised path; a wrapper takes the per-resample loop.
    scores = np.random.default_rng(2).normal(size=(7, 3, 4))
    for metric in stats.METRICS.values():
        fast = stats.stratified_bootstrap_ci(scores, metric, n_resamples=200)
        slow = stats.stratified_bootstrap_ci(scores, lambda s, metric=metric: metric(s), n_resamples=200)
        for a, b in zip(fast, slow):
            np.testing.assert_allclose(a, b, rtol=1e-12)


def test_bootstrap_ci_of_a_mean_is_close_to_the_normal_interval():
    values = np.random.default_rng(4).normal(size=400)
    _, low, high = stats.stratified_bootstrap_ci(values[:, None], stats.mean, n_resamples=2000)
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)


def test_bootstrap_arguments_are_checked():
    with pytest.raises(ValueError, match="confidence"):
        stats.stratified_bootstrap_ci(X, stats.iqm, confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        stats.stratified_bootstrap_ci(X, stats.iqm, n_resamples=0)


# --------------------------------------------------------------------------- conveniences


def test_aggregate_with_cis_is_independent_of_dictionary_order():
    scores = {"a": X, "b": Y}
    result = stats.aggregate_with_cis(scores, n_resamples=200)
    assert list(result) == ["a", "b"] and list(result["a"]) == ["iqm", "mean", "median", "optimality_gap"]
    assert result["a"]["iqm"] == stats.stratified_bootstrap_ci(X, stats.iqm, n_resamples=200)
    assert stats.aggregate_with_cis({"b": Y, "a": X}, n_resamples=200) == result
    custom = stats.aggregate_with_cis(scores, fns={"max": np.max}, n_resamples=200)
    assert custom["b"]["max"].point == 3.0


def test_curve_cis_per_step():
    curves = np.array([[0.0, 1.0, 2.0], [0.0, 2.0, 4.0], [0.0, 3.0, 6.0], [0.0, 4.0, 8.0]])  # 4 runs × 3 steps
    point, low, high = stats.aggregate_curve_with_cis(curves, n_resamples=200)
    np.testing.assert_allclose(point, [0.0, 2.5, 5.0])  # IQM at each step
    assert low[0] == high[0] == 0.0
    assert np.all(low <= point) and np.all(point <= high)
    same = stats.aggregate_curve_with_cis(curves[:, None, :], n_resamples=200)
    for a, b in zip(same, (point, low, high)):
        np.testing.assert_array_equal(a, b)


def test_iqm_across_seeds_is_the_one_task_bootstrap():
    values = np.array([0.2, 0.4, 0.5, 0.9, 1.3])
    result = stats.iqm_across_seeds(values, n_resamples=300)
    assert result == stats.stratified_bootstrap_ci(values[:, None], stats.iqm, n_resamples=300)
    assert result.point == pytest.approx(0.6)  # cut 1 per end of 5: mean(0.4, 0.5, 0.9)
    with pytest.raises(ValueError, match="num_runs"):
        stats.iqm_across_seeds(np.ones((2, 2)))
