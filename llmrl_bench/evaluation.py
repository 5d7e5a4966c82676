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
    """Whether the agent exposes ``action_probabilities``; an agent whose distribution is implicit (an LLM
    generating its actions as text) sets ``explicit_action_distribution`` false."""
    return callable(getattr(agent, "action_probabilities", None)) and getattr(agent, "explicit_action_distribution", True)


def records_modes(agent: Agent) -> bool:
    """Whether the protocol's modes can be played: from the explicit distribution, or by the agent's own
    ``act_in_mode(observations, mode)`` where the distribution is implicit."""
    return has_action_distribution(agent) or callable(getattr(agent, "act_in_mode", None))


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
        if mode not in EVAL_MODES:
            raise ValueError(f"evaluation mode {mode!r} is not one of {EVAL_MODES}")
        if not has_action_distribution(agent):  # e.g. generated text: the agent plays the mode itself
            return self._play(lambda batch, active: agent.act_in_mode(batch, mode))
        if mode == "greedy":
            return self._play(lambda batch, active: agent.action_probabilities(batch).argmax(-1))
        generators = [np.random.default_rng(EVAL_SEED_OFFSET + i) for i in range(len(self.envs))]

        def draw(batch, active: list[int]) -> Iterator[int]:
            probabilities = np.asarray(agent.action_probabilities(batch), np.float64)
            for i, row in zip(active, probabilities):
                yield int(generators[i].choice(len(row), p=row / row.sum()))

        return self._play(lambda batch, active: list(draw(batch, active)))

    def _play(self, choose: Callable[[np.ndarray | list[str], list[int]], Sequence[int]]) -> np.ndarray:
        """Returns ``(episodes,)`` with ``choose(observations, active episode indices)`` acting."""
        return play_together([self], choose)[0]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def play_together(
    evaluators: Sequence[Evaluator], choose: Callable[[np.ndarray | list[str], list[int]], Sequence[int]]
) -> list[np.ndarray]:
    """The returns of every evaluator's episodes, all stepped as one batch: one ``choose(observations,
    active indices)`` call per step, indices counted over the evaluators' episodes in order."""
    envs = [env for evaluator in evaluators for env in evaluator.envs]
    seeds = [EVAL_SEED_OFFSET + i for evaluator in evaluators for i in range(len(evaluator.envs))]
    observations = [env.reset(seed=seed)[0] for env, seed in zip(envs, seeds)]
    returns = np.zeros(len(envs))
    active = list(range(len(envs)))
    while active:
        actions = choose(evaluators[0]._batch([observations[i] for i in active]), active)
        still_active = []
        for i, action in zip(active, actions):
            observation, reward, terminated, truncated, _ = envs[i].step(int(action))
            returns[i] += float(reward)
            if not (terminated or truncated):
                observations[i] = observation
                still_active.append(i)
        active = still_active
    ends = np.cumsum([len(evaluator.envs) for evaluator in evaluators])[:-1]
    return np.split(returns, ends)


def evaluate_together(evaluators: Sequence[Evaluator], agent: Agent, mode: str | None = None) -> list[np.ndarray]:
    """``Evaluator.evaluate`` (``mode=None``) or ``evaluate_mode(agent, mode)`` of every evaluator, played as one
    batch (:func:`play_together`). For agents without an explicit distribution (:func:`plays_together`), whose
    step cost is a few sequential decoding forwards however many rows they hold; the others play split by split."""
    if plays_together(agent):
        if mode is None:
            return play_together(evaluators, lambda batch, active: agent.act(batch, greedy=True))
        if mode not in EVAL_MODES:
            raise ValueError(f"evaluation mode {mode!r} is not one of {EVAL_MODES}")
        return play_together(evaluators, lambda batch, active: agent.act_in_mode(batch, mode))
    return [evaluator.evaluate(agent) if mode is None else evaluator.evaluate_mode(agent, mode) for evaluator in evaluators]


def plays_together(agent: Agent) -> bool:
    """Whether :func:`evaluate_together` steps all splits as one batch: agents that play the modes themselves
    (``act_in_mode``: an LLM generating its actions as text). Their draws come from one generator in batch
    order, so the batch is part of the protocol for them. Every other agent plays split by split, as its
    committed results did."""
    return not has_action_distribution(agent) and records_modes(agent)

