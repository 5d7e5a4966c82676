"""``reward=constant``: the same learned reward on every step, a control that knows nothing of the task.

An indirect reward acts through its information (which steps it prefers) and through its mean. In
``mode=replace`` a negative mean is a step penalty: the only way to stop paying it is to end the
episode, and a maze episode ends early only at the goal. This control keeps the mean and drops the
information, so a run with it shows how much of an indirect reward's result its mean alone explains
(the bias of learned rewards at absorbing states: Kostrikov et al. 2019, *Discriminator-Actor-Critic*).
``conf/reward/constant.yaml`` sets ``value`` to the mean of the committed ``llm_judge`` maze runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from llmrl_bench.errors import ConfigError
from llmrl_bench.registry import register
from llmrl_bench.rewards.base import IndirectConfig, TrainingReward


@register("reward", "constant")
@dataclass
class ConstantConfig(IndirectConfig):
    """Every step's learned reward is ``value`` (``reward=constant``)."""

    _target_: str = "llmrl_bench.rewards.constant.ConstantReward"
    name: str = "constant"
    """Reward name in results."""
    value: float = 0.0
    """The learned reward of every step (before ``coef``)."""


class ConstantReward(TrainingReward):
    """``value`` for every transition; nothing to encode, nothing to train."""

    name = "constant"

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        super().check_config(cfg)
        value = cfg.reward.value
        if not math.isfinite(value):
            raise ConfigError(f"reward.value={value} must be a finite number")

    def encode(self, observations: Any, envs: gym.vector.VectorEnv) -> Any:
        return np.zeros(envs.num_envs)

    def rewards(self, before: Any, actions: np.ndarray, after: Any) -> np.ndarray:
        return np.full(len(actions), float(self.config.value))
