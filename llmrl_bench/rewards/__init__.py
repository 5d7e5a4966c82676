"""The training envs' reward (``reward=``): the env's own (``direct``) or an indirect one (docs/rewards.md)."""

from llmrl_bench.rewards.base import DirectReward, IndirectRewardVecEnv, RewardAgreement, TrainingReward

__all__ = ["DirectReward", "IndirectRewardVecEnv", "RewardAgreement", "TrainingReward", "build_reward"]


def build_reward(reward_cfg, suite, seed: int) -> TrainingReward:
    """The reward of ``cfg.reward`` (``None``, e.g. a config stored before rewards existed: ``direct``)."""
    from hydra.utils import get_class

    from llmrl_bench import registry

    if reward_cfg is None:
        return DirectReward(None, suite, seed)
    config = registry.typed_config(reward_cfg)
    return get_class(config._target_)(config, suite, seed)
