"""``reward=llm_judge``: a frozen LLM judges each step (Kwon et al. 2023, "Reward Design with Language Models").

The prompt shows the text observation (``repr=text``'s description of the raw MiniGrid
observation) before and after the agent's action and asks "Did this step bring the agent
closer to the goal?"; the two candidate answers " Yes" and " No" are scored as continuations
(``ActionScorer``: summed token log-probabilities). The reward is

    r = p_yes - 1/2,   p_yes = exp(s_yes) / (exp(s_yes) + exp(s_no)),

so it lies in (-1/2, 1/2) and an undecided judge gives 0. The model is frozen, so a judgement
is a pure function of ``(text before, action, text after)``: it is memoised by that key and
only cache misses run the model (batched per vector-env step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from llmrl_bench.envs.maze_solver import CARDINAL_ACTION_NAMES
from llmrl_bench.errors import ConfigError
from llmrl_bench.llm.settings import LLMModelConfig, as_model_config, autocast_context, check_model_config, check_wired
from llmrl_bench.registry import register
from llmrl_bench.representations.text import MINIGRID_ACTION_NAMES, describer
from llmrl_bench.rewards.base import IndirectConfig, TrainingReward

QUESTION = "Question: Did this step bring the agent closer to the goal? Answer:"
ANSWERS = ("Yes", "No")


@register("reward", "llm_judge")
@dataclass
class LLMJudgeConfig(IndirectConfig):
    """A frozen LLM's yes/no judgement of each step as the reward (``reward=llm_judge``)."""

    _target_: str = "llmrl_bench.rewards.llm_judge.LLMJudgeReward"
    name: str = "llm_judge"
    """Reward name in results."""
    llm: LLMModelConfig = field(default_factory=LLMModelConfig)
    """The judge: the run's top-level ``llm`` (``conf/reward/llm_judge.yaml``)."""
    max_cache_size: int = 1_000_000
    """Judgements kept in the memo (a few hundred bytes each)."""


def judge_prompt(before: str, action: str, after: str) -> str:
    """The question to the judge about one step."""
    return f"Before: {before}\nAction: {action}\nAfter: {after}\n{QUESTION}"


def maze_action_names(actions: str) -> list[str]:
    """The words of the maze's actions (``env.actions``), as the LLM agents show them."""
    if actions == "cardinal":
        return list(CARDINAL_ACTION_NAMES)
    return list(MINIGRID_ACTION_NAMES[: 3 if actions == "navigation" else len(MINIGRID_ACTION_NAMES)])


class LLMJudgeReward(TrainingReward):
    """``p_yes - 1/2`` of the frozen LLM for each step, memoised by text (see the module docstring)."""

    name = "llm_judge"

    def __init__(self, config: LLMJudgeConfig, suite: Any, seed: int):
        super().__init__(config, suite, seed)
        self.llm = as_model_config(config.llm)
        self.describe = describer(suite)
        self.action_names = maze_action_names(getattr(suite, "actions", "all"))
        self.memo: dict[tuple[str, int, str], float] = {}
        self.hits = self.misses = 0
        self._scorer: Any = None

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        super().check_config(cfg)
        from hydra.utils import get_class

        family = get_class(cfg.env._target_).family
        if family != "minigrid":
            raise ConfigError(f"reward=llm_judge needs MiniGrid text observations (env=maze or a MiniGrid env); got env={cfg.env.name}")
        check_wired(cfg.reward.llm, cfg.get("llm"), "reward")
        check_model_config(as_model_config(cfg.reward.llm))
        if cfg.reward.max_cache_size < 0:
            raise ConfigError(f"reward.max_cache_size={cfg.reward.max_cache_size} must be >= 0")

    @property
    def scorer(self) -> Any:
        """The ``ActionScorer`` of the judge, loading the model on first use (shared with other users of it)."""
        if self._scorer is None:
            from llmrl_bench.llm import ActionScorer, load_model

            model, tokenizer = load_model(self.llm.model, device=self.llm.device, dtype=self.llm.dtype)
            self._scorer = ActionScorer(model, tokenizer)
        return self._scorer

    def encode(self, observations: Any, envs: gym.vector.VectorEnv) -> list[str]:
        keys = list(observations)
        return [self.describe(dict(zip(keys, row))) for row in zip(*(observations[key] for key in keys))]

    def rewards(self, before: list[str], actions: np.ndarray, after: list[str]) -> np.ndarray:
        keys = [(b, int(a), n) for b, a, n in zip(before, actions, after)]
        missing = sorted({key for key in keys if key not in self.memo})
        self.hits += len(keys) - sum(key not in self.memo for key in keys)
        self.misses += len(missing)
        if missing:
            for key, p_yes in zip(missing, self.judge(missing)):
                if len(self.memo) < self.config.max_cache_size:
                    self.memo[key] = p_yes
        return np.array([self.memo[key] if key in self.memo else self.judge([key])[0] for key in keys]) - 0.5

    @torch.no_grad()
    def judge(self, keys: list[tuple[str, int, str]]) -> list[float]:
        """``p_yes`` of each ``(text before, action, text after)``."""
        scorer = self.scorer
        prompts = [judge_prompt(before, self.action_names[action], after) for before, action, after in keys]
        with autocast_context(self.llm, scorer.device):
            scores = scorer.score(prompts, list(ANSWERS)).float()
        return scores.softmax(-1)[:, 0].cpu().tolist()

    def provenance(self) -> dict[str, Any]:
        counters = self._scorer.counters.as_dict() if self._scorer is not None else {}
        return {"reward_judge_cache_hit_rate": self.hits / max(self.hits + self.misses, 1),
                "reward_judge_calls": self.misses, **{f"reward_{k}": v for k, v in counters.items()}}
