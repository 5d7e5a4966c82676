"""State representations: how an observation is shown to the agent (``repr=`` in the config).

A representation config (``conf/repr/*.yaml``) instantiates a :class:`Representation`
through ``_target_``. It wraps raw envs of an :class:`~llmrl_bench.envs.base.EnvSuite`
with an ``ObservationWrapper`` (single envs) or a vector observation wrapper.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import gymnasium as gym

if TYPE_CHECKING:
    from llmrl_bench.envs.base import EnvSuite


class Representation(ABC):
    """Attributes:
    name: ``vector``, ``text`` or ``llm_embed``.
    is_text: observations are ``str`` (LLM agents consume these).
    """

    name: str
    is_text: bool = False

    @abstractmethod
    def wrap(self, env: gym.Env, suite: "EnvSuite") -> gym.Env:
        """``env`` (a raw env of ``suite``) with observations in this representation."""

    @abstractmethod
    def wrap_vec(self, envs: gym.vector.VectorEnv, suite: "EnvSuite") -> gym.vector.VectorEnv:
        """A natively vectorised raw env with batched observations in this representation."""
