"""Classic RL agents, one readable file each, and their config schemas.

Each schema carries its agent's ``_target_``; ``llmrl_bench.config.register_configs`` stores
them in Hydra's ConfigStore (group ``agent``), and ``conf/agent/<name>.yaml`` names its schema
first in its defaults list.
"""

from llmrl_bench.agents.dqn import DQN, DQNConfig
from llmrl_bench.agents.ppo import PPO, PPOConfig
from llmrl_bench.agents.q_learning import QLearning, QLearningConfig
from llmrl_bench.agents.reinforce import Reinforce, ReinforceConfig

AGENT_SCHEMAS = {
    "q_learning_schema": QLearningConfig,
    "dqn_schema": DQNConfig,
    "reinforce_schema": ReinforceConfig,
    "ppo_schema": PPOConfig,
}

__all__ = [
    "AGENT_SCHEMAS",
    "DQN",
    "DQNConfig",
    "PPO",
    "PPOConfig",
    "QLearning",
    "QLearningConfig",
    "Reinforce",
    "ReinforceConfig",
]
