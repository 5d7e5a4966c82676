"""The metric functions against hand-computed arrays and the reference implementation."""

import json
from pathlib import Path

import numpy as np
import pytest

from llmrl_bench import metrics

UNIT = (0.0, 1.0)
B = 100_000.0
# The stored curves the reference implementation was run on (recorded before the evaluation protocol; their
# experiments were run again since, under the same run_ids, into results/reference/runs).
RUNS = Path(__file__).resolve().parents[1] / "results" / "reference" / "superseded" / "before_protocol" / "runs"


def test_cumulative_reward_is_mean_over_last_axis():
    returns = np.array([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(metrics.cumulative_reward(returns), [3.0, 0.5])


def test_step_rates_divide_by_the_step_gap():
    np.testing.assert_allclose(metrics.step_rates([0, 10, 30], [0.0, 1.0, 5.0]), [0.1, 0.2])


def test_curve_range_is_95th_percentile_minus_start():
    # 21 points 0..20: the 95th percentile is 19
    assert metrics.curve_range(np.arange(21.0)) == pytest.approx(19.0)
    assert metrics.curve_range(np.array([5.0, 1.0, 1.0])) == pytest.approx(-0.4)  # 4.6 - 5: a curve that only fell


def test_cvar_is_the_exact_tail_mean():
    values = np.arange(40.0)  # alpha·n = 2: the two lowest
    assert metrics.cvar(values, "lower") == pytest.approx(0.5)
    assert metrics.cvar(values, "upper") == pytest.approx(38.5)
    # alpha·n = 1.05: the lowest plus 5% of the next, over 1.05
    assert metrics.cvar(np.arange(21.0), "lower") == pytest.approx(0.05 / 1.05)
    # ties cannot pull the tail mean towards the bulk: one collapse among 20 zeros
    assert metrics.cvar(np.r_[np.zeros(20), 0.5], "upper") == pytest.approx(0.5 / 1.05)
    with pytest.raises(ValueError, match="tail must be"):
        metrics.cvar(values, "middle")


def test_flat_curve_is_undefined_never_zero():
    steps, flat = np.linspace(0, B, 21), np.zeros(21)
    assert np.isnan(metrics.long_term_risk(flat, UNIT))
    assert np.isnan(metrics.short_term_risk(steps, flat, UNIT))
    assert np.isnan(metrics.dispersion_across_time(steps, flat, UNIT))
    out = metrics.run_metrics_from_curve(
        [{"step": s, "train_return": 0.0, "held_out_return": 0.0} for s in steps], UNIT, 0.9)
    assert out["policy_stability"] is None and out["dispersion_across_time"] is None


def test_noise_below_the_learning_threshold_is_undefined():
    # one lucky evaluation episode in ten on a success-rate env: range 0.1 < 0.3 of the score range
    curve = np.zeros(21)
    curve[[5, 19]] = 0.1
    assert not metrics.learned(curve, UNIT)
    assert np.isnan(metrics.long_term_risk(curve, UNIT))


def test_collapse_is_a_large_long_term_risk():
    # learns to 1 by 40% of the run, then falls to 0.2 and stays there for the last 20%
    steps = np.linspace(0, B, 21)
    curve = np.interp(steps, [0, 0.4 * B, 0.6 * B, 0.8 * B, B], [0, 1, 1, 0.2, 0.2])
    # drawdown 0.8 at the last 5 points; curve range = 1 - 0: the worst 5% average 0.8
    assert metrics.long_term_risk(curve, UNIT) == pytest.approx(0.8)
    # the steepest fall, 0.2 per 5% of the run, per env step
    assert metrics.short_term_risk(steps, curve, UNIT) == pytest.approx(-0.2 / (0.05 * B))
    stable = np.interp(steps, [0, 0.4 * B, B], [0, 1, 1])
    assert metrics.long_term_risk(stable, UNIT) == pytest.approx(0.0)  # learned and kept: defined, 0


def test_dispersion_across_time_is_windowed_iqr_of_rates():
    # rates over 10 gaps of 10 steps: window = 20% of 100 steps holds 3 rates
    steps = np.arange(0, 101, 10.0)
    rates = np.array([1, 3, -2, 4, 0, 1, 3, -2, 4, 0]) / 10.0
    curve = np.r_[0.0, np.cumsum(rates * 10)] + 10.0  # range: p95 - start
    windows = [rates[i - 2 : i + 1] for i in range(2, 10)]  # windows ending at rates 3..10
    expected = np.median([np.subtract(*np.percentile(w, [75, 25])) for w in windows])
    expected /= metrics.curve_range(curve)
    assert metrics.dispersion_across_time(steps, curve, (0.0, 10.0)) == pytest.approx(expected)
    # a window needs two rates: 4 gaps over a 20% window leaves one per window
    assert np.isnan(metrics.dispersion_across_time(np.linspace(0, B, 5), np.linspace(0, 1, 5) ** 2, UNIT))


@pytest.mark.parametrize("shape", ["sine", "square"])
def test_rates_agree_across_evaluation_frequencies(shape):
    """The same curve at 5, 10, 20 and 40 evaluation gaps (6 to 41 points): within 10%.

    The old metric, IQR of raw differences, gave 0.1875, 0.090, 0.0475, 0.0244 for
    y = (t/B)² at 4, 10, 20, 40 gaps: it shrank with the evaluation spacing.
    """
    curve_of = {"sine": lambda t: np.sin(np.pi * t / B), "square": lambda t: (t / B) ** 2}[shape]
    values = {"dt": [], "srt": [], "lrt": []}
    for gaps in (5, 10, 20, 40):
        steps = np.linspace(0, B, gaps + 1)
        curve = curve_of(steps)
        values["dt"].append(metrics.dispersion_across_time(steps, curve, UNIT))
        values["srt"].append(metrics.short_term_risk(steps, curve, UNIT))
        values["lrt"].append(metrics.long_term_risk(curve, UNIT))
    checked = ("dt", "srt", "lrt") if shape == "sine" else ("dt",)  # y=t² has no drop: its min rate → 0
    for name in checked:
        spread = np.ptp(values[name]) / np.max(np.abs(values[name]))
        assert spread < 0.10, (name, values[name])


def _curve(run_id: str) -> tuple[np.ndarray, np.ndarray]:
    record = json.loads((RUNS / run_id / "result.json").read_text())
    return (np.array([p["step"] for p in record["curve"]], float),
            np.array([p["train_return"] for p in record["curve"]], float))


CARTPOLE_DQN_SEED0 = "cb5a887307ecdd07"
DOORKEY_PPO_SEED2 = "cac46e80c4a3eae8"


def test_within_run_metrics_match_the_reference_implementation():
    """Expected values from google-research/rl-reliability-metrics at 50da84b, run as is in a
    scratch venv (numpy 2, scipy, gin-config; one numpy-2 fix in ``across_runs_preprocess``,
    ``lambda x: x`` → ``lambda x: x.item()``), on the stored curves:
    ``IqrWithinRuns(window_size=0.2·B + 1, baseline='curve_range')`` (median over its windows),
    ``LowerCVaROnDiffs(baseline='curve_range')``, ``UpperCVaROnDrawdown(baseline='curve_range')``.
    """
    steps, curve = _curve(CARTPOLE_DQN_SEED0)
    score = (0.0, 500.0)
    assert metrics.dispersion_across_time(steps, curve, score) == pytest.approx(8.059089043906443e-05, rel=1e-12)
    assert metrics.short_term_risk(steps, curve, score) == pytest.approx(-0.0002854329093147313, rel=1e-12)
    # 20 points: the reference's tail is the single worst drawdown, as ours
    assert metrics.long_term_risk(curve[:20], score) == pytest.approx(0.8422240459581454, rel=1e-12)
    assert metrics.dispersion_across_time(steps[:20], curve[:20], score) == pytest.approx(
        0.00010256462864177266, rel=1e-12)
    steps, curve = _curve(DOORKEY_PPO_SEED2)
    assert metrics.short_term_risk(steps, curve, UNIT) == pytest.approx(-9.947639627659575e-05, rel=1e-12)
    t = np.linspace(0, 1000, 21)
    assert metrics.dispersion_across_time(t, np.sin(np.pi * t / 1000), UNIT) == pytest.approx(
        0.0008017936114802201, rel=1e-12)


def test_long_term_risk_differs_from_the_reference_only_by_its_tie_rule():
    """The reference's ``mean(drawdown >= VaR)`` on DoorKey PPO seed 4 (one 50% collapse among
    20 zero drawdowns) gives 0.0239 (all 21 points tie at or above the VaR of 0); the exact
    tail mean gives the collapse: 0.477 = 0.5 / 1.05 of the curve range."""
    runs = _doorkey_curves()
    assert metrics.long_term_risk(runs[4], UNIT) == pytest.approx(0.4773, abs=1e-4)


def _doorkey_curves() -> np.ndarray:
    records = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*/result.json"))]
    runs = sorted((r["seed"], [p["train_return"] for p in r["curve"]]) for r in records
                  if (r["env"], r["agent"]) == ("MiniGrid-DoorKey-5x5-v0", "ppo"))
    return np.array([curve for _, curve in runs])


def test_across_run_metrics_match_the_reference_implementation():
    """``IqrAcrossRuns(eval_points=steps[1:], baseline='curve_range')`` (median over steps) and
    ``LowerCVaROnAcross(eval_points=[B])`` over the median curve range, on the stored
    curves of cartpole DQN ("tuned here", 10 seeds) and DoorKey PPO (10 seeds), run as above."""
    records = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*/result.json"))]
    dqn = sorted((r["seed"], [p["train_return"] for p in r["curve"]]) for r in records
                 if (r["env"], r["agent"]) == ("cartpole", "dqn") and r["config"]["agent"]["gradient_steps"] == 256)
    curves = np.array([c for _, c in dqn])
    steps = np.linspace(0, 50_000, 21)
    assert metrics.dispersion_across_runs(steps, curves, (0, 500)) == pytest.approx(0.0997285948381811, rel=1e-12)
    assert metrics.risk_across_runs(steps, curves, (0, 500)) == pytest.approx(1.0241704219582137, rel=1e-12)
    doorkey = _doorkey_curves()
    assert metrics.risk_across_runs(np.linspace(0, B, 21), doorkey, UNIT) == pytest.approx(0.5011186609214451)
    assert np.isnan(metrics.dispersion_across_runs(steps, curves[:1], (0, 500)))  # one seed: undefined


def test_lowpass_only_where_evaluations_are_dense_enough():
    steps = np.linspace(0, B, 21)
    curve = np.sin(np.arange(21.0))
    np.testing.assert_array_equal(metrics.lowpass(steps, curve), curve)  # cutoff at Nyquist
    steps = np.linspace(0, B, 101)
    trend = np.linspace(0, 1, 101)
    filtered = metrics.lowpass(steps, trend + 0.2 * (-1.0) ** np.arange(101))  # noise at Nyquist
    assert np.abs(filtered - trend)[20:81].max() < 0.02  # removed away from the edges


def test_normalized_auc_trapezoid():
    steps = np.array([0, 50, 100])
    assert metrics.normalized_auc(steps, np.array([0.0, 100.0, 200.0]), (0, 200)) == pytest.approx(0.5)
    assert metrics.normalized_auc(steps, np.full(3, 200.0), (0, 200)) == pytest.approx(1.0)


def test_steps_to_threshold():
    steps = np.array([0, 10, 20, 30])
    assert metrics.steps_to_threshold(steps, np.array([0, 470, 480, 400]), 475) == 20.0
    assert metrics.steps_to_threshold(steps, np.array([0, 1, 2, 3]), 475) is None
    assert metrics.steps_to_threshold(steps, np.array([0, 1, 2, 3]), None) is None


def test_compute_run_metrics_returns_the_registry_run_metrics():
    out = metrics.compute_run_metrics(
        steps=np.array([0, 50, 100]),
        train_curve=np.array([0.0, 100.0, 200.0]),
        held_out_curve=np.array([0.0, 50.0, 100.0]),
        final_train_returns=np.array([200.0, 200.0]),
        final_held_out_returns=np.array([[100.0, 50.0], [150.0, 100.0]]),
        score_range=(0.0, 400.0),
        reward_threshold=150.0,
    )
    assert tuple(out) == metrics.RUN_METRICS
    assert out["cumulative_reward"] == 200.0 and out["cumulative_reward_normalized"] == 0.5
    assert out["generalization"] == 100.0 and out["generalization_gap"] == 100.0
    assert out["generalization_gap_normalized"] == 0.25 and out["steps_to_threshold"] == 100.0
    assert out["policy_stability"] == pytest.approx(0.0)  # improves monotonically: range 190 ≥ 0.3 × 400
    assert out["dispersion_across_time"] is None  # two gaps: too few for a 20% window
    assert out["learning_speed"] == pytest.approx(0.25)


def test_registry_is_complete_and_drives_the_schema():
    assert set(metrics.HEADLINE_METRICS) <= set(metrics.METRICS)
    for spec in metrics.METRICS.values():
        assert spec.units and spec.description and spec.citation and spec.title
        assert spec.pooled is None or spec.pooled in metrics.METRICS
    assert metrics.METRICS["policy_stability"].higher_is_better is False
    schema = metrics.result_schema()
    assert set(schema["properties"]) == set(metrics.RUN_METRICS)
    assert schema["properties"]["policy_stability"]["type"] == ["number", "null"]
    assert "policy_stability" in schema["required"]


def test_docs_list_every_metric_with_its_direction():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text()
    for name, spec in metrics.METRICS.items():
        row = next((line for line in docs.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None, name
        assert spec.direction in row, name
