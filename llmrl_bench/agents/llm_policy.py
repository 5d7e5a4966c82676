"""What the LLM agents share: the ``llm`` config, prompts, a memo of scores and compute accounting.

An LLM agent reads ``repr=text`` observations. Its policy is GLAM's (Carta et al. 2023):
the prompt holds the goal, the observation and the legal actions, and the policy is a
softmax over each candidate action's summed token log-probabilities (``ActionScorer``).

The runner's evaluator hands ``act`` a batch of observations without saying which
episode each belongs to, so prompts carry no history: a prompt is a pure function of the
observation. With weights fixed, equal prompts have equal scores, so :class:`LLMPolicy`
memoises scores by prompt until the weights change. Grid worlds repeat observations all
the time (an agent turning in place, every evaluation replaying the same episodes), so
most steps cost no forward pass; the counters record only forwards actually run.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterator, Sequence

import gymnasium as gym
import numpy as np
import torch

from llmrl_bench.agents.networks import seeded_torch
from llmrl_bench.errors import ConfigError
from llmrl_bench.llm.generation import INSTRUCTION, ActionGenerator, NextTokenMemo
from llmrl_bench.llm.parsing import ParseStage, parse_action
from llmrl_bench.llm.settings import (
    ActionMode, InvalidAction, LLMRunConfig, autocast_context, autocast_name, check_model_config, check_wired, resolve_autocast,
)
from llmrl_bench.representations.text import CARTPOLE_ACTION_NAMES, MINIGRID_ACTION_NAMES, NUM_NAVIGATION_ACTIONS

#: ``llm.eval_sampling``: the evaluation generator's seed is the run's seed plus this.
EVAL_GENERATOR_OFFSET = 1_000_003

#: The ``agent.llm`` options added after the committed LLM runs, at their old behaviour (``IDENTITY_NEUTRAL``).
LLM_IDENTITY_NEUTRAL = {"llm.action_mode": ActionMode.score.value, "llm.invalid_action": InvalidAction.default.value, "llm.format_penalty": 0.0}

#: Prompt goal line for CartPole, whose observations carry no mission.
CARTPOLE_GOAL = "keep the pole upright for as long as possible"


class FineTune(str, Enum):
    """What ``llm_pg`` trains (an Enum, so a typo fails when the config is composed)."""

    full = "full"
    """Every weight of the LLM."""
    lora = "lora"
    """LoRA adapters on the attention and MLP projections (peft)."""
    head = "head"
    """The top ``trained_layers`` decoder layers; the frozen lower layers run once per prompt."""


@dataclass
class LLMConfig(LLMRunConfig):
    """The ``llm`` block of an LLM agent: the model, its sampling temperature and what RL trains.

    The model fields (``model``, ``device``, ``dtype``, ``autocast``) and the action fields
    (``action_mode``, ``invalid_action``, ``format_penalty``) are set at the top level
    (``llm.model=``, ``llm.action_mode=``); ``conf/agent/llm_*.yaml`` wire them here, so a stored config holds the
    effective values. The other fields are the agent's own (``agent.llm.temperature=``).
    """

    temperature: float = 1.0
    """Policy = softmax(scores / temperature) when sampling; 0 acts greedily (zero-shot only)."""
    finetune: FineTune = FineTune.head
    """``llm_pg`` only: ``full``, ``lora`` or ``head`` (top ``trained_layers`` layers)."""
    trained_layers: int = 2
    """``finetune=head``: how many top decoder layers train."""
    lora_rank: int = 8
    """``finetune=lora``: adapter rank."""
    lora_alpha: float = 16.0
    """``finetune=lora``: adapter scale numerator (scale = alpha / rank)."""
    prefix_cache: bool = True
    """Score all candidates from one pass of the shared prompt; false scores every prompt+action sequence on its own (the slow reference)."""
    score_cache: bool = True
    """Reuse the scores of a prompt seen since the weights last changed."""
    eval_sampling: bool = False
    """Evaluate the stochastic policy, softmax(scores / temperature), instead of its argmax.

    A text observation can describe many states alike (a maze corridor), and a memoryless
    argmax then repeats one action in all of them and may loop until the time limit; the
    sampling policy, the one PPO trains, escapes. Evaluation samples with a generator of its
    own (seeded ``seed + EVAL_GENERATOR_OFFSET``), so training draws the same numbers either way."""


#: ``invalid_action=noop_penalty`` acts this listed action when there is one (MiniGrid's no-op).
NOOP_ACTION = "done"


@dataclass
class GeneratedActions:
    """``action_mode=generate``: what a batch of prompts generated and the candidate each acts."""

    choices: np.ndarray
    """(rows,) candidate index acted (the fallback for an invalid output)."""
    token_ids: list[tuple[int, ...]]
    """Generated ids of the attempt acted on (stop token included)."""
    log_probs: torch.Tensor
    """(rows,) their sequence log-probability at the temperature."""
    invalid: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    """(rows,) no listed action parsed (after the retry of ``resample``)."""


def default_actions(num_env_actions: int) -> list[str]:
    """Candidate action strings by action-space size: 7 is MiniGrid, 3 its navigation actions (the maze), 2 is CartPole."""
    if num_env_actions in (len(MINIGRID_ACTION_NAMES), NUM_NAVIGATION_ACTIONS):
        return list(MINIGRID_ACTION_NAMES[:num_env_actions])
    if num_env_actions == len(CARTPOLE_ACTION_NAMES):
        return list(CARTPOLE_ACTION_NAMES)
    raise ValueError(f"no default action names for {num_env_actions} actions; set agent.actions")


def default_goal(actions: Sequence[str]) -> str:
    """The prompt's goal line: CartPole's task; empty for MiniGrid, whose observations end with the mission."""
    return CARTPOLE_GOAL if list(actions) == CARTPOLE_ACTION_NAMES else ""


def as_llm_config(llm: Any) -> LLMConfig:
    """``llm`` (a dataclass, a dict or a DictConfig from Hydra) as an :class:`LLMConfig`."""
    if isinstance(llm, LLMConfig):
        return llm
    from omegaconf import DictConfig, OmegaConf

    values = OmegaConf.to_container(llm, resolve=True) if isinstance(llm, DictConfig) else dict(llm or {})
    values.pop("_target_", None)
    for name, kind in (("finetune", FineTune), ("action_mode", ActionMode), ("invalid_action", InvalidAction)):
        if name in values:
            values[name] = kind(values[name])
    return LLMConfig(**values)


def check_llm_config(llm: LLMConfig, key: str = "agent.llm") -> None:
    """Fail in one line, before any model is loaded, on a model that cannot load or a bad setting.

    Raises:
        llmrl_bench.errors.ConfigError: naming ``<key>.<field>`` (``llm.<field>`` for the model) and the allowed values.
    """
    check_model_config(llm)
    for name in ("temperature", "trained_layers", "lora_rank", "lora_alpha"):
        value = getattr(llm, name)
        if value < 0:
            raise ConfigError(f"{key}.{name}={value} must be >= 0")
    if not np.isfinite(llm.format_penalty) or llm.format_penalty < 0:
        raise ConfigError(f"llm.format_penalty={llm.format_penalty} must be a finite number >= 0")
    if llm.invalid_action == InvalidAction.noop_penalty and llm.format_penalty <= 0:
        raise ConfigError("llm.invalid_action=noop_penalty needs llm.format_penalty > 0 (e.g. 0.1, RAGEN's), got "
                          f"{llm.format_penalty}")
    if llm.action_mode == ActionMode.constrained and not llm.prefix_cache:
        raise ConfigError(f"llm.action_mode=constrained needs {key}.prefix_cache=true (its scores come from the shared-prefix "
                          "forward), got false")
    if llm.eval_sampling and llm.temperature <= 0:
        raise ConfigError(f"{key}.eval_sampling=true needs {key}.temperature > 0, got {llm.temperature}")


def checked_llm_config(cfg: Any) -> LLMConfig:
    """The run's ``agent.llm``, checked (:func:`check_llm_config`) and wired to the top-level ``llm``."""
    check_wired(cfg.agent.llm, cfg.get("llm"), "agent")
    llm = as_llm_config(cfg.agent.llm)
    check_llm_config(llm)
    actions = list(cfg.agent.get("actions") or [])
    if llm.action_mode == ActionMode.constrained:
        for action in actions:
            longer = next((other for other in actions if other != action and other.startswith(action)), None)
            if longer is not None or actions.count(action) > 1:
                raise ConfigError(f"llm.action_mode=constrained: agent.actions lists {action!r} and {longer or action!r}; "
                                  "constrained decoding needs actions that do not start one another")
    return llm


