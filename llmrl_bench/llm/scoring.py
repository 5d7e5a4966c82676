"""The LLM policy of GLAM (Carta et al. 2023): each legal action's log-probability as text.

A prompt holds the goal, the text observation, the legal actions and the last few
observation-action pairs, and ends with ``"Action:"`` (see :func:`build_prompt`). The score
of a candidate action is the sum of its tokens' log-probabilities given the prompt; the
policy is a softmax over the scores of the legal actions.

Tokenization boundary: prompt and candidate are tokenized separately and their ids
concatenated, ``ids(prompt) + ids(candidate_prefix + candidate)``, so every candidate has
the same prompt ids and its own tokens. ``candidate_prefix`` (default ``" "``) is the text
between ``"Action:"`` and the action; with byte-level BPE tokenizers (GPT-2, SmolLM2,
Llama-3, Qwen) a leading space belongs to the next word's token, so the ids equal the
tokenization of the joined text. SentencePiece tokenizers want ``candidate_prefix=""``.

Prefix sharing: each prompt runs through the model once. Every row of a
:class:`ScoringBatch` packs one (left-padded) prompt followed by all its candidates;
a tree-shaped attention mask lets each candidate token see the prompt and the earlier
tokens of its own candidate only, and position ids restart after the prompt for every
candidate. This is the prompt's KV cache shared by all candidates without copying it,
in one forward. Logits are computed only where a candidate token is predicted: the last
prompt position (shared by all candidates) and the candidate positions.

Fine-tuning (``finetune=head``): :meth:`ActionScorer.forward_lower` runs layers
``[0, L-k)`` once under ``no_grad``; keep its output with the batch and call
:meth:`ActionScorer.forward_upper` with grad for each update epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch.utils.checkpoint import checkpoint

from llmrl_bench.llm.model import LLMCounters, decoder_of

#: Observation-action pairs kept in the prompt by :func:`build_prompt`.
HISTORY_LENGTH = 3


def build_prompt(
    goal: str,
    observation: str,
    actions: Sequence[str],
    history: Sequence[tuple[str, str]] | None = None,
    history_length: int = HISTORY_LENGTH,
    instruction: str = "",
) -> str:
    """The GLAM prompt; it ends with ``"Action:"`` so the next tokens are the action.

    Args:
        goal: the mission or goal, e.g. ``"get to the green goal square"``; ``""`` leaves the
            line out (``repr=text`` MiniGrid observations already end with the mission).
        observation: the current text observation.
        actions: the legal actions, in the env's action order.
        history: earlier ``(observation, action)`` pairs, oldest first; the last
            ``history_length`` are kept.
        instruction: a line after the actions (``action_mode=generate``); ``""``: none.
    """
    lines = [f"Goal: {goal}"] if goal else []
    lines.append(f"Possible actions: {', '.join(actions)}")
    if instruction:
        lines.append(instruction)
    recent = list(history or [])[-history_length:] if history_length > 0 else []
    for past_observation, past_action in recent:
        lines += [f"Observation: {past_observation}", f"Action: {past_action}"]
    lines += [f"Observation: {observation}", "Action:"]
    return "\n".join(lines)


@dataclass
class ScoringBatch:
    """Prompts and their candidates packed one prompt per row (see the module docstring).

    Row ``b`` is ``[pad..., prompt_b, cand_0, cand_1, ..., pad...]``; all prompts end at
    column ``prompt_last``. ``n`` below is the number of candidate tokens in the batch,
    ``s`` the number of positions whose logits are needed.
    """

    input_ids: torch.Tensor
    """(batch, length) token ids, pads hold the pad id."""
    position_ids: torch.Tensor
    """(batch, length) 0.. along the prompt; each candidate continues from the prompt's length."""
    attention_mask: torch.Tensor
    """(batch, 1, length, length) additive mask in the model dtype (0 = attend)."""
    prompt_last: int
    """Column of the last prompt token of every row."""
    source_rows: torch.Tensor
    """(s,) row of each position whose logits are needed."""
    source_cols: torch.Tensor
    """(s,) column of each such position."""
    target_sources: torch.Tensor
    """(n,) index into the sources of the position predicting each candidate token."""
    target_ids: torch.Tensor
    """(n,) the candidate token ids."""
    target_owners: torch.Tensor
    """(n,) ``b * num_candidates + c`` of each candidate token."""
    num_candidates: int
    num_tokens: int
    """Real (non-pad) tokens in the batch."""
    target_allowed: Optional[torch.Tensor] = None
    """Constrained scoring only: (n, k) the token ids that continue some candidate of the same
    prompt where each candidate token is predicted (its own among them), padded."""
    target_allowed_mask: Optional[torch.Tensor] = None
    """(n, k) which entries of ``target_allowed`` are real."""

    @property
    def batch_size(self) -> int:
        return self.input_ids.shape[0]


