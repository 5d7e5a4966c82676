"""``llm_pg``: an LLM policy fine-tuned online with PPO, as in GLAM (Carta et al. 2023).

The policy is a softmax over the candidate actions' summed token log-probabilities
(``ActionScorer``); a value head (an MLP) reads the final hidden state of the prompt's last
token. One file, one loop, CleanRL style: collect ``n_steps`` batched steps into
preallocated storage ``(n_steps, n_envs)``, compute GAE with a visible reversed loop, then
``n_epochs`` of clipped-PPO minibatch updates.

What trains (``llm.finetune``):

- ``head`` (default): the top ``llm.trained_layers`` decoder layers and the value head. The
  frozen lower layers run once per prompt during collection and their output is kept, so
  the update epochs run only the top layers.
- ``lora``: LoRA adapters (peft) on every linear projection, and the value head.
- ``full``: every weight, and the value head.

Prompts are a pure function of the observation (see ``llm_policy``), so a rollout keeps one
entry per distinct prompt (scores, value, lower hidden states) and a minibatch runs each of
its distinct prompts once. Vector envs autoreset in NEXT_STEP mode, handled as in ``ppo.py``:
the step after a done is stored with ``valid=False``, its observation is the episode's final
one, so ``values[t + 1]`` bootstraps a truncated step ``t``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

import gymnasium as gym
import numpy as np
import torch

from llmrl_bench.registry import register
from llmrl_bench.errors import ConfigError
from llmrl_bench.agents.base import EnvFactory, TrainingHooks
from llmrl_bench.agents.llm_policy import (
    FineTune,
    LLM_IDENTITY_NEUTRAL,
    LLMConfig,
    LLMPolicy,
    candidate_actions,
    checked_llm_config,
    seeded_torch,
)
from llmrl_bench.agents.networks import mlp
from llmrl_bench.llm.model import hold_frozen_weights_in, map_large_blocks, return_freed_memory
from llmrl_bench.llm.settings import resolve_autocast
from llmrl_bench.agents.ppo_math import explained_variance, gae, ppo_diagnostics, ppo_losses


@register("agent", "llm_pg")
@dataclass
class LLMPGConfig:
    """PPO on an LLM policy; defaults are for the CPU (``finetune=head``, small rollouts)."""

    #: Options added after the committed results, at the value that reproduces them (registry.identity_view).
    IDENTITY_NEUTRAL: ClassVar[dict] = {**LLM_IDENTITY_NEUTRAL, "fast_path": False, "low_memory": False}
    _target_: str = "llmrl_bench.agents.llm_pg.LLMPG"
    llm: LLMConfig = field(default_factory=LLMConfig)
    """The language model, the policy temperature and what trains (``finetune``)."""
    actions: Optional[list[str]] = None
    """Candidate action strings, in the order the prompt lists them; None: the env family's names, in env order."""
    action_ids: Optional[list[int]] = None
    """The env action of each candidate; None: ``0..len(actions)-1``."""
    goal: Optional[str] = None
    """Goal line of the prompt; None: none for MiniGrid (the mission ends each observation), the task for CartPole."""
    n_envs: int = 16
    """Parallel envs; their prompts are scored as one batch."""
    n_steps: int = 32
    """Batched steps per rollout; a rollout holds ``n_steps * n_envs`` transitions."""
    batch_size: int = 128
    """Transitions per minibatch."""
    n_epochs: int = 4
    """Passes over each rollout."""
    learning_rate: float = 1e-4
    """Adam step size of the LLM weights that train."""
    value_learning_rate: float = 1e-3
    """Adam step size of the value head."""
    anneal_lr: bool = False
    """Decay both learning rates linearly to 0 over the budget."""
    clip_range: float = 0.2
    """PPO ratio clip."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE bias/variance trade-off."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip over every trained parameter."""
    normalize_advantage: bool = False
    """Standardise advantages per minibatch; off by default: with sparse rewards most rollouts hold
    no reward, and standardising their near-zero advantages turns value noise into policy updates."""
    value_net_arch: list[int] = field(default_factory=lambda: [256])
    """Hidden layer sizes of the value head."""
    value_grad_to_llm: bool = False
    """Let the value loss train the LLM layers too (GLAM); off: the value head reads detached
    hidden states, so early value errors never move the policy."""
    novelty_bonus: float = 0.0
    """Episodic exploration bonus: this reward is added, for training only, to every step whose
    next text observation is new in the episode (0: off). Logged returns stay the env's."""
    fast_path: bool = True
    """``finetune=head``, ``action_mode=score``: the same algorithm, faster (docs/llm_agents.md#speed).
    The frozen layers' output is kept per prompt for the whole run (the frozen weights held in the
    autocast dtype), and the trained layers run with eager attention, the last one only where its
    output is read. Equal to false's results to float rounding; false is the earlier path, kept for
    the speed benchmark (``tests/benchmarks/test_llm_pg_speed.py``)."""
    low_memory: bool = False
    """Trade time for memory, with the same numbers bit for bit (true still gets its own run_id, as
    every non-default setting does): the fast path keeps only the trained layers' and the head's
    inputs for the backward pass and recomputes the rest there (activation checkpointing), and the
    process serves every block of 1 MiB or more from its own mapping, so freed activations leave
    at once (``llm.model.map_large_blocks``; process-wide, it stays for later runs of a sweep
    worker). Measured in docs/llm_agents.md#memory."""


