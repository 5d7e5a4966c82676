"""Evaluation on fixed evaluation seeds, batched over episodes: the agent's own evaluation policy
(``act(greedy=True)``, the run's headline curve) and the protocol's two modes for every agent.

The modes read the agent's action distribution, ``action_probabilities(observations)``:

- ``greedy``: its argmax (lowest index on ties);
- ``sampled``: a draw from it, episode ``i`` with its own generator seeded ``EVAL_SEED_OFFSET + i``
  at every evaluation, so the draws never touch the agent's training RNGs.

For DQN and Q-learning the distribution is the epsilon-greedy policy at the final epsilon; for
policy-gradient and LLM agents the softmax they sample in training.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import gymnasium as gym
import numpy as np

from llmrl_bench.agents.base import Agent
from llmrl_bench.envs.base import EVAL_SEED_OFFSET, EnvSuite


def evaluation_steps(env_steps: int, num_evals: int) -> list[int]:
    """``num_evals + 1`` evenly spaced evaluation steps from 0 to ``env_steps``."""
    return [round(i * env_steps / num_evals) for i in range(num_evals + 1)]


#: The evaluation modes every evaluation records (``Evaluator.evaluate_mode``).
EVAL_MODES = ("greedy", "sampled")


def has_action_distribution(agent: Agent) -> bool:
    """Whether the agent exposes ``action_probabilities`` (the protocol's modes need it)."""
    return callable(getattr(agent, "action_probabilities", None))


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
        return self._play(lambda batch, active: agent.act(batch, greedy=True))

    def evaluate_mode(self, agent: Agent, mode: str) -> np.ndarray:
        """Undiscounted returns ``(episodes,)`` of the ``greedy`` or ``sampled`` policy of ``agent``'s action distribution."""
        if mode == "greedy":
            return self._play(lambda batch, active: agent.action_probabilities(batch).argmax(-1))
        if mode != "sampled":
            raise ValueError(f"evaluation mode {mode!r} is not one of {EVAL_MODES}")
        generators = [np.random.default_rng(EVAL_SEED_OFFSET + i) for i in range(len(self.envs))]

        def draw(batch, active: list[int]) -> Iterator[int]:
            probabilities = np.asarray(agent.action_probabilities(batch), np.float64)
            for i, row in zip(active, probabilities):
                yield int(generators[i].choice(len(row), p=row / row.sum()))

        return self._play(lambda batch, active: list(draw(batch, active)))

    def _play(self, choose: Callable[[np.ndarray | list[str], list[int]], Sequence[int]]) -> np.ndarray:
        """Returns ``(episodes,)`` with ``choose(observations, active episode indices)`` acting."""
        observations = [env.reset(seed=EVAL_SEED_OFFSET + i)[0] for i, env in enumerate(self.envs)]
        returns = np.zeros(len(self.envs))
        active = list(range(len(self.envs)))
        while active:
            actions = choose(self._batch([observations[i] for i in active]), active)
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
