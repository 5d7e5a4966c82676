"""Evaluation of the agent's evaluation policy (``act(greedy=True)``) on fixed evaluation seeds, batched over episodes."""

from __future__ import annotations

from typing import Callable, Sequence

import gymnasium as gym
import numpy as np

from llmrl_bench.agents.base import Agent
from llmrl_bench.envs.base import EVAL_SEED_OFFSET, EnvSuite


def evaluation_steps(env_steps: int, num_evals: int) -> list[int]:
    """``num_evals + 1`` evenly spaced evaluation steps from 0 to ``env_steps``."""
    return [round(i * env_steps / num_evals) for i in range(num_evals + 1)]


def mean_optimal_return(suite: EnvSuite, context: str, episodes: int) -> float | None:
    """The mean best possible return of the ``episodes`` evaluation episodes of ``context``
    (seeds ``EVAL_SEED_OFFSET + i``); ``None`` where the suite declares no exact ceiling."""
    ceilings = [suite.optimal_return(context, EVAL_SEED_OFFSET + i) for i in range(episodes)]
    if not ceilings or any(c is None for c in ceilings):
        return None
    return float(np.mean(ceilings))


class Evaluator:
    """Runs ``episodes`` episodes of the evaluation policy on one split/context, all stepped as one batch.

    The envs are built once; each evaluation resets episode ``i`` with seed
    ``EVAL_SEED_OFFSET + i``, so every evaluation point sees the same episodes and no
    evaluation seed is ever a training seed.
    """

    def __init__(self, make_env: Callable[[], gym.Env], episodes: int, text_observations: bool):
        self.envs = [make_env() for _ in range(episodes)]
        self.text_observations = text_observations

    def _batch(self, observations: Sequence) -> np.ndarray | list[str]:
        return list(observations) if self.text_observations else np.stack(observations)

    def evaluate(self, agent: Agent) -> np.ndarray:
        """Undiscounted returns ``(episodes,)`` of ``agent``'s evaluation policy (``act(greedy=True)``)."""
        observations = [env.reset(seed=EVAL_SEED_OFFSET + i)[0] for i, env in enumerate(self.envs)]
        returns = np.zeros(len(self.envs))
        active = list(range(len(self.envs)))
        while active:
            actions = agent.act(self._batch([observations[i] for i in active]), greedy=True)
            still_active = []
            for i, action in zip(active, actions):
                observation, reward, terminated, truncated, _ = self.envs[i].step(int(action))
                returns[i] += float(reward)
                if not (terminated or truncated):
                    observations[i] = observation
                    still_active.append(i)
            active = still_active
        return returns

    def close(self) -> None:
        for env in self.envs:
            env.close()
