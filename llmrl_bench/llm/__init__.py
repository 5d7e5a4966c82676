"""The language model of the LLM agents: loading, GLAM action scoring and text embeddings.

Importing this package is cheap; transformers is imported when a model is first loaded.
``HF_HUB_OFFLINE=1`` is set (if unset) so nothing downloads weights at run time.
"""

from llmrl_bench.llm.model import (
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    TINY_RANDOM,
    LLMCounters,
    ModelNotFoundError,
    load_model,
)
from llmrl_bench.llm.embedding import TextEmbedder
from llmrl_bench.llm.scoring import ActionScorer, ScoreOutput, ScoringBatch, build_prompt

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "TINY_RANDOM",
    "ActionScorer",
    "LLMCounters",
    "ModelNotFoundError",
    "ScoreOutput",
    "ScoringBatch",
    "TextEmbedder",
    "build_prompt",
    "load_model",
]
