"""Actions by text generation (``llm.action_mode=generate``): batched, KV-cached, memoised decoding.

The prompt is :func:`~llmrl_bench.llm.scoring.build_prompt`'s with :data:`INSTRUCTION` after
the actions. Each env's row decodes at most ``max_new_tokens`` tokens and stops after a token
whose text holds a newline, or the end-of-sequence token; the stop token is part of the
generated ids (its probability is part of the sequence's), not of the text.

Memo: with the weights fixed, a next-token distribution is a pure function of (prompt,
generated prefix). :class:`NextTokenMemo` keeps the log-probabilities of every (prompt, prefix)
computed since the weights last changed (a trie per prompt, flattened into one dict), so a
prompt seen before decodes without a forward pass unless a draw leaves the known branches.
It also keeps each prompt's KV cache (:class:`PromptState`), so a draw that leaves the known
branches of a prompt seen in an earlier call runs its prefix tokens only, not the prompt again.

KV cache: the (prompt, prefix) pairs a step misses are computed in at most a few batched
forwards: pairs whose parent (prompt, prefix[:-1]) was computed at the previous step extend
that step's cache by one token; prompts never seen run alone in a fresh left-padded batch
(their KV caches are kept); the other pairs run their prefix on their prompts' kept caches,
one batch per prefix length. The next step extends each of these batches' caches.

Draws: one uniform number per decoding row and step, from the caller's ``torch.Generator``,
mapped through the inverse CDF of softmax(log-probs / temperature), so the numbers drawn do not
depend on which rows the memo served.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from transformers import DynamicCache

from llmrl_bench.llm.model import LLMCounters

#: The line generate mode adds to the prompt, after the possible actions.
INSTRUCTION = "Answer with exactly one of the possible actions."
#: Tokens allowed beyond the longest action's (room for the stop token).
NEW_TOKEN_MARGIN = 2
#: The memo is emptied when its vocabulary-sized float32 rows would pass this many bytes
#: (1 GiB: about 5,400 rows of SmolLM2's 49,152-token vocabulary).
MEMO_MAX_BYTES = 2**30
#: The prompts' KV caches kept at most (the least recently used is dropped first); SmolLM2-135M's
#: cache of a 150-token prompt is about 3.5 MB under bf16 autocast, 7 MB in float32.
PROMPT_STATES_MAX_BYTES = 2**29

Key = tuple[str, tuple[int, ...]]


@dataclass
class PromptState:
    """One prompt's KV cache under the current weights: per layer (kv_heads, tokens, head_dim) keys and values,
    and the log-probabilities of the token after the prompt."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    next_log_probs: torch.Tensor

    @property
    def length(self) -> int:
        return self.keys[0].shape[1]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values + [self.next_log_probs])


@dataclass
class NextTokenMemo:
    """(prompt, generated prefix) -> (vocab,) float32 CPU log-probabilities under the current weights.

    ``prompt_states`` keeps the prompts' KV caches under the same weights (recomputable, so not
    part of a checkpoint), least recently used first, within ``max_prompt_state_bytes``.
    """

    entries: dict[Key, torch.Tensor] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    max_bytes: int = MEMO_MAX_BYTES
    prompt_states: "OrderedDict[str, PromptState]" = field(default_factory=OrderedDict)
    max_prompt_state_bytes: int = PROMPT_STATES_MAX_BYTES
    prompt_state_bytes: int = 0

    def clear(self) -> None:
        self.entries.clear()
        self.prompt_states.clear()
        self.prompt_state_bytes = 0

    def add_prompt_state(self, prompt: str, state: PromptState) -> None:
        """Keep ``state``, dropping the least recently used ones beyond the byte limit."""
        self.prompt_states[prompt] = state
        self.prompt_state_bytes += state.nbytes
        while self.prompt_state_bytes > self.max_prompt_state_bytes:
            _, dropped = self.prompt_states.popitem(last=False)
            self.prompt_state_bytes -= dropped.nbytes

    def prompt_state(self, prompt: str) -> Optional[PromptState]:
        state = self.prompt_states.get(prompt)
        if state is not None:
            self.prompt_states.move_to_end(prompt)
        return state

    def store(self, keys: Sequence[Key], log_probs: torch.Tensor) -> None:
        """Add (len(keys), vocab) rows; first empty the memo if they would not fit."""
        row_bytes = log_probs.shape[1] * log_probs.element_size()
        if (len(self.entries) + len(keys)) * row_bytes > self.max_bytes:
            self.entries.clear()
        self.entries.update(zip(keys, log_probs))


