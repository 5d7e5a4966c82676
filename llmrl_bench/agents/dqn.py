"""DQN: Q-learning with a replay buffer and a target network (CleanRL ``dqn.py`` / SB3 ``DQN``).

One env, one loop: act epsilon-greedily, store the transition in a preallocated numpy
replay buffer, copy the target network every ``target_update_interval`` env steps and,
every ``train_freq`` env steps, take ``gradient_steps`` TD steps (SB3's semantics).
Options, all off by default: Double DQN targets (``double_q``), n-step returns (``n_step``,
computed when sampling from the one-step buffer), a dueling Q-network (``dueling``), an
episodic novelty bonus for exploration (``novelty_bonus``), advantage-learning targets
(``advantage_learning``) and a fixed observation scaling (``scale_obs``).

Resumable: the loop keeps its state (env, current observation, episode counters) in
attributes, so every env step is a checkpoint point and ``state_dict`` captures it all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from llmrl_bench.registry import register
from llmrl_bench.agents.base import EnvFactory, TrainingHooks, epsilon_greedy_probabilities
from llmrl_bench.agents.networks import (
    DuelingQNetwork,
    clip_grad_norm_,
    flat_obs_dim,
    flat_parameters,
    flush_denormals,
    linear_schedule,
    mlp,
    num_actions,
    obs_batch,
    seeded_torch,
)


@register("agent", "dqn")
@dataclass
class DQNConfig:
    """DQN hyperparameters; defaults are RL Zoo's tuned CartPole-v1 values (SB3 names)."""

    IDENTITY_NEUTRAL: ClassVar[dict] = {"n_step": 1, "dueling": False, "novelty_bonus": 0.0, "novelty_anneal": False,
                                        "scale_obs": False, "advantage_learning": 0.0}
    """Options added after results were recorded: at these values they stay out of the run_id."""

    _target_: str = "llmrl_bench.agents.dqn.DQN"
    learning_rate: float = 2.3e-3
    """Adam step size (at the start when annealed)."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over the budget (RL Zoo's ``lin_``)."""
    buffer_size: int = 100_000
    """Replay buffer capacity (transitions)."""
    learning_starts: int = 1000
    """Env steps of uniformly random actions before the first update."""
    batch_size: int = 64
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 1.0
    """Target update coefficient (1 = hard copy)."""
    target_update_interval: int = 10
    """Env steps between target-network updates."""
    train_freq: int = 256
    """Env steps between training phases."""
    gradient_steps: int = 128
    """Gradient steps per training phase."""
    exploration_fraction: float = 0.16
    """Fraction of the budget over which epsilon decays linearly."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start."""
    exploration_final_eps: float = 0.04
    """Epsilon after the decay."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip."""
    double_q: bool = False
    """Double DQN (van Hasselt et al. 2016): the online network picks the next action, the target network values it."""
    n_step: int = 1
    """n-step returns (Sutton 1988; Hessel et al. 2018): sum n rewards before bootstrapping (1: one-step DQN)."""
    dueling: bool = False
    """Dueling Q-network (Wang et al. 2016): shared trunk, value and advantage heads."""
    novelty_bonus: float = 0.0
    """Training-only reward for a first visit of an observation in the episode (Strehl & Littman 2008; RIDE; NGU); 0: off."""
    novelty_anneal: bool = False
    """Decay the bonus to 0 with epsilon, replayed transitions included (NGU's exploitative member, Badia et al. 2020)."""
    advantage_learning: float = 0.0
    """Advantage learning alpha: targets lose alpha * (max Q_target(s) - Q_target(s, a)) (Bellemare et al. 2016); 0: off."""
    scale_obs: bool = False
    """Divide each observation feature by the observation space's ``high`` (a fixed scaling to [0, 1]; unbounded features unscaled)."""
    loss: str = "huber"
    """TD loss: ``huber`` (smooth L1, SB3) or ``mse``."""
    net_arch: list[int] = field(default_factory=lambda: [256, 256])
    """Hidden layer sizes of the Q-network."""
    activation: str = "relu"
    """Hidden activation: ``relu`` or ``tanh``."""


