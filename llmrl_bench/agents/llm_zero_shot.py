"""``llm_zero_shot``: a pretrained LLM acting through GLAM action scores, with no learning.

The policy is the argmax of the candidate actions' scores (``llm.temperature=0``, the
default) or a sample of softmax(scores / temperature). ``learn`` only plays the budget's
env steps with that policy, so the runner evaluates it at the same points as every other
agent and all four metrics exist; the weights never change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

import gymnasium as gym
import numpy as np

from llmrl_bench.registry import register
from llmrl_bench.agents.base import EnvFactory, TrainingHooks
from llmrl_bench.agents.llm_policy import (
    LLM_IDENTITY_NEUTRAL,
    LLMConfig,
    LLMPolicy,
    candidate_actions,
    checked_llm_config,
)


@register("agent", "llm_zero_shot")
@dataclass
class LLMZeroShotConfig:
    """Zero-shot LLM agent settings."""

    #: Options added after the committed results, at the value that reproduces them (registry.identity_view).
    IDENTITY_NEUTRAL: ClassVar[dict] = LLM_IDENTITY_NEUTRAL
    _target_: str = "llmrl_bench.agents.llm_zero_shot.LLMZeroShot"
    llm: LLMConfig = field(default_factory=lambda: LLMConfig(temperature=0.0))
    """The language model and its sampling temperature (``finetune`` is unused)."""
    actions: Optional[list[str]] = None
    """Candidate action strings, in the order the prompt lists them; None: the env family's names, in env order."""
    action_ids: Optional[list[int]] = None
    """The env action of each candidate; None: ``0..len(actions)-1``."""
    goal: Optional[str] = None
    """Goal line of the prompt; None: none for MiniGrid (the mission ends each observation), the task for CartPole."""
    n_envs: int = 16
    """Parallel envs scored as one batch while playing the budget."""
    log_every_steps: int = 1024
    """Env steps between two compute-accounting logs."""


class LLMZeroShot:
    """A frozen pretrained LLM choosing among candidate action strings."""

    name = "llm_zero_shot"
    supported_reprs = ("text",)

    def __init__(self, config: LLMZeroShotConfig, observation_space: gym.Space, action_space: gym.Space, seed: int):
        self.config = config
        cfg = self.config
        self.actions, action_ids, goal = candidate_actions(cfg.actions, cfg.action_ids, cfg.goal, action_space)
        self.seed = seed
        self.policy = LLMPolicy(cfg.llm, self.actions, action_ids, goal, seed)
        self.global_step = 0

    @staticmethod
    def check_config(cfg: Any) -> None:
        """One-line errors for a model that cannot load or an invalid ``llm`` setting."""
        checked_llm_config(cfg)

    @property
    def explicit_action_distribution(self) -> bool:
        """Score mode has one (``action_probabilities``); generate mode's is implicit in the generated text."""
        return not self.policy.generates

    def action_probabilities(self, observations: Any) -> np.ndarray:
        """The policy's distribution over env actions (score mode; see ``LLMPolicy.action_probabilities``)."""
        return self.policy.action_probabilities(list(observations))

    def act_in_mode(self, observations: Any, mode: str) -> np.ndarray:
        """Generate mode's ``greedy`` or ``sampled`` evaluation (``LLMPolicy.act_in_mode``)."""
        return self.policy.act_in_mode(list(observations), mode)

    def act(self, observations: Any, greedy: bool = True) -> np.ndarray:
        """Argmax of the scores (greedy; a sample with ``llm.eval_sampling``), else a temperature sample."""
        return self.policy.act(list(observations), greedy)

    def learn(self, envs: EnvFactory, total_steps: int, hooks: TrainingHooks) -> None:
        """Play the policy (``greedy`` when ``llm.temperature=0``) for ``total_steps`` env steps."""
        cfg = self.config
        vec_env = envs.make_vec(cfg.n_envs)
        observations, _ = vec_env.reset(seed=self.seed)
        autoreset = np.zeros(cfg.n_envs, bool)  # NEXT_STEP autoreset: this step() only resets the env
        episodic_return = np.zeros(cfg.n_envs)
        episodic_length = np.zeros(cfg.n_envs, np.int64)
        last_logged = self.global_step
        while self.global_step < total_steps:
            actions = np.zeros(cfg.n_envs, np.int64)
            acting = np.flatnonzero(~autoreset)
            actions[acting] = self.policy.act([observations[i] for i in acting], greedy=False)
            observations, reward, terminated, truncated, _ = vec_env.step(actions)
            done = np.logical_or(terminated, truncated)
            self.global_step += len(acting)
            episodic_return += np.where(autoreset, 0.0, reward)
            episodic_length += ~autoreset
            for i in np.flatnonzero(done & ~autoreset):
                hooks.on_episode(self.global_step, float(episodic_return[i]), int(episodic_length[i]))
            episodic_return[done], episodic_length[done] = 0.0, 0
            autoreset = done
            if self.global_step - last_logged >= cfg.log_every_steps or self.global_step >= total_steps:
                last_logged = self.global_step
                hooks.log(self.global_step, self.policy.charts())
            hooks.on_step(self.global_step)
        vec_env.close()

    def provenance(self) -> dict[str, float]:
        """Compute spent in the LLM (see ``LLMPolicy.provenance``)."""
        return self.policy.provenance()

    def save(self, path: Path) -> None:
        """No weights change: the file names the model and the prompt parts."""
        policy = self.policy
        state = {"model": self.config.llm.model, "actions": policy.actions, "action_ids": policy.action_ids.tolist(), "goal": policy.goal}
        Path(path).write_text(json.dumps(state, indent=2))

    def load(self, path: Path) -> None:
        state = json.loads(Path(path).read_text())
        if state["model"] != self.config.llm.model:
            raise ValueError(f"{path} holds a policy of llm.model={state['model']!r}, not {self.config.llm.model!r}")
        self.actions = self.policy.actions = list(state["actions"])
        self.policy.action_ids = np.asarray(state["action_ids"], np.int64)
        self.policy.goal = state["goal"]
        self.policy.weights_changed()
