"""State representations (``repr=``): how observations are shown to agents."""

from __future__ import annotations

from llmrl_bench.representations.base import Representation
from llmrl_bench.representations.text import (
    CARTPOLE_ACTION_NAMES,
    MINIGRID_ACTION_NAMES,
    TextConfig,
    TextObservation,
    TextRepresentation,
    describe_cartpole,
    describe_minigrid,
    describer,
)
from llmrl_bench.representations.vector import MiniGridVector, VectorConfig, VectorRepresentation


__all__ = [
    "CARTPOLE_ACTION_NAMES",
    "MINIGRID_ACTION_NAMES",
    "MiniGridVector",
    "Representation",
    "TextObservation",
    "TextRepresentation",
    "VectorRepresentation",
    "describe_cartpole",
    "describe_minigrid",
    "describer",
]