def n_step_returns(
    rewards: np.ndarray, dones: np.ndarray, terminated: np.ndarray, stored_ahead: np.ndarray, gamma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Discounted n-step returns of windows of consecutive transitions, for TD targets ``returns + discounts * max Q``.

    ``rewards``, ``dones`` (terminated or truncated) and ``terminated`` are ``(..., n)``: the
    sampled transition and the ``n - 1`` stored after it; ``stored_ahead`` ``(...)`` counts how
    many of those (itself included, >= 1) are stored. A window is summed up to its first episode
    end or its last stored transition. Returns ``returns`` and ``discounts`` (float32) and
    ``steps`` (int, the transitions summed), each ``(...)``; ``discounts`` is
    ``gamma ** steps``, or 0 when the last summed transition terminated.
    """
    offsets = np.arange(rewards.shape[-1])
    ended_before = np.cumsum(dones, -1) - dones  # episode ends strictly before each offset
    summed = (ended_before == 0) & (offsets < stored_ahead[..., None])
    steps = summed.sum(-1)
    returns = (rewards * gamma**offsets * summed).sum(-1)
    last_terminated = np.take_along_axis(terminated, steps[..., None] - 1, -1)[..., 0]
    discounts = gamma**steps * (1.0 - last_terminated)
    return returns.astype(np.float32), steps, discounts.astype(np.float32)


class DQN:
    """DQN with an MLP Q-network over ``Box`` observations and a uniform replay buffer."""

    name = "dqn"
    supported_reprs = ("vector", "llm_embed")
    resumable = True

    def __init__(self, config: DQNConfig, observation_space: gym.Space, action_space: gym.Space, seed: int):
        self.config = config
        if self.config.loss not in ("huber", "mse"):
            raise ValueError(f"loss must be 'huber' or 'mse', got {self.config.loss!r}")
        if self.config.n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {self.config.n_step}")
        cfg = self.config
        self.seed = seed
        self.obs_dim = flat_obs_dim(observation_space)
        self.obs_scale = self._obs_scale(observation_space) if cfg.scale_obs else None
        self.n_actions = num_actions(action_space)
        network = DuelingQNetwork if cfg.dueling else mlp
        with seeded_torch(seed):
            self.q_network = network(self.obs_dim, cfg.net_arch, self.n_actions, cfg.activation)
            self.target_network = network(self.obs_dim, cfg.net_arch, self.n_actions, cfg.activation)
        self.params = flat_parameters(self.q_network)  # one tensor: cheap zeroing, clipping, Adam, target copy
        self.target_params = flat_parameters(self.target_network).requires_grad_(False)
        self.target_params.data.copy_(self.params.data)
        self.optimizer = torch.optim.Adam([self.params], lr=cfg.learning_rate, fused=True)
        self.rng = np.random.default_rng(seed)  # exploration and replay sampling

        # Replay buffer, shapes (buffer_size[, obs_dim]); truncation is not termination. A transition's next
        # observation is the following transition's observation, except where it is kept apart (``kept_next_obs``).
        self.buffer_obs = np.zeros((cfg.buffer_size, self.obs_dim), np.float32)
        self.buffer_actions = np.zeros(cfg.buffer_size, np.int64)
        self.buffer_rewards = np.zeros(cfg.buffer_size, np.float32)  # the env's reward
        self.buffer_novel = np.zeros(cfg.buffer_size, np.float32)  # 1 on a first visit in the episode (novelty_bonus)
        self.buffer_terminated = np.zeros(cfg.buffer_size, np.float32)
        self.buffer_dones = np.zeros(cfg.buffer_size, bool)  # terminated or truncated: n-step sums stop there
        self.buffer_kept = np.zeros(cfg.buffer_size, bool)  # the next observation is kept apart, in kept_next_obs
        self.kept_next_obs: dict[int, np.ndarray] = {}  # position -> next observation, where an episode or a learn call ended
        self.buffer_pos = 0
        self.buffer_full = False
        self.global_step = 0
        # Loop state between env steps; ``None`` outside ``learn``.
        self.env: gym.Env | None = None
        self.obs: np.ndarray | None = None
        self.episodic_return, self.episodic_length = 0.0, 0
        self.seen: set[bytes] = set()  # observations of the current episode, for ``novelty_bonus``

    @staticmethod
    def _obs_scale(observation_space: gym.spaces.Box) -> np.ndarray:
        """``1 / high`` per feature where ``high`` is finite and positive, else 1 (unbounded features, e.g.
        ``repr=llm_embed``'s, stay as they are); a finite negative ``high`` is an error."""
        high = np.asarray(observation_space.high, np.float64).reshape(-1)
        bounded = np.isfinite(high)
        if np.any(bounded & (high < 0)):
            raise ValueError("scale_obs needs non-negative high bounds where they are finite")
        return (1.0 / np.where(bounded & (high > 0), high, 1.0)).astype(np.float32)

    def _features(self, observation: np.ndarray) -> np.ndarray:
        """One observation as the network's float32 ``(obs_dim,)`` input (scaled when ``scale_obs``)."""
        features = np.asarray(observation, np.float32).reshape(self.obs_dim)
        return features if self.obs_scale is None else features * self.obs_scale

    def _is_novel(self, next_features: np.ndarray) -> bool:
        """Whether ``next_features`` is new in the current episode (then it is remembered)."""
        key = next_features.tobytes()
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def _bonus(self, progress: float) -> float:
        """The novelty bonus at ``progress`` (share of the budget done) for every replayed first visit."""
        cfg = self.config
        if not cfg.novelty_anneal:
            return cfg.novelty_bonus
        return linear_schedule(cfg.novelty_bonus, 0.0, cfg.exploration_fraction, progress)

    # ------------------------------------------------------------------ acting
    @torch.inference_mode()
    def _greedy_actions(self, observations: np.ndarray) -> np.ndarray:
        batch = np.asarray(observations, np.float32).reshape(-1, self.obs_dim)
        q_values = self.q_network(obs_batch(batch if self.obs_scale is None else batch * self.obs_scale, self.obs_dim))
        return q_values.argmax(-1).numpy().astype(np.int64)

    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        """``(batch, num_actions)``: the epsilon-greedy policy at the final epsilon (what ``act(greedy=False)`` draws)."""
        return epsilon_greedy_probabilities(self._greedy_actions(observations), self.n_actions, self.config.exploration_final_eps)

    def act(self, observations: np.ndarray, greedy: bool = True) -> np.ndarray:
        """Argmax of the Q-values (greedy, no RNG), or epsilon-greedy at the final epsilon."""
        actions = self._greedy_actions(observations)
        if not greedy:
            explore = self.rng.random(len(actions)) < self.config.exploration_final_eps
            actions[explore] = self.rng.integers(self.n_actions, size=int(explore.sum()))
        return actions

    # ---------------------------------------------------------------- training
    def learn(self, envs: EnvFactory, total_steps: int, hooks: TrainingHooks) -> None:
        """Train until ``global_step == total_steps`` (one env, so it stops exactly there).

        After ``load_state_dict`` of a mid-training state, continues that training.
        """
        cfg = self.config
        with flush_denormals():
            if self.env is None:
                self.env = envs.make()
                obs, _ = self.env.reset(seed=self.seed)
                self.obs = self._features(obs).copy()
                self.episodic_return, self.episodic_length = 0.0, 0
                self.seen = {self.obs.tobytes()}
            env, obs = self.env, self.obs
            obs_row = torch.from_numpy(obs).view(1, -1)  # acting reads obs through this view, no allocation
            start_time, start_step = time.perf_counter(), self.global_step

            while self.global_step < total_steps:
                epsilon = linear_schedule(cfg.exploration_initial_eps, cfg.exploration_final_eps,
                                          cfg.exploration_fraction, self.global_step / total_steps)
                if self.global_step < cfg.learning_starts or self.rng.random() < epsilon:
                    action = int(self.rng.integers(self.n_actions))
                else:
                    with torch.inference_mode():
                        action = int(self.q_network(obs_row).argmax())

                next_obs, reward, terminated, truncated, _ = env.step(action)
                next_features = self._features(next_obs)
                pos = self.buffer_pos
                self.buffer_obs[pos] = obs
                if self.buffer_kept[pos]:
                    self.buffer_kept[pos] = False
                    del self.kept_next_obs[pos]
                self.buffer_actions[pos] = action
                self.buffer_rewards[pos] = reward
                self.buffer_novel[pos] = cfg.novelty_bonus > 0 and self._is_novel(next_features)
                self.buffer_terminated[pos] = terminated
                self.buffer_dones[pos] = terminated or truncated
                self.buffer_pos = (pos + 1) % cfg.buffer_size
                self.buffer_full = self.buffer_full or self.buffer_pos == 0
                self.global_step += 1

                self.episodic_return += float(reward)
                self.episodic_length += 1
                if terminated or truncated:
                    self._keep_next_obs(pos, next_features)
                    hooks.on_episode(self.global_step, self.episodic_return, self.episodic_length)
                    self.episodic_return, self.episodic_length = 0.0, 0
                    next_features = self._features(env.reset()[0])
                    self.seen = {next_features.tobytes()}
                obs[:] = next_features

                if self.global_step % cfg.target_update_interval == 0:
                    if cfg.tau == 1.0:
                        self.target_params.data.copy_(self.params.data)
                    else:
                        self.target_params.data.lerp_(self.params.data, cfg.tau)

                if self.global_step > cfg.learning_starts and self.global_step % cfg.train_freq == 0:
                    if cfg.anneal_lr:
                        progress = self.global_step / total_steps
                        self.optimizer.param_groups[0]["lr"] = cfg.learning_rate * (1.0 - progress)
                    td_loss, q_mean = self._train_phase(self._bonus(self.global_step / total_steps))
                    hooks.log(
                        self.global_step,
                        {
                            "losses/td_loss": td_loss.item(),
                            "losses/q_values": q_mean.item(),
                            "charts/epsilon": epsilon,
                            "charts/SPS": (self.global_step - start_step) / (time.perf_counter() - start_time),
                        },
                    )
                hooks.on_step(self.global_step)
                hooks.checkpoint_point(self.global_step)
            newest = (self.buffer_pos - 1) % cfg.buffer_size
            if self.global_step > 0 and not self.buffer_kept[newest]:  # a later learn call starts a new episode
                self._keep_next_obs(newest, obs)
            env.close()
            self.env, self.obs = None, None

    def _train_phase(self, bonus: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """``gradient_steps`` TD steps on uniform replay samples, first visits rewarded ``bonus`` more;
        returns the last loss and mean Q."""
        cfg = self.config
        buffer_count = cfg.buffer_size if self.buffer_full else self.buffer_pos
        index = self.rng.integers(0, buffer_count, size=(cfg.gradient_steps, cfg.batch_size))
        # Each sample's next n_step transitions, cut at the buffer's write head (newer ones are not stored yet).
        window = (index[..., None] + np.arange(cfg.n_step)) % cfg.buffer_size
        stored_ahead = (self.buffer_pos - index - 1) % cfg.buffer_size + 1
        rewards = self.buffer_rewards[window] + bonus * self.buffer_novel[window] if bonus else self.buffer_rewards[window]
        returns, steps, discounts = n_step_returns(
            rewards, self.buffer_dones[window], self.buffer_terminated[window], stored_ahead, cfg.gamma
        )
        last = np.take_along_axis(window, steps[..., None] - 1, -1)[..., 0]
        obs = torch.from_numpy(self.buffer_obs[index])
        actions = torch.from_numpy(self.buffer_actions[index])
        next_obs = torch.from_numpy(self._next_observations(last))
        returns, discounts = torch.from_numpy(returns), torch.from_numpy(discounts)
        # The target network only changes between env steps, so one batched forward gives
        # its values for every gradient step of this phase (with advantage learning, of obs too).
        with torch.no_grad():
            if cfg.advantage_learning:
                next_q_target, q_target = self.target_network(torch.cat([next_obs, obs], -2)).chunk(2, -2)
            else:
                next_q_target = self.target_network(next_obs)
            td_targets = returns + discounts * next_q_target.max(-1).values
            if cfg.advantage_learning:
                gaps = q_target.max(-1).values - q_target.gather(-1, actions[..., None]).squeeze(-1)
                returns = returns - cfg.advantage_learning * gaps  # Double DQN's targets below start from these
                td_targets -= cfg.advantage_learning * gaps

        loss_fn = F.smooth_l1_loss if cfg.loss == "huber" else F.mse_loss
        for step in range(cfg.gradient_steps):
            if cfg.double_q:  # the online network changes every step, so pick the next action now
                with torch.no_grad():
                    next_action = self.q_network(next_obs[step]).argmax(-1, keepdim=True)
                    next_q = next_q_target[step].gather(1, next_action).squeeze(1)
                    td_targets[step] = returns[step] + discounts[step] * next_q
            q_taken = self.q_network(obs[step]).gather(1, actions[step][:, None]).squeeze(1)
            td_loss = loss_fn(q_taken, td_targets[step])
            self.params.grad.zero_()
            td_loss.backward()
            clip_grad_norm_(self.params, cfg.max_grad_norm)
            self.optimizer.step()
        return td_loss.detach(), q_taken.detach().mean()

    def _keep_next_obs(self, position: int, next_obs: np.ndarray) -> None:
        self.buffer_kept[position] = True
        self.kept_next_obs[position] = np.array(next_obs, np.float32)

    def _next_observations(self, positions: np.ndarray) -> np.ndarray:
        """The next observations of the transitions stored at ``positions`` (any shape): the following
        transition's observation; the current one after the newest transition (its follower is not stored
        yet); the kept one where an episode or a ``learn`` call ended."""
        following = (positions + 1) % self.config.buffer_size
        next_obs = self.buffer_obs[following]
        kept = self.buffer_kept[positions]
        newest = (following == self.buffer_pos) & ~kept
        if newest.any():
            if self.obs is None:
                raise RuntimeError("the newest transition's next observation is known only inside learn")
            next_obs[newest] = self.obs
        for where in zip(*np.nonzero(kept)):
            next_obs[where] = self.kept_next_obs[int(positions[where])]
        return next_obs

    # ------------------------------------------------------------- persistence
    def save(self, path: Path) -> None:
        """The Q-network's weights."""
        torch.save({"q_network": self.q_network.state_dict()}, path)

    def load(self, path: Path) -> None:
        self.q_network.load_state_dict(torch.load(path, weights_only=True)["q_network"])

    def state_dict(self) -> dict:
        """Everything needed to continue training: networks, optimizer, replay buffer, RNG, counters.

        The filled part of the replay buffer is stored whole (no cap: ``count * obs_dim`` float32,
        plus the kept next observations). Mid-``learn`` it also holds the training env (pickled, with
        its RNG) and the current observation and episode counters; pickle it with ``cloudpickle``.
        """
        count = self.config.buffer_size if self.buffer_full else self.buffer_pos
        kept = sorted(self.kept_next_obs)
        return {
            "q_network": self.q_network.state_dict(),
            "target_network": self.target_network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "buffer": {
                name: torch.from_numpy(getattr(self, f"buffer_{name}")[:count].copy())
                for name in ("obs", "actions", "rewards", "novel", "terminated", "dones")
            },
            "kept_positions": torch.tensor(kept, dtype=torch.int64),
            "kept_next_obs": torch.from_numpy(np.array([self.kept_next_obs[p] for p in kept], np.float32).reshape(-1, self.obs_dim)),
            "buffer_pos": self.buffer_pos,
            "buffer_full": self.buffer_full,
            "global_step": self.global_step,
            "loop": None if self.env is None else {
                "env": self.env,
                "obs": self.obs.copy(),
                "episodic_return": self.episodic_return,
                "episodic_length": self.episodic_length,
                "seen": sorted(self.seen),
            },
        }

    def load_state_dict(self, state: dict) -> None:
        self.q_network.load_state_dict(state["q_network"])
        self.target_network.load_state_dict(state["target_network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        buffer = dict(state["buffer"])
        earlier_next_obs = buffer.pop("next_obs", None)  # a checkpoint from before next observations were kept apart
        for name, values in buffer.items():
            getattr(self, f"buffer_{name}")[: len(values)] = values.numpy()
        self.buffer_pos = int(state["buffer_pos"])
        self.buffer_full = bool(state["buffer_full"])
        if earlier_next_obs is None:
            kept_positions, kept_next_obs = state["kept_positions"].numpy(), state["kept_next_obs"].numpy()
        else:  # keep every next observation that is not the following one's, and the newest
            count = len(earlier_next_obs)
            differs = (earlier_next_obs.numpy() != self.buffer_obs[(np.arange(count) + 1) % self.config.buffer_size]).any(-1)
            if count:
                differs[(self.buffer_pos - 1) % count] = True
            kept_positions = np.flatnonzero(differs)
            kept_next_obs = earlier_next_obs.numpy()[kept_positions]
        self.buffer_kept[:] = False
        self.kept_next_obs = {}
        for position, next_obs in zip(kept_positions.tolist(), kept_next_obs):
            self._keep_next_obs(position, next_obs)
        self.global_step = int(state["global_step"])
        loop = state.get("loop")
        if loop is not None:
            self.env, self.obs = loop["env"], np.array(loop["obs"], np.float32)
            self.episodic_return, self.episodic_length = float(loop["episodic_return"]), int(loop["episodic_length"])
            self.seen = set(loop.get("seen", ()))