@dataclass
class _CacheGroup:
    """One batched forward's KV cache, and the (prompt, prefix) each of its rows ends with."""

    cache: Any
    row_of: dict[Key, int]
    attention_mask: torch.Tensor
    """(rows, length) 1 on real tokens."""
    next_position: torch.Tensor
    """(rows,) position id of the next token of each row."""
    log_probs: dict[Key, torch.Tensor]
    """The next-token log-probabilities of each row's key."""
    prompt_states: dict[str, PromptState] = field(default_factory=dict)
    """The KV caches of the prompts this forward ran whole (:meth:`ActionGenerator._fresh`)."""


@dataclass
class Generation:
    """Generated ids per row (stop token included when one was drawn) and their sequence log-probability."""

    token_ids: list[tuple[int, ...]]
    texts: list[str]
    """Decoded ids up to the first newline."""
    log_probs: torch.Tensor
    """(rows,) float32 sum over the generated ids of log softmax(log-probs / temperature)."""


class ActionGenerator:
    """Decodes actions for a batch of prompts with a causal LM (see the module docstring).

    Args:
        model, tokenizer: the LM.
        counters: compute counters to add to.
        memo: the next-token memo; None: a fresh one per call (no reuse across calls).
    """

    def __init__(self, model: Any, tokenizer: Any, counters: LLMCounters, memo: Optional[NextTokenMemo] = None):
        self.model = model
        self.tokenizer = tokenizer
        self.counters = counters
        self.memo = memo
        self.num_layers = model.config.num_hidden_layers
        self._prompt_ids: dict[str, list[int]] = {}
        self._stops: dict[int, bool] = {}

    @property
    def device(self) -> torch.device:
        return self.model.get_output_embeddings().weight.device

    def max_new_tokens(self, actions: Sequence[str], candidate_prefix: str = " ") -> int:
        """The longest action's token count plus :data:`NEW_TOKEN_MARGIN`."""
        longest = max(len(self.tokenizer(candidate_prefix + a, add_special_tokens=False)["input_ids"]) for a in actions)
        return longest + NEW_TOKEN_MARGIN

    def generate(self, prompts: Sequence[str], max_new_tokens: int, temperature: float,
                 generator: Optional[torch.Generator]) -> Generation:
        """Decode every prompt: greedy when ``generator`` is None, else sampled at ``temperature`` (> 0)."""
        memo = self.memo if self.memo is not None else NextTokenMemo()
        prefixes: list[tuple[int, ...]] = [() for _ in prompts]
        log_probs = torch.zeros(len(prompts))
        active = list(range(len(prompts)))
        groups: list[_CacheGroup] = []
        for _ in range(max_new_tokens):
            if not active:
                break
            keys = [(prompts[i], prefixes[i]) for i in active]
            groups, found = self._fill(memo, keys, groups)
            rows = torch.stack([found[key] for key in keys])
            tempered = (rows / temperature).log_softmax(-1) if temperature > 0 else rows
            tokens = rows.argmax(-1) if generator is None else _inverse_cdf(tempered, generator)
            log_probs[active] += tempered.gather(1, tokens[:, None]).squeeze(1)
            for i, token in zip(active, tokens.tolist()):
                prefixes[i] += (token,)
            active = [i for i in active if not self._stopped(prefixes[i])]
        texts = [self.tokenizer.decode(ids).split("\n", 1)[0] for ids in prefixes]
        return Generation(prefixes, texts, log_probs)

    # ------------------------------------------------------------------ internals

    def _stopped(self, ids: tuple[int, ...]) -> bool:
        stops = self._stops.get(ids[-1])
        if stops is None:
            stops = self._stops[ids[-1]] = ids[-1] == self.tokenizer.eos_token_id or "\n" in self.tokenizer.decode(ids[-1:])
        return stops

    def _ids(self, prompt: str) -> list[int]:
        ids = self._prompt_ids.get(prompt)
        if ids is None:
            ids = self._prompt_ids[prompt] = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        return ids

    def _fill(self, memo: NextTokenMemo, keys: list[Key], groups: list[_CacheGroup]) -> tuple[list[_CacheGroup], dict]:
        """The log-probs of ``keys`` (computing those the memo lacks) and the cache groups computed."""
        found = {key: memo.entries[key] for key in keys if key in memo.entries}
        missing = list(dict.fromkeys(key for key in keys if key not in found))
        memo.hits += len(keys) - len(missing)
        memo.misses += len(missing)
        new_groups = []
        for group in groups:
            children = [key for key in missing if (key[0], key[1][:-1]) in group.row_of]
            if children:
                new_groups.append(self._extend(memo, group, children))
                missing = [key for key in missing if key not in new_groups[-1].row_of]
        states = {prompt: memo.prompt_state(prompt) for prompt, _ in missing}
        for key in [key for key in missing if not key[1] and states[key[0]] is not None]:  # the memo was emptied
            found[key] = states[key[0]].next_log_probs
            memo.store([key], found[key][None])
        missing = [key for key in missing if key not in found]
        unseen = [prompt for prompt, state in states.items() if state is None]
        if unseen:
            new_groups.append(self._fresh(memo, unseen))
            states |= new_groups[-1].prompt_states
            missing = [key for key in missing if key not in new_groups[-1].row_of]
        for steps in sorted({len(prefix) for _, prefix in missing}):
            batch = [key for key in missing if len(key[1]) == steps]
            new_groups.append(self._on_prompt_states(memo, batch, [states[prompt] for prompt, _ in batch]))
        for group in new_groups:
            found.update(group.log_probs)
        return new_groups, found

    def _fresh(self, memo: NextTokenMemo, prompts: list[str]) -> _CacheGroup:
        """Whole prompts, left-padded, one forward; their KV caches are kept."""
        sequences = [self._ids(prompt) for prompt in prompts]
        length = max(map(len, sequences))
        input_ids = torch.full((len(prompts), length), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), length), dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, length - len(ids):] = torch.tensor(ids)
            attention_mask[row, length - len(ids):] = 1
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        keys = [(prompt, ()) for prompt in prompts]
        group = self._forward(memo, keys, input_ids, attention_mask, position_ids, None, int(attention_mask.sum()))
        layers = group.cache.layers
        for row, (prompt, ids) in enumerate(zip(prompts, sequences)):
            start = length - len(ids)
            state = PromptState([layer.keys[row, :, start:].clone() for layer in layers],
                                [layer.values[row, :, start:].clone() for layer in layers], group.log_probs[(prompt, ())])
            group.prompt_states[prompt] = state
            memo.add_prompt_state(prompt, state)
        return group

    def _on_prompt_states(self, memo: NextTokenMemo, keys: list[Key], states: list[PromptState]) -> _CacheGroup:
        """Keys with prefixes of one length: the prefixes run on their prompts' kept KV caches, left-padded, one forward."""
        length = max(state.length for state in states)
        steps = len(keys[0][1])
        attention_mask = torch.zeros((len(keys), length + steps), dtype=torch.long)
        attention_mask[:, length:] = 1
        for row, state in enumerate(states):
            attention_mask[row, length - state.length:length] = 1
        layers = []
        for layer in range(len(states[0].keys)):
            padded = []
            for part in ("keys", "values"):
                first = getattr(states[0], part)[layer]
                tensor = first.new_zeros((len(keys), first.shape[0], length, first.shape[2]))
                for row, state in enumerate(states):
                    tensor[row, :, length - state.length:] = getattr(state, part)[layer]
                padded.append(tensor)
            layers.append(tuple(padded))
        input_ids = torch.tensor([list(prefix) for _, prefix in keys])
        position_ids = torch.tensor([state.length for state in states])[:, None] + torch.arange(steps)
        return self._forward(memo, keys, input_ids, attention_mask, position_ids, DynamicCache(layers), len(keys) * steps)

    def _extend(self, memo: NextTokenMemo, group: _CacheGroup, keys: list[Key]) -> _CacheGroup:
        """One more token on the rows of ``group`` that hold each key's parent."""
        rows = torch.tensor([group.row_of[(prompt, prefix[:-1])] for prompt, prefix in keys])
        group.cache.batch_select_indices(rows.to(self.device))
        attention_mask = torch.cat([group.attention_mask[rows], torch.ones((len(keys), 1), dtype=torch.long)], 1)
        input_ids = torch.tensor([[prefix[-1]] for _, prefix in keys])
        position_ids = group.next_position[rows][:, None]
        return self._forward(memo, keys, input_ids, attention_mask, position_ids, group.cache, len(keys))

    def _forward(self, memo: NextTokenMemo, keys: list[Key], input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 position_ids: torch.Tensor, cache: Any, new_tokens: int) -> _CacheGroup:
        start = time.perf_counter()
        device = self.device
        with torch.no_grad():
            output = self.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                position_ids=position_ids.to(device), cache=cache, use_cache=True,
                                logits_to_keep=1)
        log_probs = output.logits[:, -1].float().log_softmax(-1).cpu()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.counters.add(new_tokens=new_tokens, layer_tokens=new_tokens, num_layers=self.num_layers,
                          logit_rows=len(keys), seconds=time.perf_counter() - start)
        memo.store(keys, log_probs)
        return _CacheGroup(output.cache, {key: row for row, key in enumerate(keys)}, attention_mask,
                           position_ids[:, -1] + 1, dict(zip(keys, log_probs)))


def _inverse_cdf(log_probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One token per row of (rows, vocab) ``log_probs``, from one uniform draw per row."""
    cumulative = log_probs.double().exp().cumsum(-1)
    uniform = torch.rand(len(log_probs), dtype=torch.float64, generator=generator)[:, None] * cumulative[:, -1:]
    return torch.searchsorted(cumulative, uniform).clamp(max=log_probs.shape[1] - 1).squeeze(1)
