"""PPO: clipped policy gradient with GAE over vectorised envs (CleanRL ``ppo.py`` / SB3 ``PPO``).

One file, one loop: collect ``n_steps`` batched steps into preallocated storage, compute
GAE with a visible reversed loop, then ``n_epochs`` of minibatch updates.

Vector envs autoreset in NEXT_STEP mode: the ``step()`` after a done only resets that env
and ignores its action. Such transitions are stored with ``valid=False``, left out of the
loss, and not counted as env steps. Their stored observation is the episode's final
observation, so ``values[t + 1]`` already bootstraps a truncated step ``t``.

Resumable: between rollouts the loop's state (vector env, last observations, episode
counters) lives in attributes, so each rollout start is a checkpoint point.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from llmrl_bench.registry import register
from llmrl_bench.agents.base import EnvFactory, TrainingHooks
from llmrl_bench.agents.ppo_math import explained_variance, gae, ppo_diagnostics, ppo_losses
from llmrl_bench.agents.networks import (
    RunningMeanStd,
    clip_grad_norm_,
    flat_obs_dim,
    flat_parameters,
    mlp,
    num_actions,
    obs_batch,
    sample_categorical,
    seeded_torch,
)


@register("agent", "ppo")
@dataclass
class PPOConfig:
    """PPO hyperparameters; defaults are RL Zoo's tuned CartPole-v1 values (SB3 names)."""

    _target_: str = "llmrl_bench.agents.ppo.PPO"
    n_envs: int = 8
    """Parallel envs in ``envs.make_vec``."""
    n_steps: int = 32
    """Batched steps per rollout; a rollout holds ``n_steps * n_envs`` transitions."""
    batch_size: int = 256
    """Minibatch size of the updates."""
    n_epochs: int = 20
    """Passes over each rollout."""
    learning_rate: float = 1e-3
    """Adam step size (at the start when annealed)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over the budget (RL Zoo's ``lin_``)."""
    clip_range: float = 0.2
    """PPO ratio clip (at the start when annealed)."""
    anneal_clip_range: bool = True
    """Decay the clip range linearly to 0 over the budget (RL Zoo's ``lin_``)."""
    gamma: float = 0.98
    """Discount factor."""
    gae_lambda: float = 0.8
    """GAE bias/variance trade-off."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    normalize_advantage: bool = True
    """Standardise advantages per minibatch."""
    normalize_obs: bool = False
    """Standardise observations with running statistics (RL Zoo's ``normalize``, obs part)."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return (RL Zoo's ``normalize``, reward part)."""
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden layer sizes of the separate actor and critic MLPs."""
    activation: str = "tanh"
    """Hidden activation: ``tanh`` or ``relu``."""


