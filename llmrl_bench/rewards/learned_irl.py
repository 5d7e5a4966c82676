"""``reward=learned_irl``: inverse RL from the maze solver's shortest paths (GAIL, Ho & Ermon 2016; AIRL, Fu et al. 2018).

A discriminator ``D(s, a) = sigmoid(f(s, a))`` (an MLP over the ``vector`` features of the raw
MiniGrid observation and the action one-hot) is trained online to tell expert transitions
(label 1) from the agent's (label 0) with binary cross-entropy. The reward of a transition is

    r(s, a) = log D(s, a) - log(1 - D(s, a)) = f(s, a),   clipped to [-clip, clip],

AIRL's form: positive where the transition looks expert, negative where it looks like the agent,
so it favours neither long nor short episodes by its sign alone. Expert data: one shortest path
(``MazeSuite.expert_demonstrations``) on each training layout; held-out layouts are never seen.
Every ``update_every`` agent steps, ``updates`` Adam steps on minibatches of the newest agent
steps against expert steps. Seeded: network init, minibatch sampling (a torch generator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch.nn import functional as F

from llmrl_bench.agents.networks import mlp, seeded_torch
from llmrl_bench.envs.base import TRAIN
from llmrl_bench.errors import ConfigError
from llmrl_bench.registry import register
from llmrl_bench.representations.vector import MiniGridBatchVectorizer, MiniGridVector
from llmrl_bench.rewards.base import IndirectConfig, TrainingReward


@register("reward", "learned_irl")
@dataclass
class LearnedIRLConfig(IndirectConfig):
    """A discriminator of expert (shortest-path) against agent transitions as the reward (``reward=learned_irl``)."""

    _target_: str = "llmrl_bench.rewards.learned_irl.LearnedIRLReward"
    name: str = "learned_irl"
    """Reward name in results."""
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden layer sizes of the discriminator MLP."""
    learning_rate: float = 3e-4
    """Adam step size of the discriminator."""
    update_every: int = 1024
    """Agent env steps between two discriminator updates (the agent batch of an update)."""
    updates: int = 8
    """Adam steps per update."""
    batch_size: int = 128
    """Agent and expert transitions per Adam step (each)."""
    clip: float = 10.0
    """The reward ``log D - log(1 - D)`` is clipped to ``[-clip, clip]``."""


def expert_transitions(suite: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(features (n, obs_dim) float32, actions (n,) int64)`` of a shortest path on each training layout.

    The features are the ``vector`` representation of each observation the expert acted on.
    """
    env = MiniGridVector(suite.make(TRAIN))
    features, actions = [], []
    for layout_index, solution in suite.expert_demonstrations():
        observation, _ = env.reset(options={"layout_index": layout_index})
        for action in solution:
            features.append(observation)
            actions.append(action)
            observation, _, terminated, truncated, _ = env.step(action)
        if not terminated:
            raise RuntimeError(f"the shortest path of training layout {layout_index} did not reach the goal")
    env.close()
    return np.stack(features).astype(np.float32), np.array(actions, np.int64)


class Discriminator:
    """``f(s, a)``: logits of "expert" over vector features and the action one-hot, with its Adam optimizer."""

    def __init__(self, obs_dim: int, num_actions: int, config: LearnedIRLConfig, seed: int):
        self.num_actions = num_actions
        with seeded_torch(seed):
            self.network = mlp(obs_dim + num_actions, config.hidden, 1, "relu")
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.learning_rate)

    def logits(self, features: np.ndarray | torch.Tensor, actions: np.ndarray | torch.Tensor) -> torch.Tensor:
        features, actions = torch.as_tensor(features, dtype=torch.float32), torch.as_tensor(actions, dtype=torch.int64)
        inputs = torch.cat([features, F.one_hot(actions, self.num_actions).float()], dim=1)
        return self.network(inputs).squeeze(1)

    def loss(self, expert: tuple[torch.Tensor, torch.Tensor], agent: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Binary cross-entropy: expert transitions are labelled 1, the agent's 0."""
        expert_logits, agent_logits = self.logits(*expert), self.logits(*agent)
        return (F.binary_cross_entropy_with_logits(expert_logits, torch.ones_like(expert_logits))
                + F.binary_cross_entropy_with_logits(agent_logits, torch.zeros_like(agent_logits)))

    def train_step(self, expert: tuple[torch.Tensor, torch.Tensor], agent: tuple[torch.Tensor, torch.Tensor]) -> float:
        loss = self.loss(expert, agent)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.item())


