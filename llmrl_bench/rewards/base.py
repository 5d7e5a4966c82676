"""The reward of the training envs (``reward=`` in the config): the env's own, or one computed from states and actions.

``reward=direct`` (default) is the env's reward, and changes nothing: not the envs, not the run_id.
An indirect reward (``learned_irl``, ``llm_judge``, the ``constant`` control) is a :class:`TrainingReward` that
:class:`IndirectRewardVecEnv` applies to the raw training vector env, below the run's
representation; it replaces the env's reward (``mode=replace``) or is added to it
(``mode=add``), times ``coef``. Evaluation envs keep the env's reward, so every curve and
metric is in the env's own return. What the learned reward agrees with is measured on the way
(:class:`RewardAgreement`, docs/rewards.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from scipy.stats import pearsonr, rankdata

from llmrl_bench.envs import maze_solver
from llmrl_bench.errors import ConfigError
from llmrl_bench.registry import register

#: Agents that train on ``envs.make_vec`` (the envs an indirect reward wraps) and learn from reward.
INDIRECT_REWARD_AGENTS = ("ppo", "llm_pg")
#: Share of the last training steps over which the ``*_final`` agreement numbers are computed.
FINAL_SHARE = 0.2


class RewardMode(str, Enum):
    """How an indirect reward meets the env's: ``replace`` it, or ``add`` to it."""

    replace = "replace"
    add = "add"


@register("reward", "direct")
@dataclass
class DirectConfig:
    """The env's own reward (``reward=direct``)."""

    _target_: str = "llmrl_bench.rewards.base.DirectReward"
    name: str = "direct"
    """Reward name in results."""


@dataclass
class IndirectConfig:
    """Fields every indirect reward has."""

    mode: RewardMode = RewardMode.replace
    """``replace``: the training reward is ``coef * learned``; ``add``: ``env reward + coef * learned``."""
    coef: float = 1.0
    """Weight of the learned reward."""
    log_every_steps: int = 2048
    """Env steps between two ``charts/learned_reward*`` points."""


class TrainingReward(ABC):
    """A reward of the training envs, built from its config dataclass, the run's env suite and seed."""

    name: str
    is_direct = False

    def __init__(self, config: Any, suite: Any, seed: int):
        self.config, self.suite, self.seed = config, suite, seed

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """One line for an agent that cannot use this reward (component-specific checks extend it)."""
        from hydra.utils import get_class

        agent = get_class(cfg.agent._target_).name
        if agent not in INDIRECT_REWARD_AGENTS:
            raise ConfigError(f"reward={cls.name} supports agent={', '.join(INDIRECT_REWARD_AGENTS)}; got agent={agent}")
        if cfg.reward.coef != cfg.reward.coef or abs(cfg.reward.coef) == float("inf"):
            raise ConfigError(f"reward.coef={cfg.reward.coef} must be a finite number")

    @abstractmethod
    def encode(self, observations: Any, envs: gym.vector.VectorEnv) -> Any:
        """What this reward keeps of a batch of raw observations (read right after the step that made them)."""

    @abstractmethod
    def rewards(self, before: Any, actions: np.ndarray, after: Any) -> np.ndarray:
        """``(n,)`` learned rewards of ``n`` transitions (encoded observations before and after ``actions``)."""

    def observe(self, before: Any, actions: np.ndarray, after: Any) -> dict[str, float]:
        """Train on the agent's transitions (online rewards); returns loss values to log, if it updated."""
        return {}

    def provenance(self) -> dict[str, Any]:
        """Facts about the reward model for ``result.json`` (``reward_*`` keys)."""
        return {}


class DirectReward(TrainingReward):
    """The env's own reward: :class:`~llmrl_bench.run_envs.RunEnvs` leaves the envs as they are."""

    name = "direct"
    is_direct = True

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        return None

    def encode(self, observations: Any, envs: gym.vector.VectorEnv) -> Any:
        raise NotImplementedError("reward=direct does not wrap envs")

    def rewards(self, before: Any, actions: np.ndarray, after: Any) -> np.ndarray:
        raise NotImplementedError("reward=direct does not wrap envs")


def select(encoded: Any, mask: np.ndarray) -> Any:
    """The rows of ``encoded`` (an array or a sequence) where ``mask`` is true."""
    if isinstance(encoded, np.ndarray):
        return encoded[mask]
    return [item for item, keep in zip(encoded, mask) if keep]


@lru_cache(maxsize=1024)
def _goal_distances(layout: Any, actions: str) -> dict:
    return maze_solver.distances_to_goal(layout, actions)


def goal_distances(envs: gym.vector.VectorEnv, actions: str) -> np.ndarray:
    """``(num_envs,)`` fewest actions from each maze env's current state to its goal (the exact solver)."""
    positions, headings, layouts = envs.get_attr("agent_pos"), envs.get_attr("agent_dir"), envs.get_attr("layout")
    return np.array([_goal_distances(layout, actions).get((int(pos[0]), int(pos[1]), int(heading)), -1)
                     for pos, heading, layout in zip(positions, headings, layouts)])


