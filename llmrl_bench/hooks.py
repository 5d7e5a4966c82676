"""What the runner offers an agent's training loop: evaluation on schedule, logging, progress, checkpoints."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from llmrl_bench import checkpoint
from llmrl_bench.evaluation import EVAL_MODES, Evaluator, evaluate_together, evaluation_steps, records_modes
from llmrl_bench.progress import RunProgress
from llmrl_bench.run_envs import RunEnvs
from llmrl_bench.envs.base import TRAIN
from llmrl_bench.tracking import NullTracker


def check_finite(values: dict[str, Any], step: int) -> None:
    """Fail fast on a diverged loss instead of training on NaNs."""
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value) and key.startswith("losses/"):
            raise FloatingPointError(f"{key} is {value} at step {step}")


class RunHooks:
    """The :class:`~llmrl_bench.agents.base.TrainingHooks` of one run, driven by the agent's own loop."""

    def __init__(self, agent, envs: RunEnvs, budget: Any, log_every_steps: int, tracker: NullTracker, progress: RunProgress):
        self.agent = agent
        self.tracker = tracker
        self.progress = progress
        self.log_every = log_every_steps
        self.eval_steps = evaluation_steps(budget.env_steps, budget.num_evals)
        self.next_eval = 0
        self.global_step = 0
        self.curve: list[dict[str, Any]] = []
        self.episodes: dict[str, list[float]] = {"step": [], "return": [], "length": []}
        self.last_logged = -self.log_every
        self.last_train_returns = np.zeros(0)
        self.last_held_out_returns = np.zeros((0, 0))
        self.train_evaluator = envs.evaluator(TRAIN, budget.eval_episodes)
        self.held_out_evaluators = {
            context: envs.evaluator(context, budget.held_out_episodes) for context in envs.suite.held_out_contexts
        }
        self.checkpointer: checkpoint.Checkpointer | None = None
        self.policy_path: Path | None = None
        """Where the last evaluation saves the policy it evaluated (the run's final policy)."""

    # -- TrainingHooks -------------------------------------------------------
    def on_step(self, global_step: int) -> None:
        self.global_step = global_step
        while self.next_eval < len(self.eval_steps) and global_step >= self.eval_steps[self.next_eval]:
            self.evaluate(self.eval_steps[self.next_eval])
        self.progress.update(global_step)

    def on_episode(self, global_step: int, episodic_return: float, episodic_length: int) -> None:
        self.episodes["step"].append(global_step)
        self.episodes["return"].append(float(episodic_return))
        self.episodes["length"].append(int(episodic_length))
        if global_step - self.last_logged >= self.log_every:
            self.last_logged = global_step
            self.tracker.log(global_step, {"charts/episodic_return": float(episodic_return), "charts/episodic_length": int(episodic_length)})

    def log(self, global_step: int, values: dict[str, Any]) -> None:
        check_finite(values, global_step)
        self.tracker.log(global_step, values)

    def checkpoint_point(self, global_step: int) -> None:
        if self.checkpointer is not None:
            self.checkpointer.point(global_step)

    # -- checkpoint state ----------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The run so far: curve, episodes, evaluation cursor (what a resumed run continues)."""
        return {
            "global_step": self.global_step, "next_eval": self.next_eval, "curve": list(self.curve),
            "episodes": {key: list(values) for key, values in self.episodes.items()},
            "last_logged": self.last_logged,
            "last_train_returns": self.last_train_returns, "last_held_out_returns": self.last_held_out_returns,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_step, self.next_eval = int(state["global_step"]), int(state["next_eval"])
        self.curve, self.episodes = list(state["curve"]), {k: list(v) for k, v in state["episodes"].items()}
        self.last_logged = state["last_logged"]
        self.last_train_returns, self.last_held_out_returns = state["last_train_returns"], state["last_held_out_returns"]
        self.progress.update(self.global_step)

    # -- evaluation ----------------------------------------------------------
    def evaluate(self, step: int) -> None:
        """Evaluate the current evaluation policy and record the curve point for ``step``."""
        self.last_train_returns, *held_out_returns = evaluate_together(self._evaluators(), self.agent)
        held_out = dict(zip(self.held_out_evaluators, held_out_returns))
        self.last_held_out_returns = np.stack(list(held_out.values()))
        point = {
            "step": int(step),
            "train_return": float(self.last_train_returns.mean()),
            "held_out_return": float(self.last_held_out_returns.mean()),
            "held_out": {context: float(returns.mean()) for context, returns in held_out.items()},
        }
        if records_modes(self.agent):
            point["modes"] = {mode: self._evaluate_mode(mode) for mode in EVAL_MODES}
        self.curve.append(point)
        self.next_eval += 1
        if self.next_eval == len(self.eval_steps) and self.policy_path is not None:
            self.agent.save(self.policy_path)  # the policy of the last curve point, not of later updates
        self.progress.set_eval(point["train_return"], step)
        self.tracker.log(step, {
            "eval/train_return": point["train_return"],
            "eval/held_out_return": point["held_out_return"],
            **{f"eval/held_out/{context}": value for context, value in point["held_out"].items()},
            **{f"eval/{mode}/{split}": value for mode, splits in point.get("modes", {}).items() for split, value in splits.items()},
        })

    def _evaluate_mode(self, mode: str) -> dict[str, float]:
        """Mean return of the protocol's ``mode`` on the training split (``train``) and each held-out context."""
        returns = evaluate_together(self._evaluators(), self.agent, mode)
        return {split: float(values.mean()) for split, values in zip([TRAIN, *self.held_out_evaluators], returns)}

    def _evaluators(self) -> list[Evaluator]:
        """The training split's evaluator, then each held-out context's."""
        return [self.train_evaluator, *self.held_out_evaluators.values()]

    def close(self) -> None:
        self.train_evaluator.close()
        for evaluator in self.held_out_evaluators.values():
            evaluator.close()