class LLMPolicy:
    """A causal LM as a policy over text actions: prompts, (memoised) scores, sampling, counters.

    Loads the model on first use (``ensure_loaded``), so building an agent is cheap.

    Args:
        llm: the ``llm`` config.
        actions: candidate action strings, in the order the prompt lists them.
        action_ids: the env action of each candidate.
        goal: the prompt's goal line (``""``: none).
        seed: seeds the sampling generator.
        trainable: load a private copy of the weights (``load_model(cached=False)``); else the
            process-wide frozen one, its linears held in the autocast dtype.
    """

    def __init__(
        self, llm: LLMConfig, actions: Sequence[str], action_ids: Sequence[int], goal: str, seed: int, trainable: bool = False
    ):
        self.llm = llm
        self.actions = list(actions)
        self.action_ids = np.asarray(action_ids, np.int64)
        self.goal = goal
        self.trainable = trainable
        self.generator = torch.Generator().manual_seed(seed)
        self.eval_generator = torch.Generator().manual_seed(seed + EVAL_GENERATOR_OFFSET)
        self.model: Any = None
        self.tokenizer: Any = None
        self.scorer: Any = None
        self.scores: dict[str, torch.Tensor] = {}
        """Memo: prompt -> (num_actions,) float32 CPU scores under the current weights."""
        self.score_hits = 0
        self.score_misses = 0
        self.memo = NextTokenMemo()
        """``action_mode=generate``: next-token log-probs by (prompt, prefix) under the current weights."""
        self._action_generator: ActionGenerator | None = None
        self.parse_counts = {stage.value: 0 for stage in ParseStage}
        """Generation attempts per parser stage (a ``resample`` retry is an attempt)."""
        self.invalid_counts = {"train": [0, 0], "eval": [0, 0]}
        """[invalid, acted] generated actions, in training and in evaluation."""
        self.env_steps = 0
        """Env steps acted on (training and evaluation): the denominator of LLM seconds per step."""
        self.score_function: Callable[[list[str]], torch.Tensor] | None = None
        """Scores of prompts under ``no_grad`` in place of the scorer's full forward (``llm_pg``'s fast path)."""

    # ------------------------------------------------------------------ model
    def ensure_loaded(self) -> None:
        if self.model is not None:
            return
        from llmrl_bench.llm import ActionScorer, load_model
        from llmrl_bench.llm.model import resolve_device

        if self.trainable:
            self.model, self.tokenizer = load_model(self.llm.model, device=self.llm.device, dtype=self.llm.dtype, cached=False)
        else:  # every forward runs under self.compute(): hold the frozen weights in its dtype
            frozen_in = resolve_autocast(self.llm.autocast, resolve_device(self.llm.device))
            self.model, self.tokenizer = load_model(self.llm.model, device=self.llm.device, dtype=self.llm.dtype, frozen_in=frozen_in)
        self.scorer = ActionScorer(self.model, self.tokenizer, constrained=self.llm.action_mode == ActionMode.constrained)

    @property
    def device(self) -> torch.device:
        self.ensure_loaded()
        return self.scorer.device

    def compute(self) -> contextlib.AbstractContextManager:
        """The precision context of every LLM forward (``llm.autocast``)."""
        return autocast_context(self.llm, self.device)

    def weights_changed(self) -> None:
        """Forget memoised scores; call after every update of the weights."""
        self.scores.clear()
        self.memo.clear()

    @property
    def generates(self) -> bool:
        return self.llm.action_mode == ActionMode.generate

    def action_generator(self) -> ActionGenerator:
        """The decoder of ``action_mode=generate`` over the current model (LoRA may wrap it)."""
        self.ensure_loaded()
        if self._action_generator is None or self._action_generator.model is not self.model:
            memo = self.memo if self.llm.score_cache else None
            self._action_generator = ActionGenerator(self.model, self.tokenizer, self.scorer.counters, memo)
            self.max_new_tokens = self._action_generator.max_new_tokens(self.actions, self.scorer.candidate_prefix)
        return self._action_generator

    # ---------------------------------------------------------------- prompts
    def prompt(self, observation: str) -> str:
        from llmrl_bench.llm import build_prompt

        instruction = INSTRUCTION if self.generates else ""
        return build_prompt(self.goal, observation, self.actions, history_length=0, instruction=instruction)

    def prompts(self, observations: Sequence[str]) -> list[str]:
        if isinstance(observations, str):
            raise TypeError("observations must be a batch (a list of strings)")
        return [self.prompt(str(o)) for o in observations]

    # ---------------------------------------------------------------- scoring
    def score(self, prompts: Sequence[str]) -> torch.Tensor:
        """(batch, num_actions) float32 CPU scores; memoised prompts run no forward."""
        self.ensure_loaded()
        if not prompts:  # every env of a batch may be resetting at once
            return torch.zeros((0, len(self.actions)))
        if not self.llm.score_cache:
            return self._score(prompts)
        missing = list(dict.fromkeys(p for p in prompts if p not in self.scores))
        self.score_misses += len(missing)
        self.score_hits += len(prompts) - len(missing)
        if missing:
            self.scores.update(zip(missing, self._score(missing)))
        return torch.stack([self.scores[p] for p in prompts])

    def _score(self, prompts: Sequence[str]) -> torch.Tensor:
        if self.score_function is not None:
            return self.score_function(list(prompts)).float().cpu()
        with torch.no_grad(), self.compute():
            if self.llm.prefix_cache:
                scores = self.scorer.score(prompts, self.actions)
            else:
                scores = self.scorer.score_full_sequences(prompts, self.actions)
        return scores.float().cpu()

    def choose(self, scores: torch.Tensor, greedy: bool) -> np.ndarray:
        """Candidate indices: argmax of ``scores`` (greedy or temperature 0), else a sample of softmax(scores / temperature)."""
        if greedy or self.llm.temperature == 0:
            return scores.argmax(-1).numpy().astype(np.int64)
        return self.sample(scores, self.generator)

    def sample(self, scores: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        """Candidate indices drawn from softmax(scores / temperature) with ``generator``."""
        probs = (scores / self.llm.temperature).softmax(-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1).numpy().astype(np.int64)

    def act(self, observations: Sequence[str], greedy: bool = True) -> np.ndarray:
        """Env actions for a batch of text observations.

        ``greedy=True`` is the evaluation policy: the argmax, or with ``llm.eval_sampling`` a
        sample from the evaluation generator.
        """
        self.env_steps += len(observations)
        if self.generates:
            if greedy and self.llm.eval_sampling:
                generator = self.eval_generator
            else:
                generator = None if greedy or self.llm.temperature == 0 else self.generator
            return self.action_ids[self.generate(self.prompts(observations), generator, evaluation=greedy).choices]
        scores = self.score(self.prompts(observations))
        if greedy and self.llm.eval_sampling:
            return self.action_ids[self.sample(scores, self.eval_generator)]
        return self.action_ids[self.choose(scores, greedy)]

    def action_probabilities(self, observations: Sequence[str]) -> np.ndarray:
        """``(batch, max(action_ids) + 1)`` softmax(scores / temperature) placed on the env actions (one-hot argmax
        at temperature 0): the distribution the evaluation protocol plays. Score mode only: generated text has
        no explicit distribution over actions."""
        if self.generates:
            raise ValueError("llm.action_mode=generate has no explicit action distribution")
        self.env_steps += len(observations)
        scores = self.score(self.prompts(observations))
        if self.llm.temperature == 0:
            candidates = torch.nn.functional.one_hot(scores.argmax(-1), len(self.actions)).double()
        else:
            candidates = (scores.double() / self.llm.temperature).softmax(-1)
        probabilities = np.zeros((len(observations), int(self.action_ids.max()) + 1))
        probabilities[:, self.action_ids] = candidates.numpy()
        return probabilities

    def act_in_mode(self, observations: Sequence[str], mode: str) -> np.ndarray:
        """Generate mode's protocol modes: ``greedy`` decoding, or ``sampled`` decoding with the evaluation generator."""
        self.env_steps += len(observations)
        generator = self.eval_generator if mode == "sampled" and self.llm.temperature > 0 else None
        return self.action_ids[self.generate(self.prompts(observations), generator, evaluation=True).choices]

    # ------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[str], generator: torch.Generator | None, evaluation: bool) -> GeneratedActions:
        """Generate and parse an action per prompt (greedy when ``generator`` is None); counts the parse stages.

        An invalid output acts the fallback of ``llm.invalid_action``; ``resample`` first retries
        it once by sampling (with ``generator``, or the evaluation generator when greedy; not at
        temperature 0, where the retry would repeat the output).
        """
        decoder = self.action_generator()
        temperature = self.llm.temperature
        with self.compute():
            output = decoder.generate(prompts, self.max_new_tokens, temperature, generator)
        token_ids, log_probs = list(output.token_ids), output.log_probs.clone()
        parsed = [parse_action(text, self.actions) for text in output.texts]
        retry = [i for i, p in enumerate(parsed) if p.index is None]
        if retry and self.llm.invalid_action == InvalidAction.resample and temperature > 0:
            self._count_stages(parsed)
            with self.compute():
                second = decoder.generate([prompts[i] for i in retry], self.max_new_tokens, temperature,
                                          generator or self.eval_generator)
            for row, i in enumerate(retry):
                token_ids[i], log_probs[i] = second.token_ids[row], second.log_probs[row]
                parsed[i] = parse_action(second.texts[row], self.actions)
            self._count_stages([parsed[i] for i in retry])
        else:
            self._count_stages(parsed)
        invalid = np.array([p.index is None for p in parsed], bool)
        counts = self.invalid_counts["eval" if evaluation else "train"]
        counts[0] += int(invalid.sum())
        counts[1] += len(parsed)
        choices = np.array([self.fallback_index if p.index is None else p.index for p in parsed], np.int64)
        return GeneratedActions(choices, token_ids, log_probs, invalid)

    @property
    def fallback_index(self) -> int:
        """The candidate an invalid output acts: the no-op (``noop_penalty``, when listed), else the first listed action."""
        if self.llm.invalid_action == InvalidAction.noop_penalty and NOOP_ACTION in self.actions:
            return self.actions.index(NOOP_ACTION)
        return 0

    def _count_stages(self, parsed: Sequence[Any]) -> None:
        for p in parsed:
            self.parse_counts[p.stage.value] += 1

    # ---------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Sampling generators, memoised scores and compute counters (the weights are the agent's)."""
        counters = self.scorer.counters
        return {
            "generator": self.generator.get_state(),
            "eval_generator": self.eval_generator.get_state(),
            "scores": dict(self.scores),
            "score_hits": self.score_hits,
            "score_misses": self.score_misses,
            "env_steps": self.env_steps,
            "memo": dict(self.memo.entries),
            "memo_counts": [self.memo.hits, self.memo.misses],
            "parse_counts": dict(self.parse_counts),
            "invalid_counts": {key: list(value) for key, value in self.invalid_counts.items()},
            "counters": {"llm_tokens": counters.llm_tokens, "llm_flops": counters.llm_flops, "llm_seconds": counters.llm_seconds},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ensure_loaded()
        self.generator.set_state(state["generator"])
        self.eval_generator.set_state(state["eval_generator"])
        self.scores = dict(state["scores"])
        self.score_hits, self.score_misses, self.env_steps = state["score_hits"], state["score_misses"], state["env_steps"]
        if "memo" in state:  # checkpoints from before action_mode=generate lack these
            self.memo.entries = dict(state["memo"])
            self.memo.hits, self.memo.misses = state["memo_counts"]
            self.parse_counts = dict(state["parse_counts"])
            self.invalid_counts = {key: list(value) for key, value in state["invalid_counts"].items()}
        for name, value in state["counters"].items():
            setattr(self.scorer.counters, name, value)

    # ------------------------------------------------------------- accounting
    def provenance(self) -> dict[str, float | str]:
        """The compute numbers of :meth:`charts` and where the model ran: ``llm_device``, ``llm_autocast`` (``auto`` resolved)."""
        if self.scorer is None:
            return {}
        return {**self.counts(), "llm_device": str(self.device), "llm_autocast": autocast_name(self.llm, self.device)}

    def counts(self) -> dict[str, float]:
        """``llm_tokens``, ``llm_flops``, ``llm_params``, ``llm_seconds``, per-env-step seconds, memo hit rate."""
        if self.scorer is None:
            return {}
        counters = self.scorer.counters.as_dict()
        lookups = self.score_hits + self.score_misses
        counts = {
            **counters,
            "llm_env_steps": self.env_steps,
            "llm_seconds_per_env_step": counters["llm_seconds"] / max(self.env_steps, 1),
            "llm_score_cache_hit_rate": self.score_hits / lookups if lookups else 0.0,
        }
        return counts | self.action_counts()

    def action_counts(self) -> dict[str, float]:
        """``llm_invalid_action_rate`` (0 in score mode: every action is a listed one), per phase, and the parse stages."""
        (train_invalid, train_acted), (eval_invalid, eval_acted) = self.invalid_counts["train"], self.invalid_counts["eval"]
        counts = {"llm_invalid_action_rate": (train_invalid + eval_invalid) / max(train_acted + eval_acted, 1)}
        if self.generates:
            lookups = self.memo.hits + self.memo.misses
            counts |= {
                "llm_train_invalid_action_rate": train_invalid / max(train_acted, 1),
                "llm_eval_invalid_action_rate": eval_invalid / max(eval_acted, 1),
                "llm_generation_cache_hit_rate": self.memo.hits / lookups if lookups else 0.0,
                **{f"llm_parse_{stage}": count for stage, count in self.parse_counts.items()},
            }
        return counts

    def charts(self) -> dict[str, float]:
        """The compute numbers under ``charts/`` for W&B."""
        return {f"charts/{key}": float(value) for key, value in self.counts().items()}


def candidate_actions(
    actions: Sequence[str] | None, action_ids: Sequence[int] | None, goal: str | None, action_space: gym.Space
) -> tuple[list[str], list[int], str]:
    """The prompt's candidate strings, the env action of each, and the goal line, defaults filled in.

    ``actions`` None: the env family's names in env order (by action count). ``action_ids``
    None: ``0..len(actions)-1``. A subset or another order of the env's actions is allowed.
    """
    if not isinstance(action_space, gym.spaces.Discrete) or int(action_space.start) != 0:
        raise TypeError(f"LLM agents need a Discrete(n) action space starting at 0, got {action_space}")
    n = int(action_space.n)
    actions = list(actions) if actions is not None else default_actions(n)
    action_ids = list(action_ids) if action_ids is not None else list(range(len(actions)))
    if not actions or len(set(actions)) != len(actions):
        raise ValueError(f"actions={actions} must be distinct, non-empty strings")
    if len(action_ids) != len(actions) or len(set(action_ids)) != len(action_ids) or not all(0 <= i < n for i in action_ids):
        raise ValueError(f"action_ids={action_ids} must be {len(actions)} distinct env actions in 0..{n - 1}, one per action")
    return actions, action_ids, goal if goal is not None else default_goal(actions)
