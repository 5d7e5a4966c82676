"""The up-front check of one composed run config: every problem is one line, found before anything runs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from hydra.utils import get_class
from omegaconf import DictConfig

from llmrl_bench import registry
from llmrl_bench.errors import ConfigError
from llmrl_bench.llm.settings import MOVED_KEYS

BUDGET_KEYS = ("env_steps", "num_evals", "eval_episodes", "held_out_episodes")


def check_config(cfg: DictConfig) -> None:
    """Reject configs that would fail or mislead, before anything is trained or written."""
    for key in BUDGET_KEYS:
        if cfg.budget[key] <= 0:
            raise ConfigError(f"budget.{key}={cfg.budget[key]} must be a positive integer")
    if cfg.seed < 0:
        raise ConfigError(f"seed={cfg.seed} must be >= 0 (seeds are 0, 1, 2, ...)")
    if cfg.torch_threads < 1:
        raise ConfigError(f"torch_threads={cfg.torch_threads} must be >= 1 (threads per run; 1 under the parallel launcher)")
    if cfg.checkpoint.every_steps <= 0:
        raise ConfigError(f"checkpoint.every_steps={cfg.checkpoint.every_steps} must be a positive integer")
    check_results_dir(cfg.results_dir)
    for group in ("agent", "env", "repr", "reward"):
        if cfg.get(group) is not None or group != "reward":
            check_component(group, cfg[group])
    agent_class = get_class(cfg.agent._target_)
    repr_class = get_class(cfg.repr._target_)
    repr_name = cfg.repr.get("name") or repr_class.name
    allowed = tuple(agent_class.supported_reprs)
    if repr_name not in allowed:
        raise ConfigError(f"repr={repr_name} is not supported by agent={agent_class.name}; allowed: {', '.join(allowed)}")
    reward_class = get_class(cfg.reward._target_) if cfg.get("reward") is not None else None
    for component in (get_class(cfg.env._target_), agent_class, repr_class, reward_class):  # component-specific checks
        validate = getattr(component, "check_config", None)
        if validate is not None:
            validate(cfg)


def check_moved_keys(overrides: list[str]) -> None:
    """``agent.llm.model=`` and its kind moved to the top-level ``llm`` node: say so in one line."""
    for override in overrides:
        key, _, value = override.partition("=")
        moved = MOVED_KEYS.get(key.lstrip("+~"))
        if moved:
            raise ConfigError(f"{key.lstrip('+~')} is set at the top level now: use {moved}={value}")


def check_component(group: str, node: DictConfig) -> None:
    """``node`` names a registered ``_target_`` and holds only its schema's keys, with valid types."""
    try:
        schema = registry.schema_of(str(node._target_))
    except KeyError as error:
        raise ConfigError(f"{group}._target_: {error.args[0]}") from None
    valid = sorted(field.name for field in dataclasses.fields(schema))
    unknown = sorted(set(map(str, node.keys())) - set(valid))
    if unknown:
        raise ConfigError(f"unknown key {group}.{unknown[0]}; valid keys of {group}: {', '.join(valid)}")
    try:
        registry.typed_config(node)
    except Exception as error:  # noqa: BLE001 - OmegaConf names the key and the expected type
        raise ConfigError(f"{group}: {str(error).splitlines()[0]}") from None


def check_results_dir(results_dir: str) -> None:
    """``results_dir`` names a folder that exists or can be made, and can be written; nothing is created here."""
    if not str(results_dir).strip():
        raise ConfigError("results_dir='' is empty; give a folder, e.g. results_dir=results/local")
    path = Path(results_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"results_dir={results_dir} is a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"results_dir={results_dir} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"results_dir={results_dir} is not writable ({existing} denies write access)")
