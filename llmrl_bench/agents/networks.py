"""Small pieces shared by the neural agents: MLP builder, seeded construction, observation batching."""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import utils as gymnasium_utils
import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def flat_obs_dim(observation_space: gym.Space) -> int:
    """Size of one flattened observation; agents here take ``Box`` observations (``vector``, ``llm_embed``)."""
    if not isinstance(observation_space, gym.spaces.Box):
        raise TypeError(f"expected a Box observation space, got {observation_space}")
    return int(np.prod(observation_space.shape))


def num_actions(action_space: gym.Space) -> int:
    """Number of actions of a ``Discrete`` action space starting at 0."""
    if not isinstance(action_space, gym.spaces.Discrete) or int(action_space.start) != 0:
        raise TypeError(f"expected Discrete(n) starting at 0, got {action_space}")
    return int(action_space.n)


def obs_batch(observations: np.ndarray, obs_dim: int) -> torch.Tensor:
    """A float32 ``(batch, obs_dim)`` tensor sharing memory with ``observations`` when it can."""
    array = np.asarray(observations, dtype=np.float32).reshape(-1, obs_dim)
    return torch.from_numpy(array)


def sample_categorical(log_probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One action per row of ``(batch, n)`` log-probabilities, by inverse-CDF sampling.

    Same distribution as ``torch.multinomial``, which costs ~70us per call on small batches.
    """
    uniform = torch.rand(log_probs.shape[0], 1, generator=generator)
    below = (log_probs.exp().cumsum(-1) < uniform).sum(-1)
    return below.clamp_(max=log_probs.shape[-1] - 1)  # guards float round-off in the last bin


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: str = "tanh",
    orthogonal_init: bool = False,
    out_gain: float = 1.0,
) -> nn.Sequential:
    """``in_dim -> hidden... -> out_dim`` with ``activation`` between layers.

    ``orthogonal_init`` follows SB3/CleanRL PPO: gain sqrt(2) on hidden layers,
    ``out_gain`` on the last one, zero biases. Otherwise PyTorch's default init.
    """
    sizes = [in_dim, *hidden, out_dim]
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(fan_in, fan_out)
        if orthogonal_init:
            is_last = i == len(sizes) - 2
            nn.init.orthogonal_(linear.weight, gain=out_gain if is_last else math.sqrt(2))
            nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class DuelingQNetwork(nn.Module):
    """Dueling Q-network (Wang et al. 2016): a shared MLP trunk, then a value and an advantage head.

    ``Q(s, a) = V(s) + A(s, a) - mean_a A(s, a)``: the mean-subtracted form of the paper's eq. 9,
    so the value head learns what all actions share and the advantages only their differences.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "relu"):
        super().__init__()
        if not hidden:
            raise ValueError("a dueling network needs at least one hidden layer")
        self.trunk = nn.Sequential(mlp(in_dim, hidden[:-1], hidden[-1], activation), ACTIVATIONS[activation]())
        self.value = nn.Linear(hidden[-1], 1)
        self.advantage = nn.Linear(hidden[-1], out_dim)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        features = self.trunk(observations)
        advantages = self.advantage(features)
        return self.value(features) + advantages - advantages.mean(-1, keepdim=True)


def flat_parameters(*modules: nn.Module) -> nn.Parameter:
    """One parameter tensor whose slices are the modules' parameters, and whose ``.grad`` holds theirs.

    For small MLPs the per-tensor overhead of zeroing, clipping and Adam dominates an update;
    on one flat tensor each is a single op. Zero ``flat.grad`` in place (never set it to None:
    the modules' gradients are views into it) and give the optimizer only ``flat``.
    """
    params = [p for module in modules for p in module.parameters()]
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        size = p.numel()
        p.data = flat.data[offset : offset + size].view_as(p)
        p.grad = flat.grad[offset : offset + size].view_as(p)
        offset += size
    return flat


def clip_grad_norm_(flat: torch.Tensor, max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` for one flat parameter, without its per-call overhead."""
    grad_norm = flat.grad.norm()
    flat.grad.mul_((max_norm / (grad_norm + 1e-6)).clamp(max=1.0))
    return grad_norm


@contextlib.contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Seed torch's global RNG inside the block (network init) and restore it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat denormal floats as zero inside the block, then restore torch's default (off).

    Adam's moment estimates of dead ReLU units decay into the denormal range, where x86
    float arithmetic is an order of magnitude slower (DQN ran ~1.5x slower without this).
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def linear_schedule(start: float, end: float, fraction: float, progress: float) -> float:
    """``start`` moving linearly to ``end`` over the first ``fraction`` of training (``progress`` in [0, 1])."""
    if fraction <= 0:
        return end
    return start + (end - start) * min(progress / fraction, 1.0)


class RunningMeanStd(gymnasium_utils.RunningMeanStd):
    """Gymnasium's running mean and variance (Chan et al.'s parallel update, float64), which also skips
    empty batches and saves its state as tensors (for checkpoints)."""

    def __init__(self, shape: tuple[int, ...], epsilon: float = 1e-4):
        super().__init__(epsilon=epsilon, shape=shape)

    def update(self, batch: np.ndarray) -> None:
        """Update with a ``(batch, *shape)`` array; an empty batch changes nothing."""
        if len(batch) == 0:  # every env of a vector env resetting at once (e.g. simultaneous timeouts)
            return
        super().update(batch)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "mean": torch.from_numpy(np.array(self.mean, np.float64)),  # 0-d for a scalar (rewards)
            "var": torch.from_numpy(np.array(self.var, np.float64)),
            "count": torch.tensor(self.count, dtype=torch.float64),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.mean = np.array(state["mean"].numpy(), np.float64)
        self.var = np.array(state["var"].numpy(), np.float64)
        self.count = float(state["count"])
