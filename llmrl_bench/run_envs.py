"""The envs of one run: a suite's raw envs with the run's representation applied.

Suites make raw envs and never see a representation; representations wrap what suites make.
"""

from __future__ import annotations

import gymnasium as gym

from llmrl_bench.envs.base import TRAIN, EnvSuite
from llmrl_bench.evaluation import Evaluator
from llmrl_bench.representations.base import Representation


class RunEnvs:
    """The :class:`~llmrl_bench.agents.base.EnvFactory` of one run: training split, in the run's representation."""

    def __init__(self, suite: EnvSuite, representation: Representation):
        self.suite = suite
        self.representation = representation
        probe = self.make()
        self.observation_space = probe.observation_space
        self.action_space = probe.action_space
        probe.close()

    def make(self, context: str = TRAIN) -> gym.Env:
        return self.representation.wrap(self.suite.make(context), self.suite)

    def make_vec(self, num_envs: int) -> gym.vector.VectorEnv:
        """``num_envs`` training envs stepped together (autoreset mode NEXT_STEP)."""
        native = self.suite.make_native_vec(num_envs)
        if native is not None:
            return self.representation.wrap_vec(native, self.suite)
        return gym.vector.SyncVectorEnv(
            [self.make for _ in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
        )

    def evaluator(self, context: str, episodes: int) -> Evaluator:
        """``episodes`` evaluation episodes of ``context`` in the run's representation."""
        return Evaluator(lambda: self.make(context), episodes, self.representation.is_text)
