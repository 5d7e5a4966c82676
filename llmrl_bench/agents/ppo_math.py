"""The math PPO and ``llm_pg`` share, as pure functions, so both training loops stay visible and the math exists once."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F


def gae(rewards: np.ndarray, values: np.ndarray, next_value: np.ndarray, terminateds: np.ndarray, dones: np.ndarray,
        gamma: float, gae_lambda: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimates and returns (Schulman et al. 2016), arrays ``(num_steps, num_envs)``.

    ``next_value`` ``(num_envs,)`` bootstraps the last step; ``dones`` cut the recursion, ``terminateds``
    cut the bootstrap (a truncated step still bootstraps from ``values[t + 1]``).
    """
    num_steps, num_envs = rewards.shape
    advantages = np.zeros((num_steps, num_envs), np.float32)
    last_gae_lambda = np.zeros(num_envs, np.float32)
    for t in reversed(range(num_steps)):
        next_values = next_value if t == num_steps - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_values * (1.0 - terminateds[t]) - values[t]
        last_gae_lambda = delta + gamma * gae_lambda * (1.0 - dones[t]) * last_gae_lambda
        advantages[t] = last_gae_lambda
    return advantages, advantages + values


class PPOLosses(NamedTuple):
    pg_loss: torch.Tensor
    """The clipped surrogate objective, negated (to minimise)."""
    v_loss: torch.Tensor
    """Mean squared error of the value against the returns."""
    log_ratio: torch.Tensor
    ratio: torch.Tensor


def ppo_losses(new_logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor,
               new_value: torch.Tensor, returns: torch.Tensor, clip_range: float) -> PPOLosses:
    """PPO's clipped policy loss and value loss on one minibatch (Schulman et al. 2017, eq. 7), all ``(batch,)``."""
    log_ratio = new_logprob - old_logprob
    ratio = log_ratio.exp()
    pg_loss = -torch.min(advantages * ratio, advantages * ratio.clamp(1 - clip_range, 1 + clip_range)).mean()
    v_loss = F.mse_loss(new_value, returns)
    return PPOLosses(pg_loss, v_loss, log_ratio, ratio)


@torch.no_grad()
def ppo_diagnostics(losses: PPOLosses, clip_range: float) -> dict[str, float]:
    """Approximate KL (Schulman's k3 estimator) and the clipped fraction of the last minibatch."""
    return {
        "losses/approx_kl": ((losses.ratio - 1) - losses.log_ratio).mean().item(),
        "losses/clip_fraction": ((losses.ratio - 1).abs() > clip_range).float().mean().item(),
    }


def explained_variance(values: np.ndarray, returns: np.ndarray) -> dict[str, float]:
    """``{"losses/explained_variance": 1 - Var[returns - values] / Var[returns]}``; empty when the returns are constant."""
    return_var = float(np.var(returns))
    if return_var <= 0:  # undefined, e.g. a rollout without reward
        return {}
    return {"losses/explained_variance": 1 - float(np.var(returns - values)) / return_var}
