"""The four benchmark metrics, as pure functions on arrays.

Shapes: a *curve* is an array ``(..., num_points)`` of evaluation returns at the
evaluation steps ``(num_points,)``; leading axes (runs, tasks) are kept, so the same
function scores one run or a whole ``runs × tasks`` table. Definitions and citations:
``docs/metrics.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Tail fraction for the short-term-risk CVaR (Chan et al. 2020 use 0.05).
CVAR_ALPHA = 0.05


def normalize(values: np.ndarray | float, score_range: tuple[float, float]) -> np.ndarray:
    """Map returns onto [0, 1] by the env's ``(min, max)`` score range (any shape)."""
    low, high = score_range
    return (np.asarray(values, dtype=np.float64) - low) / (high - low)


def cumulative_reward(final_episode_returns: np.ndarray) -> np.ndarray:
    """Mean undiscounted return of the final policy on the training distribution.

    ``final_episode_returns``: ``(..., episodes)`` → ``(...)``.
    """
    return np.mean(np.asarray(final_episode_returns, dtype=np.float64), axis=-1)


def dispersion_across_time(curve: np.ndarray) -> np.ndarray:
    """IQR of the differenced evaluation curve (Chan et al. 2020, DT). Lower is more stable.

    ``curve``: ``(..., num_points)`` with ``num_points >= 2`` → ``(...)``.
    Differencing detrends the curve, so steady improvement is not counted as instability.
    """
    differences = np.diff(np.asarray(curve, dtype=np.float64), axis=-1)
    q75, q25 = np.percentile(differences, [75, 25], axis=-1)
    return q75 - q25


def short_term_risk(curve: np.ndarray, alpha: float = CVAR_ALPHA) -> np.ndarray:
    """CVaR of the differenced evaluation curve (Chan et al. 2020, SRT).

    The mean of the worst ``alpha`` fraction of the curve's successive changes (at
    least one value): the expected size of the biggest drops. More negative is riskier.
    ``curve``: ``(..., num_points)`` → ``(...)``.
    """
    differences = np.sort(np.diff(np.asarray(curve, dtype=np.float64), axis=-1), axis=-1)
    tail = max(1, int(np.ceil(alpha * differences.shape[-1])))
    return np.mean(differences[..., :tail], axis=-1)


def normalized_auc(steps: np.ndarray, curve: np.ndarray, score_range: tuple[float, float]) -> np.ndarray:
    """Area under the normalized evaluation curve divided by the budget, in [0, 1].

    Trapezoidal rule over ``steps`` ``(num_points,)``; ``curve`` ``(..., num_points)`` → ``(...)``.
    1 means the policy scored the env's maximum from the first evaluation on.
    """
    steps = np.asarray(steps, dtype=np.float64)
    heights = normalize(curve, score_range)
    area = np.sum((heights[..., 1:] + heights[..., :-1]) / 2 * np.diff(steps), axis=-1)
    return area / (steps[-1] - steps[0])


def steps_to_threshold(steps: np.ndarray, curve: np.ndarray, threshold: float | None) -> float | None:
    """First evaluation step whose return reaches ``threshold``; ``None`` if never (one run).

    ``steps``, ``curve``: ``(num_points,)``.
    """
    if threshold is None:
        return None
    reached = np.flatnonzero(np.asarray(curve) >= threshold)
    return float(np.asarray(steps)[reached[0]]) if reached.size else None


def generalization_gap(train_return: np.ndarray, held_out_return: np.ndarray) -> np.ndarray:
    """Training minus held-out return (any matching shapes). Positive means overfitting."""
    return np.asarray(train_return, dtype=np.float64) - np.asarray(held_out_return, dtype=np.float64)


def compute_run_metrics(
    steps: np.ndarray,
    train_curve: np.ndarray,
    held_out_curve: np.ndarray,
    final_train_returns: np.ndarray,
    final_held_out_returns: np.ndarray,
    score_range: tuple[float, float],
    reward_threshold: float | None,
) -> dict[str, Any]:
    """The four metrics and their companions for one run.

    Args:
        steps: ``(num_points,)`` evaluation steps, starting at 0.
        train_curve / held_out_curve: ``(num_points,)`` mean evaluation returns.
        final_train_returns: ``(episodes,)`` returns of the final policy, training split.
        final_held_out_returns: ``(contexts, episodes)`` returns of the final policy, held out.
    """
    low, high = score_range
    span = high - low
    reward = float(cumulative_reward(final_train_returns))
    held_out = float(np.mean(final_held_out_returns))
    stability = float(dispersion_across_time(train_curve))
    risk = float(short_term_risk(train_curve))
    gap = float(generalization_gap(reward, held_out))
    return {
        "cumulative_reward": reward,
        "cumulative_reward_normalized": float(normalize(reward, score_range)),
        "policy_stability": stability,
        "policy_stability_normalized": stability / span,
        "policy_stability_cvar": risk,
        "policy_stability_cvar_normalized": risk / span,
        "learning_speed": float(normalized_auc(steps, train_curve, score_range)),
        "steps_to_threshold": steps_to_threshold(steps, train_curve, reward_threshold),
        "generalization": held_out,
        "generalization_normalized": float(normalize(held_out, score_range)),
        "generalization_gap": gap,
        "generalization_gap_normalized": gap / span,
    }


#: The four headline metrics, in the order the paper reports them.
HEADLINE_METRICS = ("cumulative_reward", "policy_stability", "learning_speed", "generalization")
