"""REINFORCE: Monte-Carlo policy gradient with a learned value baseline (Williams, 1992).

One env, one loop: play ``episodes_per_batch`` whole episodes with the stochastic policy,
compute discounted returns-to-go with a visible reversed loop, then take one gradient step
on ``pg_loss`` (advantage = return - baseline) plus ``v_loss`` (baseline regression).
A time-limit truncation is not an end of the task: its return is bootstrapped from the
baseline's value of the final observation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from llmrl_bench.registry import register
from llmrl_bench.agents.base import EnvFactory, TrainingHooks
from llmrl_bench.agents.networks import (
    clip_grad_norm_,
    flat_obs_dim,
    flat_parameters,
    flush_denormals,
    mlp,
    num_actions,
    obs_batch,
    sample_categorical,
    seeded_torch,
)

LOG_EVERY_STEPS = 500  # batches can be a few dozen steps; keep logging cheap


@register("agent", "reinforce")
@dataclass
class ReinforceConfig:
    """REINFORCE hyperparameters; defaults tuned on CartPole-v1."""

    _target_: str = "llmrl_bench.agents.reinforce.Reinforce"
    learning_rate: float = 1e-3
    """Adam step size."""
    gamma: float = 0.99
    """Discount factor."""
    episodes_per_batch: int = 4
    """Whole episodes per gradient step."""
    normalize_advantage: bool = True
    """Standardise the advantages of each batch."""
    vf_coef: float = 0.5
    """Weight of the baseline's regression loss."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden layer sizes of the separate policy and baseline MLPs."""
    activation: str = "tanh"
    """Hidden activation: ``tanh`` or ``relu``."""


