"""The metric functions against hand-computed arrays."""

import numpy as np
import pytest

from llmrl_bench import metrics


def test_cumulative_reward_is_mean_over_last_axis():
    returns = np.array([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(metrics.cumulative_reward(returns), [3.0, 0.5])


def test_dispersion_across_time_is_iqr_of_differences():
    # differences: [1, 3, -2, 4, 0] -> sorted [-2, 0, 1, 3, 4]; q25 = 0, q75 = 3
    curve = np.array([0.0, 1.0, 4.0, 2.0, 6.0, 6.0])
    assert metrics.dispersion_across_time(curve) == pytest.approx(3.0)
    # a straight line is perfectly stable however steep
    assert metrics.dispersion_across_time(np.arange(10.0) * 7) == pytest.approx(0.0)


def test_dispersion_keeps_leading_axes():
    curves = np.stack([np.array([0.0, 1.0, 4.0, 2.0, 6.0, 6.0]), np.zeros(6)])
    np.testing.assert_allclose(metrics.dispersion_across_time(curves), [3.0, 0.0])


def test_short_term_risk_is_mean_of_worst_tail():
    curve = np.array([0.0, 1.0, 4.0, 2.0, 6.0, 6.0])  # differences [1, 3, -2, 4, 0]
    assert metrics.short_term_risk(curve, alpha=0.05) == pytest.approx(-2.0)  # ceil(0.25) = 1 value
    assert metrics.short_term_risk(curve, alpha=0.4) == pytest.approx(-1.0)  # mean(-2, 0)


def test_normalized_auc_trapezoid():
    steps = np.array([0, 50, 100])
    curve = np.array([0.0, 100.0, 200.0])
    # normalised by (0, 200): heights 0, .5, 1 -> area 50*.25 + 50*.75 = 50 -> /100
    assert metrics.normalized_auc(steps, curve, (0, 200)) == pytest.approx(0.5)
    assert metrics.normalized_auc(steps, np.full(3, 200.0), (0, 200)) == pytest.approx(1.0)


def test_steps_to_threshold():
    steps = np.array([0, 10, 20, 30])
    assert metrics.steps_to_threshold(steps, np.array([0, 470, 480, 400]), 475) == 20.0
    assert metrics.steps_to_threshold(steps, np.array([0, 1, 2, 3]), 475) is None
    assert metrics.steps_to_threshold(steps, np.array([0, 1, 2, 3]), None) is None


def test_compute_run_metrics_companions():
    out = metrics.compute_run_metrics(
        steps=np.array([0, 50, 100]),
        train_curve=np.array([0.0, 100.0, 200.0]),
        held_out_curve=np.array([0.0, 50.0, 100.0]),
        final_train_returns=np.array([200.0, 200.0]),
        final_held_out_returns=np.array([[100.0, 50.0], [150.0, 100.0]]),
        score_range=(0.0, 400.0),
        reward_threshold=150.0,
    )
    assert out["cumulative_reward"] == 200.0
    assert out["cumulative_reward_normalized"] == 0.5
    assert out["generalization"] == 100.0
    assert out["generalization_gap"] == 100.0
    assert out["generalization_gap_normalized"] == 0.25
    assert out["steps_to_threshold"] == 100.0
    assert out["policy_stability"] == pytest.approx(0.0)  # differences [100, 100]
    assert out["learning_speed"] == pytest.approx(0.25)
    assert set(metrics.HEADLINE_METRICS) <= set(out)