class LLMPG:
    """GLAM's PPO fine-tuning of an LLM policy over candidate action strings."""

    name = "llm_pg"
    supported_reprs = ("text",)
    resumable = True

    def __init__(self, config: LLMPGConfig, observation_space: gym.Space, action_space: gym.Space, seed: int):
        self.config = config
        cfg = self.config
        if cfg.llm.temperature <= 0:
            raise ValueError(f"llm.temperature={cfg.llm.temperature} must be > 0 for llm_pg")
        self.actions, action_ids, goal = candidate_actions(cfg.actions, cfg.action_ids, cfg.goal, action_space)
        self.seed = seed
        self.policy = LLMPolicy(cfg.llm, self.actions, action_ids, goal, seed, trainable=True)
        self.rng = np.random.default_rng(seed)  # minibatch shuffling
        self.value_head: torch.nn.Module | None = None  # built with the model, on first use
        self.optimizer: torch.optim.Optimizer | None = None
        self.global_step = 0
        self.loop: dict | None = None  # between rollouts: vec_env, observations, autoreset, episode counters
        self.frozen: _FrozenStates | None = None  # fast_path: the frozen layers' output per prompt

    @staticmethod
    def check_config(cfg: Any) -> None:
        """One-line errors for a model that cannot load or an invalid ``llm`` setting."""
        temperature = cfg.agent.llm.temperature
        if temperature <= 0:
            raise ConfigError(f"agent.llm.temperature={temperature} must be > 0 for llm_pg (it is the policy's softmax temperature)")
        checked_llm_config(cfg)

    # ------------------------------------------------------------------ model
    def _build(self) -> None:
        """Load the model, choose what trains, build the value head and the optimizer (once)."""
        if self.value_head is not None:
            return
        cfg, policy = self.config, self.policy
        if cfg.low_memory:
            map_large_blocks()
        policy.ensure_loaded()
        finetune = cfg.llm.finetune
        with seeded_torch(self.seed):
            if finetune == FineTune.lora:
                from peft import LoraConfig, get_peft_model

                from llmrl_bench.llm import ActionScorer

                lora = LoraConfig(r=cfg.llm.lora_rank, lora_alpha=cfg.llm.lora_alpha, lora_dropout=0.0, target_modules="all-linear")
                policy.model = get_peft_model(policy.model, lora)
                policy.scorer = ActionScorer(policy.model, policy.tokenizer, counters=policy.scorer.counters,
                                             constrained=policy.scorer.constrained)
            hidden_size = policy.scorer.decoder.embed_tokens.embedding_dim
            # Near-zero initial values: with sparse rewards the first advantages are then near zero, not noise.
            self.value_head = mlp(hidden_size, cfg.value_net_arch, 1, "tanh", orthogonal_init=True, out_gain=0.01)
        self.value_head.to(policy.device)
        model = policy.model
        if finetune == FineTune.head:
            num_layers = policy.scorer.num_layers
            if not 0 <= cfg.llm.trained_layers <= num_layers:
                raise ValueError(f"llm.trained_layers={cfg.llm.trained_layers} not in [0, {num_layers}] for {cfg.llm.model}")
            split = num_layers - cfg.llm.trained_layers
            model.requires_grad_(False)
            for layer in policy.scorer.decoder.layers[split:]:
                layer.requires_grad_(True)
        elif finetune == FineTune.full:
            model.requires_grad_(True)
        model.eval()  # no dropout: the policy that collects is the policy that trains
        if self._fast or (finetune == FineTune.head and policy.generates):  # every forward runs under policy.compute()
            dtype = resolve_autocast(cfg.llm.autocast, policy.device)
            if dtype is not None:
                hold_frozen_weights_in(model, dtype)
        if self._fast:
            self.frozen = _FrozenStates(self)
            policy.score_function = self._scores
        self.llm_parameters = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(
            [
                {"params": self.llm_parameters, "lr": cfg.learning_rate},
                {"params": list(self.value_head.parameters()), "lr": cfg.value_learning_rate},
            ],
            eps=1e-5,
        )

    @property
    def _fast(self) -> bool:
        """``fast_path`` applies: ``finetune=head`` in score mode."""
        cfg = self.config
        return cfg.fast_path and cfg.llm.finetune == FineTune.head and not self.policy.generates

    def _scores(self, prompts: list[str]) -> torch.Tensor:
        """The fast path's scores under ``no_grad`` (the policy's scoring, evaluation included)."""
        with torch.no_grad():
            return self._forward(prompts)[0]

    def _forward(self, prompts: list[str], lower_rows: list[torch.Tensor] | None = None, keep_lower: bool = False):
        """Scores (n, A), values (n,) and, if ``keep_lower``, each prompt's lower hidden states.

        Grad follows the caller's mode. With ``finetune=head``, ``lower_rows`` (from an earlier
        ``keep_lower`` call, or the fast path's run-wide table) replace the frozen layers: only the top layers run.
        """
        policy = self.policy
        scorer, k = policy.scorer, self.config.llm.trained_layers
        batch = scorer.encode(prompts, self.actions)
        kept = None
        with policy.compute():
            if self.config.llm.finetune != FineTune.head:
                output = scorer.forward(batch)
            else:
                if lower_rows is None and self._fast:
                    lower_rows = self.frozen.rows(prompts)
                if lower_rows is None:
                    lower = scorer.forward_lower(batch, k)
                else:
                    lower = _repack(lower_rows, batch.input_ids.shape[1])
                output = scorer.forward_upper(batch, lower, k, needed_only=self._fast, recompute=self.config.low_memory)
                if keep_lower and self._fast:
                    kept = lower_rows
                elif keep_lower:
                    kept = _real_token_rows(batch, lower)
        return output.scores.float(), self._values(output.prompt_hidden), kept

    def _values(self, prompt_hidden: torch.Tensor) -> torch.Tensor:
        prompt_hidden = prompt_hidden.float()
        return self.value_head(prompt_hidden if self.config.value_grad_to_llm else prompt_hidden.detach()).squeeze(-1)

    def _forward_generated(self, prompts: list[str], candidate_ids: list[list[tuple[int, ...]]],
                           lower: "_GeneratedRows | None" = None):
        """``action_mode=generate``: sequence log-probs and summed token entropies (n, C) of each prompt's
        generated ids at the temperature (0 where a prompt has fewer than C), and values (n,). With
        ``finetune=head`` the frozen layers' output comes from ``lower`` (the rollout's table, the fast
        path) or runs again here under ``no_grad``."""
        policy, k, temperature = self.policy, self.config.llm.trained_layers, self.config.llm.temperature
        batch = policy.scorer.encode_ids(prompts, [[list(ids) for ids in row] for row in candidate_ids])
        with policy.compute():
            if self.config.llm.finetune != FineTune.head:
                output = policy.scorer.forward(batch, temperature, token_stats=True)
            elif lower is None:
                output = policy.scorer.forward_upper(batch, policy.scorer.forward_lower(batch, k), k, temperature,
                                                     token_stats=True)
            else:
                output = policy.scorer.forward_upper(batch, lower.assemble(batch, prompts, candidate_ids), k, temperature,
                                                     token_stats=True, needed_only=not self.config.low_memory)
        return output.scores.float(), output.entropies.float(), self._values(output.prompt_hidden)

    # ------------------------------------------------------------------ acting
    @property
    def explicit_action_distribution(self) -> bool:
        """Score mode has one (``action_probabilities``); generate mode's is implicit in the generated text."""
        return not self.policy.generates

    def action_probabilities(self, observations: Any) -> np.ndarray:
        """The policy's distribution over env actions (score mode; see ``LLMPolicy.action_probabilities``)."""
        self._build()
        return self.policy.action_probabilities(list(observations))

    def act_in_mode(self, observations: Any, mode: str) -> np.ndarray:
        """Generate mode's ``greedy`` or ``sampled`` evaluation (``LLMPolicy.act_in_mode``)."""
        self._build()
        return self.policy.act_in_mode(list(observations), mode)

    def act(self, observations: Any, greedy: bool = True) -> np.ndarray:
        """Argmax of the scores (greedy; a sample with ``llm.eval_sampling``), else a sample of softmax(scores / temperature)."""
        self._build()
        return self.policy.act(list(observations), greedy)

    # ---------------------------------------------------------------- training
    def learn(self, envs: EnvFactory, total_steps: int, hooks: TrainingHooks) -> None:
        """Train until ``global_step >= total_steps`` (the last rollout is finished and used).
        After ``load_state_dict`` of a mid-training state, continues that training."""
        self._build()
        cfg, policy = self.config, self.policy
        num_steps, num_envs, temperature = cfg.n_steps, cfg.n_envs, cfg.llm.temperature

        # Rollout storage, shapes (num_steps, num_envs); prompts index the rollout's distinct
        # prompts, actions are candidate indices (``policy.action_ids`` maps them to env actions).
        prompt_index = np.zeros((num_steps, num_envs), np.int64)
        actions = np.zeros((num_steps, num_envs), np.int64)
        logprobs = np.zeros((num_steps, num_envs), np.float32)
        rewards = np.zeros((num_steps, num_envs), np.float32)
        terminateds = np.zeros((num_steps, num_envs), np.float32)
        dones = np.zeros((num_steps, num_envs), np.float32)
        values = np.zeros((num_steps, num_envs), np.float32)
        valid = np.zeros((num_steps, num_envs), bool)
        sequences: list[list[tuple[int, ...]]] = [[()] * num_envs for _ in range(num_steps)]  # action_mode=generate

        if self.loop is None:
            self.loop = self._start_loop(envs)
        loop, vec_env = self.loop, self.loop["vec_env"]
        start_time, start_step = time.perf_counter(), self.global_step

        while self.global_step < total_steps:
            hooks.checkpoint_point(self.global_step)
            # Rollout-local names; the arrays and ``seen`` change in place, the rest is written back below.
            observations, autoreset, seen = loop["observations"], loop["autoreset"], loop["seen"]
            episodic_return, episodic_length = loop["episodic_return"], loop["episodic_length"]
            progress = self.global_step / total_steps
            for group, base in zip(self.optimizer.param_groups, (cfg.learning_rate, cfg.value_learning_rate)):
                group["lr"] = base * (1.0 - progress) if cfg.anneal_lr else base
            rollout = _RolloutPrompts(self)

            for step in range(num_steps):
                prompts = policy.prompts(observations)
                index = rollout.index(prompts)
                prompt_index[step] = index
                valid[step] = ~autoreset
                invalid = np.zeros(num_envs, bool)
                if policy.generates:
                    acting = np.flatnonzero(~autoreset)
                    generated = policy.generate([prompts[i] for i in acting], policy.generator, evaluation=False)
                    actions[step, acting], logprobs[step, acting] = generated.choices, generated.log_probs.numpy()
                    invalid[acting] = generated.invalid
                    for row, i in enumerate(acting):
                        sequences[step][i] = generated.token_ids[row]
                else:
                    logits = rollout.scores[index] / temperature
                    action = torch.multinomial(logits.softmax(-1), 1, generator=policy.generator).squeeze(1)
                    actions[step] = action.numpy()
                    logprobs[step] = logits.log_softmax(-1).gather(1, action[:, None]).squeeze(1).numpy()
                values[step] = rollout.values[index].numpy()

                observations, reward, terminated, truncated, _ = vec_env.step(policy.action_ids[actions[step]])
                done = np.logical_or(terminated, truncated)
                acted = num_envs - int(autoreset.sum())
                self.global_step += acted
                policy.env_steps += acted
                episodic_return += reward
                episodic_length += ~autoreset
                rewards[step] = reward - cfg.llm.format_penalty * invalid  # training only: returns stay the env's
                if cfg.novelty_bonus:
                    bonus = novelty_bonus(observations, autoreset, seen, cfg.novelty_bonus)
                    rewards[step] += bonus
                    loop["intrinsic_sum"] += float(bonus.sum())
                    loop["intrinsic_count"] += acted
                terminateds[step] = terminated
                dones[step] = done
                for i in np.flatnonzero(done):
                    hooks.on_episode(self.global_step, float(episodic_return[i]), int(episodic_length[i]))
                    episodic_return[i], episodic_length[i] = 0.0, 0
                autoreset = done
                hooks.on_step(self.global_step)
            loop.update(observations=observations, autoreset=autoreset)

            next_index = rollout.index(policy.prompts(observations))  # may score new prompts: index first
            next_value = rollout.values[next_index].numpy()
            advantages, returns = gae(rewards, values, next_value, terminateds, dones, cfg.gamma, cfg.gae_lambda)
            valid_index = np.flatnonzero(valid.reshape(-1))
            flat_sequences = [ids for row in sequences for ids in row]
            losses, entropy_loss = self._update(rollout, valid_index, prompt_index, actions, flat_sequences, logprobs,
                                                advantages, returns)
            policy.weights_changed()
            return_freed_memory()

            logged = {
                "losses/policy_loss": losses.pg_loss.item(),
                "losses/value_loss": losses.v_loss.item(),
                "losses/entropy": -entropy_loss.item(),
                **ppo_diagnostics(losses, cfg.clip_range),
                "charts/learning_rate": self.optimizer.param_groups[0]["lr"],
                "charts/distinct_prompts": len(rollout.prompts),
                "charts/SPS": (self.global_step - start_step) / (time.perf_counter() - start_time),
                **policy.charts(),
            }
            if cfg.novelty_bonus:
                logged["charts/novelty_bonus_per_step"] = loop["intrinsic_sum"] / max(loop["intrinsic_count"], 1)
            logged.update(explained_variance(values.reshape(-1)[valid_index], returns.reshape(-1)[valid_index]))
            hooks.log(self.global_step, logged)
        vec_env.close()
        self.loop = None

    def _start_loop(self, envs: EnvFactory) -> dict:
        """The state the loop carries between rollouts (and checkpoints): vector env, last observations, counters."""
        num_envs = self.config.n_envs
        vec_env = envs.make_vec(num_envs)
        observations, _ = vec_env.reset(seed=self.seed)
        return {
            "vec_env": vec_env,
            "observations": observations,
            "seen": [{observation} for observation in observations],  # texts seen in each env's episode
            "autoreset": np.zeros(num_envs, bool),  # this env's next step() only resets it
            "episodic_return": np.zeros(num_envs),
            "episodic_length": np.zeros(num_envs, np.int64),
            "intrinsic_sum": 0.0,  # novelty bonus paid, for its chart
            "intrinsic_count": 0,
        }

    def _update(self, rollout: "_RolloutPrompts", valid_index: np.ndarray, prompt_index: np.ndarray, actions: np.ndarray,
                sequences: list[tuple[int, ...]], logprobs: np.ndarray, advantages: np.ndarray, returns: np.ndarray):
        """``n_epochs`` of clipped-PPO minibatch updates over a rollout's valid steps; the last minibatch's losses."""
        cfg, device = self.config, self.policy.device
        b_prompts = prompt_index.reshape(-1)
        generated_rows = None
        if self.policy.generates and cfg.fast_path and cfg.llm.finetune == FineTune.head:
            generated_rows = _GeneratedRows(self, rollout.prompts, b_prompts[valid_index], [sequences[i] for i in valid_index])
        b_actions = torch.from_numpy(actions.reshape(-1)).to(device)
        b_logprobs = torch.from_numpy(logprobs.reshape(-1)).to(device)
        b_advantages = torch.from_numpy(advantages.reshape(-1)).to(device)
        b_returns = torch.from_numpy(returns.reshape(-1)).to(device)
        for epoch in range(cfg.n_epochs):
            shuffled = self.rng.permutation(valid_index)
            for start in range(0, len(shuffled), cfg.batch_size):
                mb_index = shuffled[start : start + cfg.batch_size]
                mb = torch.from_numpy(mb_index).to(device)
                if self.policy.generates:
                    new_logprob, entropy, new_value = self._generated_terms(rollout, b_prompts[mb_index],
                                                                            [sequences[i] for i in mb_index], generated_rows)
                else:
                    distinct, inverse = np.unique(b_prompts[mb_index], return_inverse=True)
                    scores, new_values, _ = rollout.forward_with_grad(distinct)
                    inverse = torch.from_numpy(inverse.reshape(-1)).to(device)
                    log_probs_all = (scores[inverse] / cfg.llm.temperature).log_softmax(-1)
                    new_logprob = log_probs_all.gather(1, b_actions[mb][:, None]).squeeze(1)
                    entropy = -(log_probs_all.exp() * log_probs_all).sum(-1)
                    new_value = new_values[inverse]

                mb_advantages = b_advantages[mb]
                if cfg.normalize_advantage and len(mb) > 1:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
                losses = ppo_losses(new_logprob, b_logprobs[mb], mb_advantages, new_value, b_returns[mb], cfg.clip_range)
                entropy_loss = -entropy.mean()
                loss = losses.pg_loss + cfg.vf_coef * losses.v_loss + cfg.ent_coef * entropy_loss

                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.llm_parameters + list(self.value_head.parameters()), cfg.max_grad_norm)
                self.optimizer.step()
        return losses, entropy_loss

    def _generated_terms(self, rollout: "_RolloutPrompts", positions: np.ndarray, sequences: list[tuple[int, ...]],
                         lower: "_GeneratedRows | None" = None):
        """``action_mode=generate``: log-prob, entropy estimate and value (n,) of a minibatch, with grad.

        Each distinct prompt runs once with its distinct generated sequences as candidates (the fast
        path: as many as it has; otherwise lists padded by repeating their first). The entropy is the sum
        of the per-token entropies along the generated sequence: by the chain rule its expectation is the
        sequence entropy.
        """
        distinct = list(dict.fromkeys(positions.tolist()))
        per_prompt: dict[int, list[tuple[int, ...]]] = {p: [] for p in distinct}
        for p, ids in zip(positions.tolist(), sequences):
            if ids not in per_prompt[p]:
                per_prompt[p].append(ids)
        width = max(map(len, per_prompt.values()))
        candidates = [row if lower is not None else row + [row[0]] * (width - len(row)) for row in per_prompt.values()]
        log_probs, entropies, values = self._forward_generated([rollout.prompts[p] for p in distinct], candidates, lower)
        row_of = {p: b for b, p in enumerate(distinct)}
        rows = torch.tensor([row_of[p] for p in positions.tolist()], device=log_probs.device)
        cols = torch.tensor([per_prompt[p].index(ids) for p, ids in zip(positions.tolist(), sequences)], device=log_probs.device)
        return log_probs[rows, cols], entropies[rows, cols], values[rows]

    def provenance(self) -> dict[str, float | str]:
        """Compute spent in the LLM, backward passes included, and where it ran (see ``LLMPolicy.provenance``)."""
        return self.policy.provenance()

    # ------------------------------------------------------------- persistence
    def _meta(self) -> dict[str, Any]:
        llm = self.config.llm
        return {"model": llm.model, "finetune": llm.finetune.value, "trained_layers": llm.trained_layers}

    def _trained_weights(self) -> dict[str, torch.Tensor]:
        """The LLM weights that train (all others are the model's own), on the CPU."""
        return {name: p.detach().cpu().clone() for name, p in self.policy.model.named_parameters() if p.requires_grad}

    def _load_trained_weights(self, trained: dict[str, torch.Tensor]) -> None:
        parameters = dict(self.policy.model.named_parameters())
        with torch.no_grad():
            for name, value in trained.items():
                parameters[name].copy_(value)

    def save(self, path: Path) -> None:
        """The trained LLM weights (only those that train) and the value head."""
        self._build()
        torch.save({"meta": self._meta(), "llm": self._trained_weights(), "value_head": self.value_head.state_dict()}, path)

    def load(self, path: Path) -> None:
        self._build()
        state = torch.load(path, weights_only=True)
        if state["meta"] != self._meta():
            raise ValueError(f"{path} holds a policy for {state['meta']}, this agent is {self._meta()}")
        self._load_trained_weights(state["llm"])
        self.value_head.load_state_dict(state["value_head"])
        self.policy.weights_changed()

    def state_dict(self) -> dict:
        """Everything needed to continue training: trained weights, value head, optimizer, RNGs, counters.

        Between rollouts of ``learn`` it also holds the loop state, the vector env included.
        """
        self._build()
        return {
            "meta": self._meta(),
            "llm": self._trained_weights(),
            "value_head": self.value_head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "policy": self.policy.state_dict(),
            "global_step": self.global_step,
            "frozen": None if self.frozen is None else dict(self.frozen.states),
            "loop": None if self.loop is None else {
                key: value.copy() if isinstance(value, np.ndarray) else value for key, value in self.loop.items()
            },
        }

    def load_state_dict(self, state: dict) -> None:
        self._build()
        if state["meta"] != self._meta():
            raise ValueError(f"the checkpoint holds a policy for {state['meta']}, this agent is {self._meta()}")
        self._load_trained_weights(state["llm"])
        self.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.policy.load_state_dict(state["policy"])  # after the weights: it restores their memoised scores
        self.global_step = int(state["global_step"])
        self.loop = state.get("loop")
        if self.frozen is not None and state.get("frozen") is not None:
            self.frozen.restore(state["frozen"])


