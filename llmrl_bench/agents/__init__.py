"""Classic RL agents, one readable file each, and their config schemas.

Each schema carries its agent's ``_target_`` and registers itself (``llmrl_bench.registry``);
``conf/agent/<name>.yaml`` names its schema (``<name>_schema``)
first in its defaults list.
"""

from llmrl_bench.agents.dqn import DQN, DQNConfig
from llmrl_bench.agents.ppo import PPO, PPOConfig
from llmrl_bench.agents.q_learning import QLearning, QLearningConfig
from llmrl_bench.agents.reinforce import Reinforce, ReinforceConfig


__all__ = [
    "DQN",
    "DQNConfig",
    "PPO",
    "PPOConfig",
    "QLearning",
    "QLearningConfig",
    "Reinforce",
    "ReinforceConfig",
]