class PPO:
    """Clipped PPO with separate actor and critic MLPs over ``Box`` observations."""

    name = "ppo"
    supported_reprs = ("vector", "llm_embed")
    resumable = True

    def __init__(self, config: PPOConfig, observation_space: gym.Space, action_space: gym.Space, seed: int):
        self.config = config
        self.seed = seed
        self.obs_dim = flat_obs_dim(observation_space)
        self.n_actions = num_actions(action_space)
        cfg = self.config
        with seeded_torch(seed):
            self.actor = mlp(self.obs_dim, cfg.net_arch, self.n_actions, cfg.activation, True, out_gain=0.01)
            self.critic = mlp(self.obs_dim, cfg.net_arch, 1, cfg.activation, True, out_gain=1.0)
        self.params = flat_parameters(self.actor, self.critic)  # one tensor: cheap zeroing, clipping, Adam
        self.optimizer = torch.optim.Adam([self.params], lr=cfg.learning_rate, eps=1e-5, fused=True)
        self.rng = np.random.default_rng(seed)  # minibatch shuffling
        self.torch_rng = torch.Generator().manual_seed(seed)  # action sampling
        self.obs_rms = RunningMeanStd((self.obs_dim,))
        self.return_rms = RunningMeanStd(())
        self.global_step = 0
        self.loop: dict | None = None  # between rollouts: vec_env, raw_obs, autoreset, episode counters

    # ------------------------------------------------------------------ acting
    def _normalize(self, obs: np.ndarray) -> np.ndarray:
        if not self.config.normalize_obs:
            return obs
        normalized = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8)
        return np.clip(normalized, -10.0, 10.0).astype(np.float32)

    def _logits(self, observations: np.ndarray) -> torch.Tensor:
        obs = self._normalize(np.asarray(observations, np.float32).reshape(-1, self.obs_dim))
        return self.actor(obs_batch(obs, self.obs_dim))

    @torch.inference_mode()
    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        """``(batch, num_actions)`` softmax of the policy logits (what ``act(greedy=False)`` samples)."""
        return self._logits(observations).softmax(-1).double().numpy()

    @torch.inference_mode()
    def act(self, observations: np.ndarray, greedy: bool = True) -> np.ndarray:
        """Argmax of the policy logits (greedy, no RNG) or a sample with the agent's generator."""
        logits = self._logits(observations)
        if greedy:
            return logits.argmax(-1).numpy().astype(np.int64)
        return sample_categorical(logits.log_softmax(-1), self.torch_rng).numpy().astype(np.int64)

    # ---------------------------------------------------------------- training
    def learn(self, envs: EnvFactory, total_steps: int, hooks: TrainingHooks) -> None:
        """Train until ``global_step >= total_steps`` (the last rollout is finished and used; autoreset
        calls are not counted). After ``load_state_dict`` of a mid-training state, continues that training."""
        cfg = self.config
        num_steps, num_envs, obs_dim = cfg.n_steps, cfg.n_envs, self.obs_dim

        # Rollout storage, shapes (num_steps, num_envs[, obs_dim]).
        obs = np.zeros((num_steps, num_envs, obs_dim), np.float32)
        actions = np.zeros((num_steps, num_envs), np.int64)
        logprobs = np.zeros((num_steps, num_envs), np.float32)
        rewards = np.zeros((num_steps, num_envs), np.float32)
        terminateds = np.zeros((num_steps, num_envs), np.float32)
        dones = np.zeros((num_steps, num_envs), np.float32)
        values = np.zeros((num_steps, num_envs), np.float32)
        valid = np.zeros((num_steps, num_envs), bool)

        if self.loop is None:
            self.loop = self._start_loop(envs)
        vec_env = self.loop["vec_env"]
        start_time, start_step = time.perf_counter(), self.global_step

        while self.global_step < total_steps:
            hooks.checkpoint_point(self.global_step)
            # Rollout-local names; written back to self.loop when the rollout ends.
            raw_obs, autoreset = self.loop["raw_obs"], self.loop["autoreset"]
            episodic_return, episodic_length = self.loop["episodic_return"], self.loop["episodic_length"]
            discounted_return = self.loop["discounted_return"]
            progress = self.global_step / total_steps
            learning_rate = cfg.learning_rate * (1.0 - progress) if cfg.anneal_lr else cfg.learning_rate
            clip_range = cfg.clip_range * (1.0 - progress) if cfg.anneal_clip_range else cfg.clip_range
            self.optimizer.param_groups[0]["lr"] = learning_rate

            for step in range(num_steps):
                if cfg.normalize_obs:
                    self.obs_rms.update(raw_obs[~autoreset])
                obs[step] = self._normalize(raw_obs)
                valid[step] = ~autoreset
                with torch.inference_mode():
                    obs_tensor = torch.from_numpy(obs[step])
                    log_probs_all = self.actor(obs_tensor).log_softmax(-1)
                    action = sample_categorical(log_probs_all, self.torch_rng)
                    logprobs[step] = log_probs_all.gather(1, action[:, None]).numpy()[:, 0]
                    values[step] = self.critic(obs_tensor).numpy()[:, 0]
                    actions[step] = action.numpy()

                next_obs, reward, terminated, truncated, _ = vec_env.step(actions[step])
                raw_obs = np.asarray(next_obs, np.float32).reshape(num_envs, obs_dim)
                reward = np.asarray(reward, np.float64)
                done = np.logical_or(terminated, truncated)
                self.global_step += num_envs - int(autoreset.sum())

                episodic_return += reward
                episodic_length += ~autoreset
                if cfg.normalize_reward:
                    discounted_return = discounted_return * cfg.gamma + reward
                    self.return_rms.update(discounted_return[~autoreset])
                    discounted_return[done] = 0.0
                    reward = np.clip(reward / np.sqrt(self.return_rms.var + 1e-8), -10.0, 10.0)
                rewards[step] = reward
                terminateds[step] = terminated
                dones[step] = done
                for i in np.flatnonzero(done):
                    hooks.on_episode(self.global_step, float(episodic_return[i]), int(episodic_length[i]))
                    episodic_return[i], episodic_length[i] = 0.0, 0
                autoreset = done
                hooks.on_step(self.global_step)
            self.loop.update(
                raw_obs=raw_obs, autoreset=autoreset, episodic_return=episodic_return,
                episodic_length=episodic_length, discounted_return=discounted_return,
            )

            with torch.inference_mode():
                next_value = self.critic(torch.from_numpy(self._normalize(raw_obs))).squeeze(1).numpy()
            advantages, returns = gae(rewards, values, next_value, terminateds, dones, cfg.gamma, cfg.gae_lambda)

            # Flatten; minibatches are gathered in numpy (cheaper than torch indexing at this size).
            valid_index = np.flatnonzero(valid.reshape(-1))
            b_obs, b_actions = obs.reshape(-1, obs_dim), actions.reshape(-1)
            b_logprobs, b_advantages, b_returns = logprobs.reshape(-1), advantages.reshape(-1), returns.reshape(-1)

            for epoch in range(cfg.n_epochs):
                shuffled = self.rng.permutation(valid_index)
                for start in range(0, len(shuffled), cfg.batch_size):
                    mb = shuffled[start : start + cfg.batch_size]
                    mb_advantages = b_advantages[mb]
                    if cfg.normalize_advantage and len(mb) > 1:
                        mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std(ddof=1) + 1e-8)
                    mb_advantages = torch.from_numpy(mb_advantages)
                    mb_obs = torch.from_numpy(b_obs[mb])
                    log_probs_all = self.actor(mb_obs).log_softmax(-1)
                    new_logprob = log_probs_all.gather(1, torch.from_numpy(b_actions[mb])[:, None]).squeeze(1)
                    new_value = self.critic(mb_obs).squeeze(1)

                    losses = ppo_losses(new_logprob, torch.from_numpy(b_logprobs[mb]), mb_advantages,
                                        new_value, torch.from_numpy(b_returns[mb]), clip_range)
                    loss = losses.pg_loss + cfg.vf_coef * losses.v_loss
                    if cfg.ent_coef != 0.0:  # skipped at 0: the extra graph costs ~10% of an update
                        entropy_loss = (log_probs_all.exp() * log_probs_all).sum(-1).mean()
                        loss = loss + cfg.ent_coef * entropy_loss

                    self.params.grad.zero_()
                    loss.backward()
                    clip_grad_norm_(self.params, cfg.max_grad_norm)
                    self.optimizer.step()

            if cfg.n_epochs == 0:  # rollout collection only (tests/benchmarks/test_maze_rollout.py)
                continue
            logged = {
                "losses/policy_loss": losses.pg_loss.item(),
                "losses/value_loss": losses.v_loss.item(),
                "losses/entropy": -(log_probs_all.exp() * log_probs_all).sum(-1).mean().item(),
                **ppo_diagnostics(losses, clip_range),
                "charts/learning_rate": learning_rate,
                "charts/SPS": (self.global_step - start_step) / (time.perf_counter() - start_time),
                **explained_variance(values.reshape(-1)[valid_index], returns.reshape(-1)[valid_index]),
            }
            hooks.log(self.global_step, logged)
        vec_env.close()
        self.loop = None

    def _start_loop(self, envs: EnvFactory) -> dict:
        """The state the loop carries between rollouts (and checkpoints): vector env, last observations, counters."""
        num_envs = self.config.n_envs
        vec_env = envs.make_vec(num_envs)
        raw_obs, _ = vec_env.reset(seed=self.seed)
        return {
            "vec_env": vec_env,
            "raw_obs": np.asarray(raw_obs, np.float32).reshape(num_envs, self.obs_dim),
            "autoreset": np.zeros(num_envs, bool),  # this env's next step() only resets it
            "episodic_return": np.zeros(num_envs),
            "episodic_length": np.zeros(num_envs, np.int64),
            "discounted_return": np.zeros(num_envs),  # for reward normalisation
        }

    # ------------------------------------------------------------- persistence
    def _policy_state(self) -> dict:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "obs_rms": self.obs_rms.state_dict(),
        }

    def save(self, path: Path) -> None:
        """Actor, critic and observation statistics."""
        torch.save(self._policy_state(), path)

    def load(self, path: Path) -> None:
        state = torch.load(path, weights_only=True)
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.obs_rms.load_state_dict(state["obs_rms"])

    def state_dict(self) -> dict:
        """Everything needed to continue training: policy, optimizer, RNGs, counters.

        Between rollouts of ``learn`` it also holds the loop state, the vector env included
        (pickled, with its RNGs); pickle it with ``cloudpickle``.
        """
        return {
            **self._policy_state(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "torch_rng": self.torch_rng.get_state(),
            "return_rms": self.return_rms.state_dict(),
            "global_step": self.global_step,
            "loop": None if self.loop is None else {
                key: value.copy() if isinstance(value, np.ndarray) else value for key, value in self.loop.items()
            },
        }

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.torch_rng.set_state(state["torch_rng"])
        self.return_rms.load_state_dict(state["return_rms"])
        self.global_step = int(state["global_step"])
        self.loop = state.get("loop")