class LearnedIRLReward(TrainingReward):
    """The discriminator's ``log D - log(1 - D)`` of each agent transition, trained online (see the module docstring)."""

    name = "learned_irl"

    def __init__(self, config: LearnedIRLConfig, suite: Any, seed: int):
        super().__init__(config, suite, seed)
        self.expert_features, self.expert_actions = (torch.from_numpy(x) for x in expert_transitions(suite))
        probe = suite.make(TRAIN)
        num_actions = int(probe.action_space.n)
        probe.close()
        self.discriminator = Discriminator(self.expert_features.shape[1], num_actions, config, seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.agent_features = np.zeros((config.update_every, self.expert_features.shape[1]), np.float32)
        self.agent_actions = np.zeros(config.update_every, np.int64)
        self.stored = 0
        self.num_updates = 0
        self.last_loss = math.nan

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        super().check_config(cfg)
        from hydra.utils import get_class

        if not hasattr(get_class(cfg.env._target_), "expert_demonstrations"):
            raise ConfigError(f"reward=learned_irl needs expert demonstrations: env=maze only; got env={cfg.env.name}")
        if str(cfg.env.num_train_layouts).lower() in ("inf", ".inf", "infinity"):
            raise ConfigError("reward=learned_irl needs fixed training layouts to demonstrate; got env.num_train_layouts=inf")
        reward = cfg.reward
        for key in ("update_every", "updates", "batch_size"):
            if reward[key] < 1:
                raise ConfigError(f"reward.{key}={reward[key]} must be a positive integer")
        if not (reward.learning_rate > 0 and reward.clip > 0) or math.isinf(reward.learning_rate) or math.isinf(reward.clip):
            raise ConfigError(f"reward.learning_rate={reward.learning_rate} and reward.clip={reward.clip} must be positive and finite")

    def encode(self, observations: Any, envs: gym.vector.VectorEnv) -> np.ndarray:
        return MiniGridBatchVectorizer(envs)(observations)

    @torch.no_grad()
    def rewards(self, before: np.ndarray, actions: np.ndarray, after: np.ndarray) -> np.ndarray:
        clip = self.config.clip
        return self.discriminator.logits(before, actions).clamp(-clip, clip).numpy().astype(np.float64)

    def observe(self, before: np.ndarray, actions: np.ndarray, after: np.ndarray) -> dict[str, float]:
        """Store the agent's transitions; every ``update_every`` of them, train the discriminator."""
        logged: dict[str, float] = {}
        for row in range(len(actions)):
            self.agent_features[self.stored], self.agent_actions[self.stored] = before[row], actions[row]
            self.stored += 1
            if self.stored == self.config.update_every:
                logged = self.update(torch.from_numpy(self.agent_features), torch.from_numpy(self.agent_actions))
                self.stored = 0
        return logged

    def update(self, agent_features: torch.Tensor, agent_actions: torch.Tensor) -> dict[str, float]:
        """``updates`` Adam steps on minibatches of these agent transitions against expert ones."""
        size = self.config.batch_size
        for _ in range(self.config.updates):
            agent = torch.randint(len(agent_actions), (size,), generator=self.generator)
            expert = torch.randint(len(self.expert_actions), (size,), generator=self.generator)
            self.last_loss = self.discriminator.train_step((self.expert_features[expert], self.expert_actions[expert]),
                                                           (agent_features[agent], agent_actions[agent]))
        self.num_updates += 1
        return {"losses/discriminator_loss": self.last_loss}

    def provenance(self) -> dict[str, Any]:
        return {"reward_expert_transitions": len(self.expert_actions), "reward_updates": self.num_updates,
                "reward_discriminator_loss": self.last_loss if self.num_updates else None}
