"""The small protocol every agent meets, so the runner never cares which agent it is.

An agent is built by Hydra from ``cfg.agent`` (its ``_target_`` is the agent class) as
``Agent(observation_space=..., action_space=..., seed=..., **hyperparameters)``.
It owns one explicit training loop in ``learn``; the runner observes that loop only
through :class:`TrainingHooks` (evaluation, logging, progress, checkpoints).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import gymnasium as gym
import numpy as np


class TrainingHooks(Protocol):
    """What the runner offers an agent's training loop."""

    def on_step(self, global_step: int) -> None:
        """Call after every env step (vectorised loops: with the summed count over envs).

        The runner evaluates, reports progress and checkpoints from here. Cheap when
        nothing is due.
        """

    def on_episode(self, global_step: int, episodic_return: float, episodic_length: int) -> None:
        """Call when a training episode ends (logged as ``charts/episodic_return``)."""

    def log(self, global_step: int, values: dict[str, float]) -> None:
        """Log scalars under namespaced keys, e.g. ``{"losses/td_loss": 0.1}``."""

    def checkpoint_point(self, global_step: int) -> None:
        """Call where all loop state lives in the agent, so ``state_dict()`` captures it.

        Only resumable agents (``resumable = True``) call it. The runner may save a
        checkpoint here, or save one and stop the run (pre-emption signal). Cheap when
        nothing is due.
        """


class EnvFactory(Protocol):
    """Training environments of one run, with the state representation already applied."""

    observation_space: gym.Space
    action_space: gym.spaces.Discrete

    def make(self) -> gym.Env:
        """One training env (train split). Reset it once with ``seed=`` for determinism."""

    def make_vec(self, num_envs: int) -> gym.vector.VectorEnv:
        """``num_envs`` training envs stepped as a batch (autoreset mode NEXT_STEP)."""


@runtime_checkable
class Agent(Protocol):
    """act / learn / save / load."""

    def act(self, observations: np.ndarray | Sequence[str], greedy: bool = True) -> np.ndarray:
        """Actions (int64, shape ``(batch,)``) for a batch of observations.

        ``greedy=True`` is the evaluation policy. It must not draw from the training RNG; it is
        deterministic, except that LLM agents with ``llm.eval_sampling`` sample from a
        generator kept for evaluation (seeded, so a run still repeats exactly).
        """

    def learn(self, envs: EnvFactory, total_steps: int, hooks: TrainingHooks) -> None:
        """Train for ``total_steps`` env steps (counted over all parallel envs)."""

    def save(self, path: Path) -> None:
        """Write the policy (enough to ``load`` and ``act``) to ``path``."""

    def load(self, path: Path) -> None:
        """Restore what ``save`` wrote."""


# An agent should also define ``action_probabilities(observations) -> (batch, num_actions)``:
# the distribution its non-greedy policy draws from, with no side effect. The evaluation
# protocol plays its argmax and samples of it (``llmrl_bench.evaluation``); without it a run
# records only the ``act(greedy=True)`` curve.


def epsilon_greedy_probabilities(greedy_actions: np.ndarray, num_actions: int, epsilon: float) -> np.ndarray:
    """``(batch, num_actions)``: ``1 - epsilon`` on each greedy action plus ``epsilon`` spread uniformly."""
    probabilities = np.full((len(greedy_actions), num_actions), epsilon / num_actions)
    probabilities[np.arange(len(greedy_actions)), greedy_actions] += 1.0 - epsilon
    return probabilities


# An agent may also set ``resumable = True``: its ``state_dict()`` then holds everything
# ``learn`` needs to continue (loop state and training envs included), ``load_state_dict``
# restores it, and ``learn`` continues from there, calling ``hooks.checkpoint_point``.


class NullHooks:
    """Hooks that do nothing: for using an agent outside the runner."""

    def on_step(self, global_step: int) -> None:
        pass

    def on_episode(self, global_step: int, episodic_return: float, episodic_length: int) -> None:
        pass

    def log(self, global_step: int, values: dict[str, Any]) -> None:
        pass

    def checkpoint_point(self, global_step: int) -> None:
        pass