def progress_auc(learned: np.ndarray, progress: np.ndarray) -> float | None:
    """Area under the ROC curve of ``learned`` as a detector of ``progress`` (steps that cut the distance to the goal).

    The probability that a progress step gets a higher learned reward than a non-progress step
    (ties count half): 0.5 is chance, 1 a perfect ranking. ``None`` without both kinds of step.
    """
    positives, negatives = int(progress.sum()), int((~progress).sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(learned)
    return float((ranks[progress].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def pearson(learned: np.ndarray, env_reward: np.ndarray) -> float | None:
    """Pearson correlation per step of the learned reward with the env's; ``None`` if either is constant."""
    if len(learned) < 2 or np.ptp(learned) == 0 or np.ptp(env_reward) == 0:
        return None
    return float(pearsonr(learned, env_reward).statistic)


class RewardAgreement:
    """Per training step: the learned reward, the env's reward and (mazes) whether the step made progress."""

    def __init__(self) -> None:
        self.learned: list[np.ndarray] = []
        self.env_reward: list[np.ndarray] = []
        self.progress: list[np.ndarray] = []

    def record(self, learned: np.ndarray, env_reward: np.ndarray, progress: np.ndarray | None) -> None:
        self.learned.append(np.asarray(learned, np.float64))
        self.env_reward.append(np.asarray(env_reward, np.float64))
        if progress is not None:
            self.progress.append(np.asarray(progress, bool))

    def summary(self, start: float = 0.0) -> dict[str, float | None]:
        """Mean learned reward, Pearson with the env's reward, progress AUC, over steps from ``start`` (a share) on."""
        learned = np.concatenate(self.learned) if self.learned else np.zeros(0)
        first = int(start * len(learned))
        env_reward = np.concatenate(self.env_reward)[first:] if self.env_reward else np.zeros(0)
        progress = np.concatenate(self.progress)[first:] if self.progress else None
        learned = learned[first:]
        return {
            "learned_mean": float(learned.mean()) if len(learned) else None,
            "pearson_env": pearson(learned, env_reward),
            "progress_auc": progress_auc(learned, progress) if progress is not None else None,
        }

    def provenance(self) -> dict[str, float | None]:
        """``reward_learned_mean``, ``reward_pearson_env``, ``reward_progress_auc`` over all training steps and the last 20%."""
        whole, final = self.summary(), self.summary(1.0 - FINAL_SHARE)
        return {**{f"reward_{k}": v for k, v in whole.items()}, **{f"reward_{k}_final": v for k, v in final.items()},
                "reward_steps": int(sum(len(x) for x in self.learned))}


class IndirectRewardVecEnv(gym.vector.VectorWrapper):
    """A raw training vector env (autoreset NEXT_STEP) whose reward comes from ``reward``.

    Autoreset steps (which only reset an env) keep the env's reward (0) and are not shown to
    the reward. ``log`` (``log(step, values)``, the run's tracker) gets ``charts/learned_reward``
    (mean per step), its windowed agreement and the reward's losses.
    """

    def __init__(self, env: gym.vector.VectorEnv, reward: TrainingReward, log: Callable[[int, dict], None] | None = None):
        super().__init__(env)
        self.reward = reward
        self.log = log
        self.mode = RewardMode(reward.config.mode)
        self.coef = float(reward.config.coef)
        self.maze_actions = getattr(reward.suite, "actions", None) if hasattr(reward.suite, "expert_demonstrations") else None
        self.agreement = RewardAgreement()
        self.env_steps = 0
        self.last_logged = 0
        self.window = RewardAgreement()
        self._autoreset = np.zeros(self.num_envs, bool)
        self._encoded: Any = None
        self._distances: np.ndarray | None = None

    def get_attr(self, name: str) -> tuple:
        """The sub-envs' attribute ``name`` (the ``vector`` representation reads positions through it)."""
        return self.env.get_attr(name)

    def _observe_state(self, observations: Any) -> None:
        self._encoded = self.reward.encode(observations, self.env)
        self._distances = goal_distances(self.env, self.maze_actions) if self.maze_actions else None

    def reset(self, *, seed: Any = None, options: Any = None):
        observations, info = self.env.reset(seed=seed, options=options)
        self._observe_state(observations)
        self._autoreset[:] = False
        return observations, info

    def step(self, actions: Any):
        before, distances_before, valid = self._encoded, self._distances, ~self._autoreset
        observations, env_reward, terminated, truncated, info = self.env.step(actions)
        self._observe_state(observations)
        actions = np.asarray(actions, np.int64)
        reward = np.asarray(env_reward, np.float64).copy()
        if valid.any():
            transition = (select(before, valid), actions[valid], select(self._encoded, valid))
            learned = np.asarray(self.reward.rewards(*transition), np.float64)
            reward[valid] = self.coef * learned + (reward[valid] if self.mode == RewardMode.add else 0.0)
            progress = None if distances_before is None else (self._distances < distances_before)[valid]
            for monitor in (self.agreement, self.window):
                monitor.record(learned, np.asarray(env_reward, np.float64)[valid], progress)
            self.env_steps += int(valid.sum())
            self._log(self.reward.observe(*transition))
        self._autoreset = np.logical_or(terminated, truncated)
        return observations, reward, terminated, truncated, info

    def _log(self, losses: dict[str, float]) -> None:
        if self.log is None:
            return
        if losses:
            self.log(self.env_steps, losses)
        if self.env_steps - self.last_logged >= self.reward.config.log_every_steps:
            window = self.window.summary()
            self.log(self.env_steps, {"charts/learned_reward": window["learned_mean"],
                                      **{f"charts/learned_reward_{k}": v for k, v in window.items() if k != "learned_mean" and v is not None}})
            self.window, self.last_logged = RewardAgreement(), self.env_steps

    def provenance(self) -> dict[str, Any]:
        return {"reward": self.reward.name, **self.agreement.provenance(), **self.reward.provenance()}