@dataclass
class ScoreOutput:
    """Scores of a batch and the hidden state a value head reads."""

    scores: torch.Tensor
    """(batch, num_candidates) float32 summed log-probabilities of each candidate."""
    prompt_hidden: torch.Tensor
    """(batch, hidden) final (normed) hidden state at each prompt's last token."""
    entropies: Optional[torch.Tensor] = None
    """``token_stats``: (batch, num_candidates) summed entropies of the next-token distributions
    at the positions that predict each candidate's tokens."""


class ActionScorer:
    """Scores candidate actions as continuations of prompts with a Llama-style causal LM.

    Works with grad enabled (PPO on the LLM policy) as well as under ``no_grad``. Every
    forward adds to ``counters``. On CPU the same inputs give bit-identical scores.

    Args:
        model: a ``*ForCausalLM`` whose base decoder has ``embed_tokens``, ``layers``,
            ``norm`` and ``rotary_emb`` (Llama, Mistral, Qwen2/3, SmolLM).
        tokenizer: its tokenizer.
        counters: compute counters to add to; new ones if None.
        candidate_prefix: text put before every candidate before tokenizing it.
        constrained: score as constrained decoding over the candidates does: each token's
            probability renormalised over the tokens that continue some candidate of the same
            prompt (a prefix tree), so the candidates' probabilities sum to 1
            (``llm.action_mode=constrained``, docs/llm_agents.md#action-modes). Default: the
            full-vocabulary log-probabilities (GLAM's scores).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        counters: LLMCounters | None = None,
        candidate_prefix: str = " ",
        constrained: bool = False,
    ) -> None:
        self.model = model
        self.constrained = constrained
        self.tokenizer = tokenizer
        self.decoder = decoder_of(model)
        self.lm_head = model.get_output_embeddings()
        self.num_layers = len(self.decoder.layers)
        self.counters = counters if counters is not None else LLMCounters.for_model(model)
        self.candidate_prefix = candidate_prefix
        self._candidate_ids: dict[str, list[int]] = {}

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    # ----------------------------------------------------------------- public API

    def score(
        self,
        prompts: Sequence[str],
        candidates: Sequence[str] | Sequence[Sequence[str]],
        return_prompt_hidden: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Summed log-probabilities, shape (batch, num_candidates), float32.

        Args:
            prompts: one prompt per env (see :func:`build_prompt`).
            candidates: the same actions for every prompt, or one list per prompt (all of
                one length).
            return_prompt_hidden: also return the (batch, hidden) last prompt hidden state.
        """
        output = self.forward(self.encode(prompts, candidates))
        return (output.scores, output.prompt_hidden) if return_prompt_hidden else output.scores

    def encode(
        self, prompts: Sequence[str], candidates: Sequence[str] | Sequence[Sequence[str]]
    ) -> ScoringBatch:
        """Tokenize and pack ``prompts`` with their ``candidates`` for :meth:`forward`."""
        candidate_ids = [[self._candidate(c) for c in row] for row in _per_prompt(candidates, len(prompts))]
        return self.encode_ids(prompts, candidate_ids)

    def encode_ids(self, prompts: Sequence[str], candidate_ids: list[list[list[int]]]) -> ScoringBatch:
        """:meth:`encode` with the candidates as token ids (e.g. generated ones), one list per prompt; lists may
        differ in length (scores then have as many columns as the longest, 0 where a prompt has no candidate)."""
        return _pack(self._prompt_ids(prompts), candidate_ids, self.tokenizer.pad_token_id, self.dtype, self.device,
                     self.constrained)

    def forward(self, batch: ScoringBatch, temperature: float = 1.0, token_stats: bool = False) -> ScoreOutput:
        """Scores of a packed batch through all layers (grad follows the caller's mode).

        ``temperature``: token log-probabilities of softmax(logits / temperature); ``token_stats``:
        also the candidates' summed token entropies (``ScoreOutput.entropies``).
        """
        start = time.perf_counter()
        hidden = self._run_layers(self.decoder.embed_tokens(batch.input_ids), batch, 0, self.num_layers)
        output = self._head(hidden, batch, temperature, token_stats)
        tracked = output.scores.requires_grad
        self._count(batch, self.num_layers, start, logits=True, new_tokens=True, backward=tracked)
        return output

    def forward_lower(self, batch: ScoringBatch, num_upper_layers: int) -> torch.Tensor:
        """Hidden states after layers ``[0, L - num_upper_layers)``, computed under ``no_grad``.

        Returns:
            (batch, length, hidden), to be kept with ``batch`` and passed to :meth:`forward_upper`.
        """
        stop = self._split(num_upper_layers)
        start = time.perf_counter()
        with torch.no_grad():
            hidden = self._run_layers(self.decoder.embed_tokens(batch.input_ids), batch, 0, stop)
        self._count(batch, stop, start, logits=False, new_tokens=True, backward=False)
        return hidden

    def forward_upper(
        self, batch: ScoringBatch, lower_hidden: torch.Tensor, num_upper_layers: int,
        temperature: float = 1.0, token_stats: bool = False, needed_only: bool = False, recompute: bool = False,
    ) -> ScoreOutput:
        """Scores from :meth:`forward_lower`'s output through the top ``num_upper_layers`` layers.

        ``forward_upper(b, forward_lower(b, k), k)`` equals ``forward(b)`` to float rounding.
        ``needed_only``: run the layers with :func:`decoder_layer` (eager attention, much faster
        backward on CPU than SDPA's) and the last layer only at the columns whose output is
        read, from the last prompt token on; the other columns still give their keys and values.
        ``recompute`` (with ``needed_only``): keep only each trained layer's and the head's input for the
        backward pass and recompute the rest there (activation checkpointing, Chen et al. 2016): less
        memory, one more forward of the top layers, the same scores and gradients bit for bit.
        """
        split = self._split(num_upper_layers)
        start = time.perf_counter()
        if not needed_only or num_upper_layers == 0:
            hidden = self._run_layers(lower_hidden, batch, split, self.num_layers)
            output = self._head(hidden, batch, temperature, token_stats)
            tracked = output.scores.requires_grad
            self._count(batch, self.num_layers - split, start, logits=True, new_tokens=False, backward=tracked)
            return output
        hidden = lower_hidden
        cos, sin = self.decoder.rotary_emb(hidden, batch.position_ids)
        recompute = recompute and torch.is_grad_enabled()
        for index in range(split, self.num_layers):
            first_query = batch.prompt_last if index == self.num_layers - 1 else 0
            layer = self.decoder.layers[index]
            if recompute:
                hidden = checkpoint(decoder_layer, layer, hidden, batch.attention_mask, cos, sin, first_query, use_reentrant=False)
            else:
                hidden = decoder_layer(layer, hidden, batch.attention_mask, cos, sin, first_query)
        if recompute:
            scores, prompt_hidden = checkpoint(self._head_tensors, hidden, batch, temperature, use_reentrant=False)
            output = ScoreOutput(scores, prompt_hidden)
        else:
            output = self._head(hidden, batch, temperature, token_stats, first_column=batch.prompt_last)
        tracked = output.scores.requires_grad
        read_columns = batch.batch_size * (batch.input_ids.shape[1] - batch.prompt_last)
        self._count(batch, self.num_layers - split - 1, start, logits=True, new_tokens=False, backward=tracked)
        self.counters.add(layer_tokens=read_columns, num_layers=1, backward=tracked)
        return output

    def score_full_sequences(
        self,
        prompts: Sequence[str],
        candidates: Sequence[str] | Sequence[Sequence[str]],
        chunk_size: int = 16,
    ) -> torch.Tensor:
        """Reference scores the naive way: every prompt+candidate sequence on its own.

        Runs the plain transformers forward on ``batch * num_candidates`` right-padded
        sequences (``chunk_size`` at a time) with full-vocabulary logits at every position.
        Same tokenization as :meth:`score`. Returns (batch, num_candidates) float32.
        """
        prompt_ids = self._prompt_ids(prompts)
        rows = _per_prompt(candidates, len(prompts))
        sequences = [(p, self._candidate(c)) for p, row in zip(prompt_ids, rows) for c in row]
        scores = []
        for first in range(0, len(sequences), chunk_size):
            scores.append(self._score_sequences(sequences[first : first + chunk_size]))
        return torch.cat(scores).view(len(prompts), len(rows[0]))

    # ------------------------------------------------------------------ internals

    def _split(self, num_upper_layers: int) -> int:
        if not 0 <= num_upper_layers <= self.num_layers:
            raise ValueError(f"num_upper_layers={num_upper_layers} not in [0, {self.num_layers}]")
        return self.num_layers - num_upper_layers

    def _prompt_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings, one per env")
        return self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"]

    def _candidate(self, candidate: str) -> list[int]:
        ids = self._candidate_ids.get(candidate)
        if ids is None:
            ids = self.tokenizer(self.candidate_prefix + candidate, add_special_tokens=False)["input_ids"]
            if not ids:
                raise ValueError(f"candidate {candidate!r} has no tokens")
            self._candidate_ids[candidate] = ids
        return ids

    def _run_layers(self, hidden: torch.Tensor, batch: ScoringBatch, start: int, stop: int) -> torch.Tensor:
        # Rotary embeddings depend on the positions only, so both halves of a split recompute them.
        position_embeddings = self.decoder.rotary_emb(hidden, batch.position_ids)
        for layer in self.decoder.layers[start:stop]:
            hidden = layer(
                hidden,
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids,
                position_embeddings=position_embeddings,
            )
            if isinstance(hidden, tuple):  # transformers < 4.54 layers return tuples
                hidden = hidden[0]
        return hidden

    def _head_tensors(self, hidden: torch.Tensor, batch: ScoringBatch, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_head` of :meth:`forward_upper`'s ``needed_only`` output as a tuple (what ``checkpoint`` recomputes)."""
        output = self._head(hidden, batch, temperature, first_column=batch.prompt_last)
        return output.scores, output.prompt_hidden

    def _head(
        self, hidden: torch.Tensor, batch: ScoringBatch, temperature: float = 1.0, token_stats: bool = False,
        first_column: int = 0,
    ) -> ScoreOutput:
        """Scores from the last layer's output; ``hidden`` holds the batch's columns from ``first_column`` on."""
        normed = self.decoder.norm(hidden[batch.source_rows, batch.source_cols - first_column])
        shape = (batch.batch_size, batch.num_candidates)

        def per_candidate(token_values: torch.Tensor) -> torch.Tensor:
            total = torch.zeros(shape[0] * shape[1], dtype=torch.float32, device=hidden.device)
            return total.index_add(0, batch.target_owners, token_values).view(shape)

        if token_stats and batch.target_allowed is None and not self.lm_head.weight.requires_grad and self.lm_head.bias is None:
            log_norm, source_entropies, target_logits = TokenStats.apply(
                normed, self.lm_head.weight, temperature, batch.target_sources, batch.target_ids)
            return ScoreOutput(
                per_candidate(target_logits - log_norm[batch.target_sources]),
                self.decoder.norm(hidden[:, batch.prompt_last - first_column]),
                per_candidate(source_entropies[batch.target_sources]),
            )
        logits = self.lm_head(normed).float()
        logits = logits if temperature == 1.0 else logits / temperature

        if batch.target_allowed is not None:
            if token_stats:
                raise ValueError("token_stats are generate mode's; constrained scoring has none")
            # Each token's log-probability among the tokens that continue some candidate of its prompt.
            allowed = logits[batch.target_sources[:, None], batch.target_allowed]
            log_norm = allowed.masked_fill(~batch.target_allowed_mask, float("-inf")).logsumexp(-1)
            return ScoreOutput(
                per_candidate(logits[batch.target_sources, batch.target_ids] - log_norm),
                self.decoder.norm(hidden[:, batch.prompt_last - first_column]),
            )

        if first_column and not token_stats:
            # Only the targets' log-probs: one logsumexp instead of a full log_softmax (and its backward).
            log_norm = logits.logsumexp(dim=-1)
            return ScoreOutput(
                per_candidate(logits[batch.target_sources, batch.target_ids] - log_norm[batch.target_sources]),
                self.decoder.norm(hidden[:, batch.prompt_last - first_column]),
            )
        log_probs = logits.log_softmax(dim=-1)
        scores = per_candidate(log_probs[batch.target_sources, batch.target_ids])
        entropies = None
        if token_stats:
            source_entropies = -(log_probs.exp() * log_probs).sum(-1)
            entropies = per_candidate(source_entropies[batch.target_sources])
        prompt_hidden = self.decoder.norm(hidden[:, batch.prompt_last - first_column])
        return ScoreOutput(scores, prompt_hidden, entropies)

    def _score_sequences(self, sequences: list[tuple[list[int], list[int]]]) -> torch.Tensor:
        start = time.perf_counter()
        length = max(len(p) + len(c) for p, c in sequences)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(sequences), length), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for row, (prompt, candidate) in enumerate(sequences):
            ids = prompt + candidate
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        logits = self.model(
            input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device)
        ).logits
        log_probs = logits.float().log_softmax(dim=-1)
        scores = []
        for row, (prompt, candidate) in enumerate(sequences):
            # Token t of the candidate sits at len(prompt) + t and is predicted one position earlier.
            positions = torch.arange(len(prompt) - 1, len(prompt) + len(candidate) - 1, device=self.device)
            targets = torch.tensor(candidate, device=self.device)
            scores.append(log_probs[row, positions, targets].sum())
        real_tokens = int(attention_mask.sum())
        self.counters.add(
            new_tokens=real_tokens,
            layer_tokens=real_tokens,
            num_layers=self.num_layers,
            logit_rows=input_ids.numel(),
            backward=logits.requires_grad,
            seconds=self._elapsed(start),
        )
        return torch.stack(scores)

    def _count(
        self,
        batch: ScoringBatch,
        num_layers: int,
        start: float,
        *,
        logits: bool,
        new_tokens: bool,
        backward: bool,
    ) -> None:
        """Add one forward; ``backward``: autograd tracked it, so a backward will follow."""
        self.counters.add(
            new_tokens=batch.num_tokens if new_tokens else 0,
            layer_tokens=batch.num_tokens,
            num_layers=num_layers,
            logit_rows=len(batch.source_rows) if logits else 0,
            backward=backward,
            seconds=self._elapsed(start),
        )

    def _elapsed(self, start: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


#: Rows of logits :class:`TokenStats` holds at once (each row is the whole vocabulary, 49,152 floats for SmolLM2).
TOKEN_STATS_CHUNK = 128


class TokenStats(torch.autograd.Function):
    """Per row of ``normed`` (s, d): the log-normaliser and the entropy of softmax(normed @ weight.T / temperature),
    and the tempered logits of ``targets`` (n,) at rows ``sources`` (n,), with their gradient with respect to
    ``normed`` (``weight`` is frozen).

    What ``log_softmax`` of the full logits and ``-(p * log p).sum(-1)`` give, without keeping (s, vocab) tensors
    for the backward pass: logits are made ``TOKEN_STATS_CHUNK`` rows at a time in both passes (Liger-Kernel's
    fused linear cross-entropy does the same, Hsu et al. 2024). With ``z`` the tempered logits, ``p = softmax(z)``
    and ``H = logsumexp(z) - sum(p * z)``: ``d logsumexp / dz = p`` and ``dH / dz = -p * (z - sum(p * z))``.
    """

    @staticmethod
    def forward(ctx, normed: torch.Tensor, weight: torch.Tensor, temperature: float, sources: torch.Tensor,
                targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        device = normed.device.type
        ctx.compute_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
        weight = weight.to(ctx.compute_dtype)
        log_norms, entropies = [], []
        target_logits = torch.zeros(len(targets), dtype=torch.float32, device=normed.device)
        for first, logits, in_chunk in _logit_chunks(normed, weight, temperature, sources):
            log_norm = logits.logsumexp(-1)
            log_norms.append(log_norm)
            entropies.append(log_norm - (logits.softmax(-1) * logits).sum(-1))
            target_logits[in_chunk] = logits[sources[in_chunk] - first, targets[in_chunk]]
        ctx.save_for_backward(normed, weight, sources, targets)
        ctx.temperature = temperature
        return torch.cat(log_norms), torch.cat(entropies), target_logits

    @staticmethod
    def backward(ctx, grad_log_norm: torch.Tensor, grad_entropy: torch.Tensor, grad_target: torch.Tensor):
        normed, weight, sources, targets = ctx.saved_tensors
        weight = weight.to(ctx.compute_dtype)  # the forward's matmul dtype (autocast's, as a linear's backward)
        grad_normed = torch.empty(normed.shape, dtype=torch.float32, device=normed.device)
        for first, logits, in_chunk in _logit_chunks(normed, weight, ctx.temperature, sources):
            rows = slice(first, first + len(logits))
            probs = logits.softmax(-1)
            mean_logit = (probs * logits).sum(-1, keepdim=True)
            grad_logits = probs * (grad_log_norm[rows, None] - grad_entropy[rows, None] * (logits - mean_logit))
            grad_logits.index_put_((sources[in_chunk] - first, targets[in_chunk]), grad_target[in_chunk], accumulate=True)
            grad_normed[rows] = ((grad_logits / ctx.temperature).to(weight.dtype) @ weight).float()
        return grad_normed.to(normed.dtype), None, None, None, None


def _logit_chunks(normed: torch.Tensor, weight: torch.Tensor, temperature: float, sources: torch.Tensor):
    """``(first row, tempered float32 logits of rows first.., which sources fall in them)``, chunk by chunk."""
    for first in range(0, normed.shape[0], TOKEN_STATS_CHUNK):
        logits = (normed[first : first + TOKEN_STATS_CHUNK].to(weight.dtype) @ weight.T).float()
        in_chunk = (sources >= first) & (sources < first + len(logits))
        yield first, (logits if temperature == 1.0 else logits / temperature), in_chunk


def decoder_layer(
    layer: Any, hidden: torch.Tensor, attention_mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
    first_query: int = 0,
) -> torch.Tensor:
    """One Llama-style decoder layer (Llama, Mistral, Qwen2, SmolLM) with eager attention.

    The same computation as the layer's own forward with ``attn_implementation="eager"``, except
    that only columns ``first_query:`` are computed (returned shape ``(batch, length - first_query,
    hidden)``); every column still gives its keys and values. Qwen3's per-head q/k norms are applied
    when the layer has them.
    """
    attention = layer.self_attn
    batch, length, _ = hidden.shape
    head_dim = attention.head_dim
    normed = layer.input_layernorm(hidden)
    queried = normed[:, first_query:]
    query = attention.q_proj(queried).view(batch, queried.shape[1], -1, head_dim)
    key = attention.k_proj(normed).view(batch, length, -1, head_dim)
    value = attention.v_proj(normed).view(batch, length, -1, head_dim).transpose(1, 2)
    if hasattr(attention, "q_norm"):
        query, key = attention.q_norm(query), attention.k_norm(key)
    query, key = query.transpose(1, 2), key.transpose(1, 2)
    query = query * cos[:, None, first_query:] + _rotate_half(query) * sin[:, None, first_query:]
    key = key * cos[:, None] + _rotate_half(key) * sin[:, None]
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    weights = torch.matmul(query, key.transpose(2, 3)) * attention.scaling + attention_mask[:, :, first_query:]
    weights = weights.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
    attended = torch.matmul(weights, value).transpose(1, 2).reshape(batch, queried.shape[1], -1)
    hidden = hidden[:, first_query:] + attention.o_proj(attended)
    return hidden + layer.mlp(layer.post_attention_layernorm(hidden))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _per_prompt(candidates: Sequence[str] | Sequence[Sequence[str]], batch_size: int) -> list[list[str]]:
    """One candidate list per prompt, all of one length."""
    if not candidates:
        raise ValueError("no candidates to score")
    if isinstance(candidates[0], str):
        rows = [list(candidates)] * batch_size
    else:
        rows = [list(row) for row in candidates]
        if len(rows) != batch_size:
            raise ValueError(f"{len(rows)} candidate lists for {batch_size} prompts")
    if len({len(row) for row in rows}) != 1 or not rows[0]:
        raise ValueError("every prompt needs the same, non-zero number of candidates")
    return rows


def _pack(
    prompt_ids: list[list[int]],
    candidate_ids: list[list[list[int]]],
    pad_id: int,
    dtype: torch.dtype,
    device: torch.device,
    constrained: bool = False,
) -> ScoringBatch:
    """The packed layout, tree mask and logit gather indices of :class:`ScoringBatch` (``constrained``: also
    each candidate token's allowed tokens)."""
    batch_size, num_candidates = len(prompt_ids), max(len(row) for row in candidate_ids)
    prompt_width = max(len(p) for p in prompt_ids)
    if min(len(p) for p in prompt_ids) == 0:
        raise ValueError("empty prompt")
    candidate_width = max(sum(len(c) for c in row) for row in candidate_ids)
    length = prompt_width + candidate_width
    prompt_last = prompt_width - 1

    input_ids = torch.full((batch_size, length), pad_id, dtype=torch.long)
    position_ids = torch.zeros((batch_size, length), dtype=torch.long)
    segments = torch.full((batch_size, length), -1, dtype=torch.long)  # -1 pad, 0 prompt, c+1 candidate c
    source_rows, source_cols = [], []
    target_sources, target_ids, target_owners = [], [], []
    for b, (prompt, row) in enumerate(zip(prompt_ids, candidate_ids)):
        first = prompt_width - len(prompt)
        input_ids[b, first:prompt_width] = torch.tensor(prompt)
        position_ids[b, first:prompt_width] = torch.arange(len(prompt))
        segments[b, first:prompt_width] = 0
        prompt_source = len(source_rows)
        source_rows.append(b)
        source_cols.append(prompt_last)
        column = prompt_width
        for c, candidate in enumerate(row):
            span = slice(column, column + len(candidate))
            input_ids[b, span] = torch.tensor(candidate)
            position_ids[b, span] = torch.arange(len(prompt), len(prompt) + len(candidate))
            segments[b, span] = c + 1
            for t, token in enumerate(candidate):
                if t == 0:
                    target_sources.append(prompt_source)
                else:
                    target_sources.append(len(source_rows))
                    source_rows.append(b)
                    source_cols.append(column + t - 1)
                target_ids.append(token)
                target_owners.append(b * num_candidates + c)
            column += len(candidate)

    columns = torch.arange(length)
    query_seg, key_seg = segments[:, :, None], segments[:, None, :]
    causal = (columns[None, :] <= columns[:, None])[None]
    allowed = causal & (key_seg >= 0) & ((key_seg == 0) | (key_seg == query_seg))
    allowed |= torch.eye(length, dtype=torch.bool)[None]  # pad rows attend to themselves: no NaN
    attention_mask = torch.zeros((batch_size, 1, length, length), dtype=dtype)
    attention_mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)

    def as_tensor(values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=device)

    allowed, allowed_mask = _allowed_tokens(candidate_ids, device) if constrained else (None, None)
    return ScoringBatch(
        input_ids=input_ids.to(device),
        position_ids=position_ids.to(device),
        attention_mask=attention_mask.to(device),
        prompt_last=prompt_last,
        source_rows=as_tensor(source_rows),
        source_cols=as_tensor(source_cols),
        target_sources=as_tensor(target_sources),
        target_ids=as_tensor(target_ids),
        target_owners=as_tensor(target_owners),
        num_candidates=num_candidates,
        num_tokens=int((segments >= 0).sum()),
        target_allowed=allowed,
        target_allowed_mask=allowed_mask,
    )


def _allowed_tokens(candidate_ids: list[list[list[int]]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per candidate token, in :func:`_pack`'s target order: the ids that continue some candidate of its prompt
    after the same prefix, as a padded (n, k) tensor and its mask. Constrained decoding over a set of strings
    needs no string to be a token prefix of another (it would need an end-of-action token) and no two equal."""
    rows: list[list[int]] = []
    for row in candidate_ids:
        sequences = [tuple(candidate) for candidate in row]
        for first, sequence in enumerate(sequences):
            for other in sequences[first + 1 :]:
                shorter, longer = sorted((sequence, other), key=len)
                if longer[: len(shorter)] == shorter:
                    raise ValueError(f"constrained scoring: candidate tokens {list(shorter)} equal or start {list(longer)}; "
                                     "every listed action must tokenize to a sequence no other one starts with")
        continuations: dict[tuple[int, ...], list[int]] = {}
        for sequence in sequences:
            for t, token in enumerate(sequence):
                following = continuations.setdefault(sequence[:t], [])
                if token not in following:
                    following.append(token)
        rows.extend(continuations[sequence[:t]] for sequence in sequences for t in range(len(sequence)))
    width = max(map(len, rows))
    allowed = torch.tensor([row + [row[0]] * (width - len(row)) for row in rows], dtype=torch.long)
    mask = torch.tensor([[True] * len(row) + [False] * (width - len(row)) for row in rows])
    return allowed.to(device), mask.to(device)
