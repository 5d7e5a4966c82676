"""Every plot returns (fig, ax) with visible artists and renders deterministically under Agg."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from llmrl_bench import plots, stats

SCORES = {
    "PPO": np.array([[0.9, 1.1], [0.8, 1.0], [1.0, 1.2]]),
    "DQN": np.array([[0.4, 0.6], [0.5, 0.7], [0.3, 0.5]]),
}
TAUS = np.linspace(0.0, 1.5, 7)


def interval_estimates():
    cis = stats.aggregate_with_cis(SCORES, n_resamples=100)
    return plots.plot_interval_estimates(cis, ["iqm", "optimality_gap"], xlabel="Normalized score")


def learning_curves():
    steps = np.arange(5) * 1000
    # 3 runs × 5 steps per algorithm
    curves = {name: np.outer(scores[:, 0], np.linspace(0, 1, 5)) for name, scores in SCORES.items()}
    return plots.plot_learning_curves(steps, curves, n_resamples=100)


def performance_profiles():
    return plots.plot_performance_profiles(TAUS, stats.performance_profiles(SCORES, TAUS, n_resamples=100))


def probability_of_improvement():
    pairs = {
        ("PPO", "DQN"): stats.probability_of_improvement_with_ci(SCORES["PPO"], SCORES["DQN"], n_resamples=100),
        ("DQN", "PPO"): stats.probability_of_improvement_with_ci(SCORES["DQN"], SCORES["PPO"], n_resamples=100),
    }
    return plots.plot_probability_of_improvement(pairs)


def train_vs_held_out():
    estimates = {
        ("PPO", "pixels"): {"train": (0.9, 0.8, 1.0), "held_out": (0.5, 0.4, 0.6)},
        ("DQN", "text"): {"train": (0.7, 0.6, 0.8), "held_out": (0.6, 0.5, 0.7)},
    }
    return plots.plot_train_vs_held_out(estimates)


def return_vs_compute():
    flops = {"PPO": np.array([1e12, 1e14, 1e13]), "DQN": np.array([2e12, 2e13, 2e14])}
    returns = {"PPO": np.array([0.2, 0.9, 0.6]), "DQN": np.array([0.1, 0.3, 0.5])}
    return plots.plot_return_vs_compute(flops, returns, {"PPO": (returns["PPO"] - 0.1, returns["PPO"] + 0.1)})


PLOTS = [interval_estimates, learning_curves, performance_profiles, probability_of_improvement,
         train_vs_held_out, return_vs_compute]


def render(fig: Figure, fmt: str = "png") -> bytes:
    metadata = {"Software": None} if fmt == "png" else {"CreationDate": None, "ModDate": None, "Producer": None}
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


@pytest.mark.parametrize("make_plot", PLOTS, ids=lambda f: f.__name__)
def test_plot_returns_a_figure_with_visible_artists(make_plot):
    fig, ax = make_plot()
    assert isinstance(fig, Figure)
    assert fig.canvas.manager is None  # not registered with pyplot: no global state, no leaks
    for axes in np.atleast_1d(ax):
        assert isinstance(axes, Axes)
        assert len(axes.lines) + len(axes.patches) + len(axes.collections) > 0
    assert render(fig).startswith(b"\x89PNG")


@pytest.mark.parametrize("make_plot", PLOTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("fmt", ["png", "pdf"])
def test_plot_renders_byte_identically(make_plot, fmt):
    assert render(make_plot()[0], fmt) == render(make_plot()[0], fmt)


def test_interval_estimates_has_one_panel_per_metric_with_a_bar_per_algorithm():
    fig, axes = interval_estimates()
    assert [ax.get_title() for ax in axes] == ["IQM", "Optimality Gap"]
    assert all(len(ax.patches) == 2 for ax in axes)
    assert [label.get_text() for label in axes[0].get_yticklabels()] == ["PPO", "DQN"]
    assert fig.get_supxlabel() == "Normalized score"


def test_learning_curves_draw_a_line_and_a_band_per_algorithm():
    _, ax = learning_curves()
    assert [line.get_label() for line in ax.lines] == ["PPO", "DQN"]
    assert len(ax.collections) == 2
    assert ax.get_legend() is not None


def test_learning_curves_check_steps():
    with pytest.raises(ValueError, match="steps"):
        plots.plot_learning_curves(np.arange(4), {"PPO": np.ones((3, 5))}, n_resamples=10)


def test_performance_profiles_without_bands():
    profiles = {name: stats.performance_profile(scores, TAUS) for name, scores in SCORES.items()}
    _, ax = plots.plot_performance_profiles(TAUS, profiles)
    assert len(ax.lines) == 2 and len(ax.collections) == 0


def test_probability_of_improvement_labels_x_left_and_y_right():
    fig, ax = probability_of_improvement()
    right = next(other for other in fig.axes if other is not ax)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["PPO", "DQN"]
    assert [t.get_text() for t in right.get_yticklabels()] == ["DQN", "PPO"]


def test_train_vs_held_out_draws_a_bar_per_group_and_split():
    _, ax = train_vs_held_out()
    assert len(ax.patches) == 4
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "held_out"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["PPO\npixels", "DQN\ntext"]


def test_return_vs_compute_uses_a_log_axis_and_sorts_by_compute():
    _, ax = return_vs_compute()
    assert ax.get_xscale() == "log"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1e12, 1e13, 1e14])
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [0.2, 0.6, 0.9])
    with pytest.raises(ValueError, match="positive"):
        plots.plot_return_vs_compute({"PPO": np.array([0.0, 1.0])}, {"PPO": np.array([0.1, 0.2])})


def test_algorithm_colors_follow_sorted_names():
    assert plots.algorithm_colors(["PPO", "DQN", "PPO"]) == {"DQN": plots.PALETTE[0], "PPO": plots.PALETTE[1]}
    colors = plots.algorithm_colors(["A2C", "DQN", "PPO"])
    profile = {"PPO": stats.performance_profile(SCORES["PPO"], TAUS)}
    _, ax = plots.plot_performance_profiles(TAUS, profile, colors=colors)
    assert ax.lines[0].get_color() == colors["PPO"]


def test_plots_draw_into_a_given_axes():
    fig = Figure()
    ax = fig.subplots()
    profile = {"PPO": stats.performance_profile(SCORES["PPO"], TAUS)}
    out_fig, out_ax = plots.plot_performance_profiles(TAUS, profile, ax=ax)
    assert out_fig is fig and out_ax is ax


def test_error_bars_tolerate_a_bound_that_misses_the_point_by_rounding():
    """A bootstrap bound can sit 1e-16 on the wrong side of the IQM (all seeds but one equal)."""
    estimates = {("llm_pg", "text"): {"train": (0.955, 0.318, 0.9549999999999998), "held_out": (0.5, 0.5000000000000001, 0.6)}}
    _, ax = plots.plot_train_vs_held_out(estimates)
    assert len(ax.patches) == 2
    flops = {"llm_pg": np.array([1e12])}
    returns = {"llm_pg": np.array([0.955])}
    plots.plot_return_vs_compute(flops, returns, {"llm_pg": (np.array([0.318]), np.array([0.9549999999999998]))})
