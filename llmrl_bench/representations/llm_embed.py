"""``repr=llm_embed``: a frozen LLM's pooled hidden state of the text observation, as a vector.

The observation is first put into words by ``repr=text`` (``describe_minigrid``,
``describe_cartpole``); the mean over its tokens of the model's final (normed) hidden state
(``llmrl_bench.llm.TextEmbedder``) is the ``Box`` observation the classic agents (``dqn``,
``ppo``, ``reinforce``) read. Observations repeat a lot in grid worlds, so embeddings are
cached by text and computed once; ``provenance()`` reports the cache hit rate and the
compute spent. The model loads when the first env is wrapped, not when the config is built.

The model is the run's top-level ``llm`` node (``llmrl_bench.llm.settings``): ``conf/repr/llm_embed.yaml``
wires ``repr.llm`` to it, so ``llm.model=`` sets it as it does for the LLM agents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers.vector import TransformObservation

from llmrl_bench.registry import register
from llmrl_bench.llm.settings import LLMModelConfig, as_model_config, autocast_context, autocast_name, check_model_config, check_wired
from llmrl_bench.representations.base import Representation
from llmrl_bench.representations.text import TextRepresentation

if TYPE_CHECKING:
    from llmrl_bench.envs.base import EnvSuite

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
        """One-line errors for a model that cannot load or an invalid ``llm`` setting."""
        check_wired(cfg.repr.llm, cfg.get("llm"), "repr")
        check_model_config(as_model_config(cfg.repr.llm))

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
        with torch.no_grad(), autocast_context(self.llm, embedder.device):
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
            "llm_device": str(embedder.device),
            "llm_autocast": autocast_name(self.llm, embedder.device),
        }


@register("repr", "llm_embed")
@dataclass
class LLMEmbedConfig:
    """A frozen LLM's mean-pooled hidden state of the text observation (``repr=llm_embed``)."""

    _target_: str = "llmrl_bench.representations.llm_embed.LLMEmbedRepresentation"
    name: str = "llm_embed"
    """Representation name in results."""
    llm: LLMModelConfig = field(default_factory=LLMModelConfig)
    """The model whose hidden states are the features: the top-level ``llm`` (``conf/repr/llm_embed.yaml``)."""
    batch_size: int = 32
    """Texts per forward for the cache misses of one vector-env step."""
    max_cache_size: int = 100_000
    """Texts whose embeddings are kept (about 2.3 KB each for SmolLM2)."""
