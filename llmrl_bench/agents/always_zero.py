"""A test agent added from one file: it always takes action 0."""
from dataclasses import dataclass

import numpy as np

from llmrl_bench.registry import register


@register("agent", "always_zero")
@dataclass
class AlwaysZeroConfig:
    """An agent that needs no training."""

    _target_: str = "llmrl_bench.agents.always_zero.AlwaysZero"
    note: str = "zero"
    """A setting, to show the schema is checked."""


class AlwaysZero:
    name = "always_zero"
    supported_reprs = ("vector",)

    def __init__(self, config, observation_space, action_space, seed):
        self.config = config

    def act(self, observations, greedy=True):
        return np.zeros(len(observations), np.int64)

    def learn(self, envs, total_steps, hooks):
        env = envs.make()
        env.reset(seed=0)
        for step in range(1, total_steps + 1):
            _, _, terminated, truncated, _ = env.step(0)
            if terminated or truncated:
                env.reset()
            hooks.on_step(step)

    def save(self, path):
        path.write_bytes(b"")

    def load(self, path):
        pass
