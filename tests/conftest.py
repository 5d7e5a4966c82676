"""Shared fixtures: Hydra composition without a subprocess, and CLI runs through the real entry point."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from llmrl_bench.config import CONFIG_DIR, CONFIG_NAME, register_configs

REPO = Path(__file__).resolve().parent.parent

register_configs()


@pytest.fixture
def make_config():
    """``make_config(*overrides)`` composes the run config as the CLI would."""

    def _compose(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            return compose(config_name=CONFIG_NAME, overrides=list(overrides))

    yield _compose
    GlobalHydra.instance().clear()


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m llmrl_bench ARGS`` in a subprocess (one job per core, W&B offline)."""
    full_env = {**os.environ, "LLMRL_BENCH_JOBS": "2", "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "llmrl_bench", *args],
        cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout, env=full_env,
    )


def build_agent(agent: str, envs, seed: int = 0, **hyperparameters):
    """Agent ``agent`` from its typed config (its dataclass merged with ``hyperparameters``, as Hydra types them)."""
    from omegaconf import OmegaConf

    from llmrl_bench import registry

    schema = registry.schemas("agent")[agent]
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), hyperparameters))
    return registry.component_class("agent", agent)(config, envs.observation_space, envs.action_space, seed)


def load_experiment(name: str) -> ModuleType:
    """The script ``experiments/<name>.py`` as a module (``experiments/`` is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