def novelty_bonus(observations: Any, autoreset: np.ndarray, seen: list[set[str]], bonus: float) -> np.ndarray:
    """Per-env exploration reward of one step: ``bonus`` where the new observation is new in its episode.

    ``seen`` holds each env's texts of its current episode and is updated; an env whose step
    only reset it (``autoreset``) starts a new episode and gets nothing. The bonus is
    count-based (Strehl & Littman 2008) with counts reset every episode, as the episodic
    bonuses of RIDE (Raileanu & Rocktäschel 2020) and NGU (Badia et al. 2020), and paid on
    first visits only, so an episode's total is bounded by its distinct observations.
    """
    rewards = np.zeros(len(seen), np.float32)
    for i, observation in enumerate(observations):
        if autoreset[i]:
            seen[i] = {observation}
        elif observation not in seen[i]:
            seen[i].add(observation)
            rewards[i] = bonus
    return rewards


#: Bytes of frozen-layer output the fast path keeps (oldest prompts go first beyond it).
FROZEN_STATES_BYTES = 512 * 2**20


class _FrozenStates:
    """The frozen lower layers' output per prompt (its real tokens only), kept for the whole run.

    The lower layers never change, so a prompt's rows are computed once. They are checkpointed:
    rows computed in another batch could differ in the last bits, and a resumed run must repeat
    the uninterrupted one exactly.
    """

    def __init__(self, agent: LLMPG, max_bytes: int = FROZEN_STATES_BYTES):
        self.agent = agent
        self.max_bytes = max_bytes
        self.states: dict[str, torch.Tensor] = {}
        self.bytes = 0

    def rows(self, prompts: list[str]) -> list[torch.Tensor]:
        """Each prompt's rows; missing prompts run the frozen layers in one batch."""
        missing = list(dict.fromkeys(p for p in prompts if p not in self.states))
        found = {}
        if missing:
            policy, k = self.agent.policy, self.agent.config.llm.trained_layers
            batch = policy.scorer.encode(missing, self.agent.actions)
            with policy.compute():
                found = dict(zip(missing, _real_token_rows(batch, policy.scorer.forward_lower(batch, k))))
        rows = [self.states.get(p) if p in self.states else found[p] for p in prompts]
        for prompt, value in found.items():
            self._add(prompt, value)
        return rows

    def restore(self, states: dict[str, torch.Tensor]) -> None:
        self.states, self.bytes = {}, 0
        for prompt, value in states.items():
            self._add(prompt, value)

    def _add(self, prompt: str, value: torch.Tensor) -> None:
        self.states[prompt] = value
        self.bytes += value.numel() * value.element_size()
        while self.bytes > self.max_bytes and len(self.states) > 1:
            oldest = next(iter(self.states))
            self.bytes -= self.states.pop(oldest).numel() * value.element_size()