class Reinforce:
    """REINFORCE with a value baseline, MLP policy and baseline over ``Box`` observations."""

    name = "reinforce"
    supported_reprs = ("vector", "llm_embed")

    def __init__(self, config: ReinforceConfig, observation_space: gym.Space, action_space: gym.Space, seed: int):
        self.config = config
        cfg = self.config
        self.seed = seed
        self.obs_dim = flat_obs_dim(observation_space)
        self.n_actions = num_actions(action_space)
        with seeded_torch(seed):
            self.actor = mlp(self.obs_dim, cfg.net_arch, self.n_actions, cfg.activation, True, out_gain=0.01)
            self.critic = mlp(self.obs_dim, cfg.net_arch, 1, cfg.activation, True, out_gain=1.0)
        self.params = flat_parameters(self.actor, self.critic)  # one tensor: cheap zeroing, clipping, Adam
        self.optimizer = torch.optim.Adam([self.params], lr=cfg.learning_rate, eps=1e-5, fused=True)
        self.torch_rng = torch.Generator().manual_seed(seed)  # action sampling
        self.global_step = 0

    # ------------------------------------------------------------------ acting
    @torch.inference_mode()
    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        """``(batch, num_actions)`` softmax of the policy logits (what ``act(greedy=False)`` samples)."""
        return self.actor(obs_batch(observations, self.obs_dim)).softmax(-1).double().numpy()

    @torch.inference_mode()
    def act(self, observations: np.ndarray, greedy: bool = True) -> np.ndarray:
        """Argmax of the policy logits (greedy, no RNG) or a sample with the agent's generator."""
        logits = self.actor(obs_batch(observations, self.obs_dim))
        if greedy:
            return logits.argmax(-1).numpy().astype(np.int64)
        return sample_categorical(logits.log_softmax(-1), self.torch_rng).numpy().astype(np.int64)

    # ---------------------------------------------------------------- training
    def learn(self, envs: EnvFactory, total_steps: int, hooks: TrainingHooks) -> None:
        """Train until ``global_step == total_steps``; a batch cut short by the budget is still used."""
        cfg = self.config
        with flush_denormals():
            env = envs.make()
            obs, _ = env.reset(seed=self.seed)
            # Batch storage, shape (capacity[, obs_dim]); doubled when a batch outgrows it.
            capacity = 1024
            batch_obs = np.zeros((capacity, self.obs_dim), np.float32)
            batch_actions = np.zeros(capacity, np.int64)
            batch_rewards = np.zeros(capacity, np.float32)
            batch_episode_ends = np.zeros(capacity, bool)
            batch_bootstrap = np.zeros(capacity, np.float32)  # value of the final obs at truncations
            episodic_return, episodic_length = 0.0, 0
            start_time, start_step = time.perf_counter(), self.global_step
            last_log_step = self.global_step

            while self.global_step < total_steps:
                # ---- play episodes_per_batch episodes (or until the budget ends)
                t, episodes = 0, 0
                while episodes < cfg.episodes_per_batch and self.global_step < total_steps:
                    if t == capacity:
                        capacity *= 2
                        batch_obs, batch_actions, batch_rewards, batch_episode_ends, batch_bootstrap = (
                            np.concatenate([array, np.zeros_like(array)])
                            for array in (batch_obs, batch_actions, batch_rewards, batch_episode_ends, batch_bootstrap)
                        )
                    batch_obs[t] = np.asarray(obs, np.float32).reshape(self.obs_dim)
                    with torch.inference_mode():
                        logits = self.actor(torch.from_numpy(batch_obs[t : t + 1]))
                        action = int(sample_categorical(logits.log_softmax(-1), self.torch_rng))
                    obs, reward, terminated, truncated, _ = env.step(action)
                    batch_actions[t], batch_rewards[t] = action, reward
                    batch_episode_ends[t], batch_bootstrap[t] = False, 0.0
                    self.global_step += 1
                    episodic_return += float(reward)
                    episodic_length += 1
                    budget_spent = self.global_step >= total_steps
                    if terminated or truncated or budget_spent:
                        batch_episode_ends[t] = True
                        if not terminated:  # truncated by the time limit or the budget
                            with torch.inference_mode():
                                batch_bootstrap[t] = float(self.critic(obs_batch(obs, self.obs_dim)))
                        if terminated or truncated:
                            hooks.on_episode(self.global_step, episodic_return, episodic_length)
                            episodic_return, episodic_length = 0.0, 0
                            obs, _ = env.reset()
                            episodes += 1
                    t += 1
                    hooks.on_step(self.global_step)

                # ---- discounted returns-to-go: a reversed loop, reset at episode ends
                returns = np.zeros(t, np.float32)
                running_return = 0.0
                for i in reversed(range(t)):
                    if batch_episode_ends[i]:
                        running_return = batch_bootstrap[i]
                    running_return = batch_rewards[i] + cfg.gamma * running_return
                    returns[i] = running_return

                # ---- one gradient step on the whole batch
                b_obs = torch.from_numpy(batch_obs[:t])
                b_returns = torch.from_numpy(returns)
                log_probs_all = self.actor(b_obs).log_softmax(-1)
                logprob = log_probs_all.gather(1, torch.from_numpy(batch_actions[:t])[:, None]).squeeze(1)
                entropy = -(log_probs_all.exp() * log_probs_all).sum(-1).mean()
                value = self.critic(b_obs).squeeze(1)
                advantages = b_returns - value.detach()
                if cfg.normalize_advantage and t > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                pg_loss = -(logprob * advantages).mean()
                v_loss = F.mse_loss(value, b_returns)
                entropy_loss = -entropy
                loss = pg_loss + cfg.vf_coef * v_loss + cfg.ent_coef * entropy_loss

                self.params.grad.zero_()
                loss.backward()
                clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.optimizer.step()
                if self.global_step - last_log_step < LOG_EVERY_STEPS and self.global_step < total_steps:
                    continue
                last_log_step = self.global_step
                hooks.log(
                    self.global_step,
                    {
                        "losses/policy_loss": pg_loss.item(),
                        "losses/value_loss": v_loss.item(),
                        "losses/entropy": entropy.item(),
                        "charts/SPS": (self.global_step - start_step) / (time.perf_counter() - start_time),
                    },
                )
            env.close()

    # ------------------------------------------------------------- persistence
    def save(self, path: Path) -> None:
        """Policy and baseline weights."""
        torch.save({"actor": self.actor.state_dict(), "critic": self.critic.state_dict()}, path)

    def load(self, path: Path) -> None:
        state = torch.load(path, weights_only=True)
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])

    def state_dict(self) -> dict:
        """Everything needed to continue training: networks, optimizer, RNG, counters."""
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": self.torch_rng.get_state(),
            "global_step": self.global_step,
        }

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.torch_rng.set_state(state["torch_rng"])
        self.global_step = int(state["global_step"])
