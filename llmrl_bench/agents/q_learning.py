"""Tabular Q-learning with an epsilon-greedy behaviour policy (Watkins, 1989).

The table maps a state key to ``n_actions`` values. The key is the observation's bytes
(MiniGrid's ``vector`` repr holds position, direction and view, so it names the state), or,
when ``bins`` is set, the bin indices of a discretised low-dimensional ``Box`` (CartPole).
Unseen states take ``initial_value`` for every action, so the greedy action there is action 0.
With ``n_step > 1`` each update sums the next ``n_step`` rewards before bootstrapping
(uncorrected n-step Q-learning, as in Mnih et al. 2016 and Hessel et al. 2018).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

import gymnasium as gym
import numpy as np
import torch

from llmrl_bench.registry import register
from llmrl_bench.agents.base import EnvFactory, TrainingHooks, epsilon_greedy_probabilities
from llmrl_bench.agents.networks import flat_obs_dim, linear_schedule, num_actions

LOG_EVERY_STEPS = 1000


@register("agent", "q_learning")
@dataclass
class QLearningConfig:
    """Tabular Q-learning hyperparameters; defaults suit small MiniGrid mazes."""

    IDENTITY_NEUTRAL: ClassVar[dict] = {"n_step": 1, "anneal_lr": False}
    """Options added after results were recorded: at these values they stay out of the run_id."""

    _target_: str = "llmrl_bench.agents.q_learning.QLearning"
    learning_rate: float = 0.1
    """Step size of the tabular TD update (at the start when annealed)."""
    anneal_lr: bool = False
    """Decay the step size linearly to 0 over the budget, so averaged (aliased) targets settle (Robbins & Monro 1951)."""
    gamma: float = 0.99
    """Discount factor."""
    initial_value: float = 0.0
    """Value of unseen state-actions; optimistic values (above any return) drive exploration (Sutton & Barto 2018, 2.6)."""
    n_step: int = 1
    """n-step returns (Sutton 1988; Hessel et al. 2018): sum n rewards before bootstrapping (1: Watkins' Q-learning)."""
    exploration_fraction: float = 0.5
    """Fraction of the budget over which epsilon decays linearly."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start."""
    exploration_final_eps: float = 0.05
    """Epsilon after the decay (also used by ``act(greedy=False)``)."""
    bins: Optional[list[int]] = None
    """Bins per observation dimension; ``None`` keys the table by the raw observation bytes."""
    clip_low: Optional[list[float]] = None
    """Lower clip bound per dimension before binning (needed with ``bins``)."""
    clip_high: Optional[list[float]] = None
    """Upper clip bound per dimension before binning (needed with ``bins``)."""


class QLearning:
    """Q-learning over a dict from state keys to action values."""

    name = "q_learning"
    supported_reprs = ("vector",)

    def __init__(self, config: QLearningConfig, observation_space: gym.Space, action_space: gym.Space, seed: int):
        self.config = cfg = config
        if cfg.n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {cfg.n_step}")
        self.seed = seed
        self.obs_dim = flat_obs_dim(observation_space)
        self.obs_dtype = observation_space.dtype  # keys are bytes, so fix the dtype
        self.n_actions = num_actions(action_space)
        if cfg.bins is None and not np.all(np.isfinite(observation_space.high)):
            raise ValueError(
                "q_learning keys the table by the observation's bytes, which needs a bounded discrete "
                "observation (MiniGrid's vector); set bins, clip_low and clip_high for continuous ones"
            )
        if cfg.bins is not None:
            if cfg.clip_low is None or cfg.clip_high is None:
                raise ValueError("bins needs clip_low and clip_high")
            if not len(cfg.bins) == len(cfg.clip_low) == len(cfg.clip_high) == self.obs_dim:
                raise ValueError(f"bins, clip_low and clip_high need {self.obs_dim} entries each")
            self.bins = np.asarray(cfg.bins, np.int64)
            self.low = np.asarray(cfg.clip_low, np.float64)
            self.high = np.asarray(cfg.clip_high, np.float64)
        self.table: dict[bytes, np.ndarray] = {}
        self.rng = np.random.default_rng(seed)  # exploration
        self.global_step = 0

    def state_key(self, observation: np.ndarray) -> bytes:
        """The table key of one observation: its bytes, or its bin indices' bytes."""
        if self.config.bins is None:
            return np.ascontiguousarray(observation, self.obs_dtype).tobytes()
        scaled = (np.clip(observation, self.low, self.high) - self.low) / (self.high - self.low)
        return np.minimum((scaled * self.bins).astype(np.int64), self.bins - 1).tobytes()

    def _values(self, key: bytes) -> np.ndarray:
        """The action values of ``key``, added to the table as zeros when new."""
        values = self.table.get(key)
        if values is None:
            values = self.table[key] = np.full(self.n_actions, self.config.initial_value)
        return values

    # ------------------------------------------------------------------ acting
    def _greedy_actions(self, observations: np.ndarray) -> np.ndarray:
        observations = np.asarray(observations).reshape(-1, self.obs_dim)
        unseen = np.zeros(self.n_actions)  # argmax 0, as for any all-equal values
        return np.array([int(np.argmax(self.table.get(self.state_key(o), unseen))) for o in observations], np.int64)

    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        """``(batch, num_actions)``: the epsilon-greedy policy at the final epsilon (what ``act(greedy=False)`` draws)."""
        return epsilon_greedy_probabilities(self._greedy_actions(observations), self.n_actions, self.config.exploration_final_eps)

    def act(self, observations: np.ndarray, greedy: bool = True) -> np.ndarray:
        """Greedy actions (unseen states: action 0; no RNG), or epsilon-greedy at the final epsilon."""
        actions = self._greedy_actions(observations)
        if not greedy:
            explore = self.rng.random(len(actions)) < self.config.exploration_final_eps
            actions[explore] = self.rng.integers(self.n_actions, size=int(explore.sum()))
        return actions.astype(np.int64)

    # ---------------------------------------------------------------- training
    def learn(self, envs: EnvFactory, total_steps: int, hooks: TrainingHooks) -> None:
        """Train until ``global_step == total_steps`` with one env."""
        cfg = self.config
        env = envs.make()
        obs, _ = env.reset(seed=self.seed)
        key = self.state_key(np.asarray(obs).reshape(self.obs_dim))
        episodic_return, episodic_length = 0.0, 0
        pending = deque()  # (key, action, reward) of the steps not yet updated, oldest first
        td_errors = []
        start_time, start_step, last_log_step = time.perf_counter(), self.global_step, self.global_step

        while self.global_step < total_steps:
            epsilon = linear_schedule(cfg.exploration_initial_eps, cfg.exploration_final_eps,
                                      cfg.exploration_fraction, self.global_step / total_steps)
            learning_rate = cfg.learning_rate * (1.0 - self.global_step / total_steps) if cfg.anneal_lr else cfg.learning_rate
            values = self._values(key)
            if self.rng.random() < epsilon:
                action = int(self.rng.integers(self.n_actions))
            else:  # ties broken at random: argmax's first index would spin in place in every new state
                best = np.flatnonzero(values == values.max())
                action = int(best[0] if len(best) == 1 else best[self.rng.integers(len(best))])

            obs, reward, terminated, truncated, _ = env.step(action)
            next_key = self.state_key(np.asarray(obs).reshape(self.obs_dim))
            pending.append((key, action, float(reward)))
            if len(pending) == cfg.n_step or terminated or truncated:
                # n-step TD update of the oldest pending step (of every one once the episode ended);
                # truncation is not termination, so it bootstraps
                bootstrap = 0.0 if terminated else self._values(next_key).max()
                while pending:
                    td_target = bootstrap
                    for _, _, pending_reward in reversed(pending):
                        td_target = pending_reward + cfg.gamma * td_target
                    updated_key, updated_action, _ = pending.popleft()
                    updated_values = self._values(updated_key)
                    td_error = td_target - updated_values[updated_action]
                    updated_values[updated_action] += learning_rate * td_error
                    td_errors.append(abs(td_error))
                    if not (terminated or truncated):
                        break
            self.global_step += 1

            episodic_return += float(reward)
            episodic_length += 1
            if terminated or truncated:
                hooks.on_episode(self.global_step, episodic_return, episodic_length)
                episodic_return, episodic_length = 0.0, 0
                obs, _ = env.reset()
                next_key = self.state_key(np.asarray(obs).reshape(self.obs_dim))
            key = next_key

            if self.global_step - last_log_step >= LOG_EVERY_STEPS:
                hooks.log(
                    self.global_step,
                    {
                        "losses/abs_td_error": float(np.mean(td_errors)),
                        "charts/table_size": len(self.table),
                        "charts/epsilon": epsilon,
                        "charts/SPS": (self.global_step - start_step) / (time.perf_counter() - start_time),
                    },
                )
                td_errors.clear()
                last_log_step = self.global_step
            hooks.on_step(self.global_step)
        env.close()

    # ------------------------------------------------------------- persistence
    def _table_tensors(self) -> dict[str, torch.Tensor]:
        keys = list(self.table)
        key_bytes = np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), -1) if keys else np.zeros((0, 0))
        values = np.stack([self.table[k] for k in keys]) if keys else np.zeros((0, self.n_actions))
        return {"keys": torch.from_numpy(key_bytes.astype(np.uint8)), "values": torch.from_numpy(values)}

    def _set_table(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.table = {bytes(k): v.copy() for k, v in zip(keys.numpy(), values.numpy())}

    def save(self, path: Path) -> None:
        """The table as a ``(states, key_bytes)`` uint8 tensor and a ``(states, actions)`` value tensor."""
        torch.save(self._table_tensors(), path)

    def load(self, path: Path) -> None:
        state = torch.load(path, weights_only=True)
        self._set_table(state["keys"], state["values"])

    def state_dict(self) -> dict:
        """Everything needed to continue training: table, RNG, step counter."""
        return {**self._table_tensors(), "rng": self.rng.bit_generator.state, "global_step": self.global_step}

    def load_state_dict(self, state: dict) -> None:
        self._set_table(state["keys"], state["values"])
        self.rng.bit_generator.state = state["rng"]
        self.global_step = int(state["global_step"])
