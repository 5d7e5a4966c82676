"""Frozen-LLM text embeddings: the ``llm_embed`` state representation reads observations through these.

The embedding of a text is the mean over its tokens of the model's final (normed) hidden
state. Texts repeat a lot in grid worlds, so embeddings are cached by text (least recently
used dropped beyond ``max_cache_size``); ``hit_rate`` says how often the cache answered.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Sequence

import torch

from llmrl_bench.llm.model import LLMCounters, decoder_of

#: Default bound on cached texts (about 2.3 KB each for a 576-wide model).
MAX_CACHE_SIZE = 100_000


class TextEmbedder:
    """Mean-pooled last hidden state of a frozen causal LM, cached by text.

    Embeddings are computed under ``no_grad`` in float32 on CPU, in batches of
    ``batch_size`` texts (right-padded, the pad masked out of attention and of the mean).
    A text's embedding is computed once and then always served from the cache, so a run
    is deterministic; recomputing it in another batch may differ by float rounding (~1e-6).

    Args:
        model: a ``*ForCausalLM`` (only its base decoder runs).
        tokenizer: its tokenizer.
        counters: compute counters to add to; new ones if None.
        max_cache_size: texts kept; the least recently used is dropped beyond it.
        batch_size: texts per forward for cache misses.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        counters: LLMCounters | None = None,
        max_cache_size: int = MAX_CACHE_SIZE,
        batch_size: int = 32,
    ) -> None:
        self.decoder = decoder_of(model)
        self.tokenizer = tokenizer
        self.counters = counters if counters is not None else LLMCounters.for_model(model)
        self.max_cache_size = max_cache_size
        self.batch_size = batch_size
        self.hits = 0
        self.misses = 0
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @property
    def dim(self) -> int:
        """Embedding size (the model's hidden size)."""
        return self.decoder.embed_tokens.embedding_dim

    @property
    def device(self) -> torch.device:
        return self.decoder.embed_tokens.weight.device

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses); 0.0 before any lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), dim) float32 CPU embeddings.

        Each text counts one hit if its embedding is cached or was already requested earlier
        in this call, else one miss.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings")
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        computed = {}
        for first in range(0, len(missing), self.batch_size):
            chunk = missing[first : first + self.batch_size]
            computed.update(zip(chunk, self._compute(chunk)))
        rows = []
        for text in texts:
            if text in computed:
                embedding = computed[text]
            else:
                embedding = self._cache[text]
                self._cache.move_to_end(text)
            rows.append(embedding)
        for text, embedding in computed.items():
            self._cache[text] = embedding
            if len(self._cache) > self.max_cache_size:
                self._cache.popitem(last=False)
        return torch.stack(rows) if rows else torch.zeros((0, self.dim))

    def clear(self) -> None:
        """Empty the cache and zero the hit/miss counts."""
        self._cache.clear()
        self.hits = self.misses = 0

    def _compute(self, texts: list[str]) -> list[torch.Tensor]:
        start = time.perf_counter()
        device = self.device
        token_ids = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        if min(len(ids) for ids in token_ids) == 0:
            raise ValueError("cannot embed a text with no tokens")
        length = max(len(ids) for ids in token_ids)
        input_ids = torch.full((len(texts), length), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(texts), length), dtype=torch.long)
        for row, ids in enumerate(token_ids):  # right padding keeps default position ids right
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        with torch.no_grad():
            hidden = self.decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = ((hidden * mask).sum(dim=1) / mask.sum(dim=1)).float().cpu()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        tokens = int(attention_mask.sum())
        self.counters.add(
            new_tokens=tokens,
            layer_tokens=tokens,
            num_layers=len(self.decoder.layers),
            seconds=time.perf_counter() - start,
        )
        return list(pooled.unbind(0))
