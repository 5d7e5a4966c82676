"""Config schemas (dataclasses in Hydra's ConfigStore) and the config directory.

Each YAML option names its schema first in its defaults list, so unknown keys and
wrong types fail when the command line is parsed, before any work starts.
Component schemas live beside their components and register themselves
(``llmrl_bench.registry``); this module stores them and defines the top-level ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

from llmrl_bench import registry
from llmrl_bench.llm.settings import LLMModelConfig
from llmrl_bench.results import DEFAULT_TORCH_THREADS

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"
CONFIG_NAME = "config"


@dataclass
class BudgetConfig:
    """How much training and evaluation one run gets."""

    env_steps: int = 100_000
    """Training env steps (summed over parallel envs)."""
    num_evals: int = 20
    """Evaluation points after step 0, evenly spaced over ``env_steps``."""
    eval_episodes: int = 10
    """Greedy episodes per evaluation on the training distribution."""
    held_out_episodes: int = 10
    """Greedy episodes per held-out context per evaluation."""


class LoggerKind(str, Enum):
    wandb = "wandb"
    none = "none"


class WandbMode(str, Enum):
    offline = "offline"
    online = "online"
    disabled = "disabled"


@dataclass
class LoggerConfig:
    """Weights & Biases reporting (``logger=wandb``) or none (``logger=none``)."""

    kind: LoggerKind = LoggerKind.wandb
    """``wandb`` or ``none``."""
    project: str = "llmrl_bench"
    """W&B project name."""
    entity: Optional[str] = None
    """W&B entity (team or user); ``None`` uses the default."""
    mode: WandbMode = WandbMode.offline
    """``offline`` (default), ``online`` or ``disabled``. ``WANDB_MODE`` in the environment wins."""
    log_every_steps: int = 1000
    """Minimum env steps between two training-chart logs."""


@dataclass
class CheckpointConfig:
    """Mid-training checkpoints of resumable agents (dqn, ppo, llm_pg); see ``docs/cluster.md``."""

    enabled: bool = True
    """Save checkpoints, resume from them and stop cleanly on SIGTERM/SIGUSR1/SIGUSR2."""
    every_steps: int = 10_000
    """Env steps between two periodic checkpoints (PPO saves at the next rollout boundary)."""


@dataclass
class RunConfig:
    """The top-level config: one run of ``agent × repr × env × seed``."""

    agent: Any = None
    env: Any = None
    repr: Any = None
    reward: Any = None
    """The training envs' reward (``llmrl_bench.rewards``): ``direct`` (the env's own) or a learned one."""
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Not part of the run_id: checkpointing never changes a result."""
    llm: LLMModelConfig = field(default_factory=LLMModelConfig)
    """The language model of the LLM agents and ``repr=llm_embed`` (``llm.model=``, ``llm.device=``, ...);
    ignored by the others. Not hashed itself: the components that use it hold its values (docs/llm.md)."""
    seed: int = 0
    """Seeds training (python, numpy, torch, envs). Evaluation uses its own fixed seeds."""
    results_dir: str = "results/local"
    """Where ``runs/<run_id>/result.json`` go; git-ignored by default (``results/reference`` holds the committed runs)."""
    sweep: str = "default"
    """Sweep name: groups the runs in W&B."""
    torch_threads: int = DEFAULT_TORCH_THREADS
    """Torch intra-op threads per run (one per job under the parallel launcher)."""
    progress: bool = True
    """Show a progress line per run (only when stderr is a terminal)."""
    overwrite: bool = False
    """Re-run even when a result for the same run_id exists."""
    max_jobs: int = 1000
    """Refuse a sweep of more jobs than this before expanding it (raise it on purpose: max_jobs=5000)."""


def register_configs() -> None:
    """Store the top-level schemas and every registered component's schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    cs.store(group="budget", name="budget_schema", node=BudgetConfig)
    cs.store(group="logger", name="logger_schema", node=LoggerConfig)
    for group in registry.GROUPS:
        for name, schema in registry.schemas(group).items():
            cs.store(group=group, name=f"{name}_schema", node=schema)


def group_options(group: str) -> list[str]:
    """The YAML options of a config group, e.g. ``group_options("agent")``."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
