"""The envs of one run: a suite's raw envs with the run's representation applied.

Suites make raw envs and never see a representation; representations wrap what suites make.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym

from llmrl_bench.envs.base import TRAIN, EnvSuite
from llmrl_bench.evaluation import Evaluator
from llmrl_bench.representations.base import Representation


class RunEnvs:
    """The :class:`~llmrl_bench.agents.base.EnvFactory` of one run: training split, in the run's representation."""

    def __init__(self, suite: EnvSuite, representation: Representation, reward: Any = None,
                 reward_log: Callable[[int, dict], None] | None = None):
        self.suite = suite
        self.representation = representation
        indirect = reward is not None and not reward.is_direct
        # Plain data for the env's own reward: the training envs (and this object, which makes them) stay checkpointable.
        self.reward = reward if indirect else None
        """The indirect :class:`~llmrl_bench.rewards.TrainingReward` of the ``make_vec`` envs; None: the env's own."""
        self.reward_log = reward_log if indirect else None
        """Where the indirect reward logs its charts (the run's tracker)."""
        self.reward_envs: list[gym.vector.VectorEnv] = []
        probe = self.make()
        self.observation_space = probe.observation_space
        self.action_space = probe.action_space
        probe.close()

    def make(self, context: str = TRAIN) -> gym.Env:
        return self.representation.wrap(self.suite.make(context), self.suite)

    def make_vec(self, num_envs: int) -> gym.vector.VectorEnv:
        """``num_envs`` training envs stepped together (autoreset mode NEXT_STEP), with the run's training reward."""
        if self.reward is not None:
            return self._make_vec_indirect(num_envs)
        native = self.suite.make_native_vec(num_envs)
        if native is not None:
            return self.representation.wrap_vec(native, self.suite)
        return gym.vector.SyncVectorEnv(
            [self.make for _ in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
        )

    def _make_vec_indirect(self, num_envs: int) -> gym.vector.VectorEnv:
        """The raw training envs, their reward replaced by the indirect one, then the representation on top."""
        from llmrl_bench.rewards import IndirectRewardVecEnv  # rewards import representations, not the other way

        raw = self.suite.make_native_vec(num_envs)
        if raw is None:
            raw = gym.vector.SyncVectorEnv([lambda: self.suite.make(TRAIN) for _ in range(num_envs)],
                                           autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
        rewarded = IndirectRewardVecEnv(raw, self.reward, self.reward_log)
        self.reward_envs.append(rewarded)
        return self.representation.wrap_vec(rewarded, self.suite)

    def reward_provenance(self) -> dict[str, Any]:
        """The indirect reward's agreement and model facts (``reward_*``), from the last training envs made; {} for direct."""
        return self.reward_envs[-1].provenance() if self.reward_envs else {}

    def evaluator(self, context: str, episodes: int) -> Evaluator:
        """``episodes`` evaluation episodes of ``context`` in the run's representation."""
        return Evaluator(lambda: self.make(context), episodes, self.representation.is_text)