class _RolloutPrompts:
    """The distinct prompts of one rollout with their scores, values and (``head``) lower hidden states.

    Valid while the weights stay as they were at collection; a new rollout starts a new table.
    Scores computed here also fill the policy's memo, so evaluation reuses them.
    """

    def __init__(self, agent: LLMPG):
        self.agent = agent
        self.prompts: list[str] = []
        self.position: dict[str, int] = {}
        self.lower: list[torch.Tensor] = []
        self._scores: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        self.scores = torch.zeros((0, len(agent.actions)))
        self.values = torch.zeros(0)

    def index(self, prompts: list[str]) -> np.ndarray:
        """Table positions of ``prompts``; new prompts run one batched forward (no grad)."""
        new = list(dict.fromkeys(p for p in prompts if p not in self.position))
        policy = self.agent.policy
        policy.score_misses += len(new)
        policy.score_hits += len(prompts) - len(new)
        if new:
            with torch.no_grad():
                scores, values, lower = self.agent._forward(new, keep_lower=not policy.generates)
            for prompt in new:
                self.position[prompt] = len(self.prompts)
                self.prompts.append(prompt)
            scores, values = scores.cpu(), values.cpu()
            self._scores.append(scores)
            self._values.append(values)
            self.lower.extend(lower or [])
            policy.scores.update(zip(new, scores))
            self.scores, self.values = torch.cat(self._scores), torch.cat(self._values)
        return np.array([self.position[p] for p in prompts], np.int64)

    def forward_with_grad(self, positions: np.ndarray):
        """Scores (n, A) and values (n,) of table entries ``positions``, tracked by autograd."""
        prompts = [self.prompts[i] for i in positions]
        lower = [self.lower[i] for i in positions] if self.lower else None
        return self.agent._forward(prompts, lower_rows=lower)


#: Prompts per frozen-layer forward when :class:`_GeneratedRows` fills its table.
GENERATED_ROWS_PROMPTS = 16


class _GeneratedRows:
    """``action_mode=generate`` with ``finetune=head`` (the fast path): the frozen layers' output for every distinct
    prompt of a rollout and every distinct sequence generated from it, computed once before the update instead of
    in every minibatch of every epoch, and laid out for each minibatch's batch (:meth:`assemble`).

    A candidate's tokens attend to the prompt and to themselves only (the packed batch's tree mask), so their rows
    do not depend on the other candidates of the batch they were computed in.
    """

    def __init__(self, agent: LLMPG, prompts: list[str], positions: np.ndarray, sequences: list[tuple[int, ...]]):
        per_prompt: dict[int, list[tuple[int, ...]]] = {}
        for p, ids in zip(positions.tolist(), sequences):
            row = per_prompt.setdefault(p, [])
            if ids not in row:
                row.append(ids)
        self.prompt_rows: dict[str, torch.Tensor] = {}
        self.sequence_rows: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        policy, k = agent.policy, agent.config.llm.trained_layers
        items = sorted(per_prompt.items(), key=lambda item: sum(map(len, item[1])))  # similar widths share a forward
        for first in range(0, len(items), GENERATED_ROWS_PROMPTS):
            chunk = items[first : first + GENERATED_ROWS_PROMPTS]
            chunk_prompts = [prompts[p] for p, _ in chunk]
            candidate_ids = [[list(ids) for ids in row] for _, row in chunk]
            batch = policy.scorer.encode_ids(chunk_prompts, candidate_ids)
            with policy.compute():
                lower = policy.scorer.forward_lower(batch, k)
            for b, (prompt, (_, row)) in enumerate(zip(chunk_prompts, chunk)):
                start = self._prompt_start(batch, b)
                self.prompt_rows[prompt] = lower[b, start : batch.prompt_last + 1].clone()
                column = batch.prompt_last + 1
                for ids in row:
                    self.sequence_rows[(prompt, ids)] = lower[b, column : column + len(ids)].clone()
                    column += len(ids)

    @staticmethod
    def _prompt_start(batch: Any, row: int) -> int:
        """Column of the first token of the prompt in ``row`` (prompts are left-padded to ``prompt_last``)."""
        return batch.prompt_last - int(batch.position_ids[row, batch.prompt_last])

    def assemble(self, batch: Any, prompts: list[str], candidate_ids: list[list[tuple[int, ...]]]) -> torch.Tensor:
        """The frozen layers' output for ``batch`` (``encode_ids(prompts, candidate_ids)``), zeros at pads."""
        first_rows = next(iter(self.prompt_rows.values()))
        lower = first_rows.new_zeros((batch.batch_size, batch.input_ids.shape[1], first_rows.shape[-1]))
        for b, (prompt, row) in enumerate(zip(prompts, candidate_ids)):
            lower[b, self._prompt_start(batch, b) : batch.prompt_last + 1] = self.prompt_rows[prompt]
            column = batch.prompt_last + 1
            for ids in row:
                lower[b, column : column + len(ids)] = self.sequence_rows[(prompt, tuple(ids))]
                column += len(ids)
        return lower


def _real_token_rows(batch: Any, lower: torch.Tensor) -> list[torch.Tensor]:
    """Each row of ``lower`` less its left padding: its last (prompt length + candidate tokens) columns."""
    real = batch.position_ids[:, batch.prompt_last] + batch.input_ids.shape[1] - batch.prompt_last
    return [lower[row, -int(n) :].clone() for row, n in enumerate(real)]


def _repack(rows: list[torch.Tensor], length: int) -> torch.Tensor:
    """Right-aligned rows (real tokens only) in a zero-padded (len(rows), length, hidden) batch."""
    hidden = rows[0].shape[-1]
    batch = rows[0].new_zeros((len(rows), length, hidden))
    for row, values in enumerate(rows):
        batch[row, length - values.shape[0] :] = values
    return batch
