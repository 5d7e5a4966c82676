"""Command line: ``python -m llmrl_bench [-m] key=value ...`` (also ``llmrl-bench``).

Before Hydra parses anything, this module

* translates ``seed=A-B`` into Hydra's ``seed=range(A,B+1)`` (A..B inclusive);
* composes every job of the sweep and checks it, so that bad input (an unknown
  option or key, a wrong type, an empty seed range, a budget <= 0, an agent that
  cannot use the representation) fails with one line, a non-zero exit, before any
  run starts and before anything is written to ``results/``.
"""

from __future__ import annotations

import itertools
import re
import sys
from typing import Sequence

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from llmrl_bench import commands
from llmrl_bench.config import CONFIG_DIR, CONFIG_NAME, group_options, register_configs
from llmrl_bench.runner import ConfigError, RunFailed, check_config, run_with_status
from llmrl_bench.sweep import write_outcome

PROG = "llmrl-bench"
CHECKED_GROUPS = ("agent", "env", "repr", "budget", "logger", "debug", "experiment")
MULTIRUN_FLAGS = ("-m", "--multirun")
SEED_RANGE = re.compile(r"^(\d+)-(\d+)$")
SEED_FORMS = "an integer, A-B (e.g. 0-9), a list 1,3,5 or range(0,10)"

register_configs()


def translate_seed_ranges(overrides: Sequence[str]) -> list[str]:
    """Rewrite ``seed=A-B`` as ``seed=range(A,B+1)``; reject malformed seeds in one line."""
    translated = []
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key.lstrip("+~") == "seed":
            match = SEED_RANGE.match(value)
            if match:
                start, end = int(match.group(1)), int(match.group(2))
                if start > end:
                    raise ConfigError(f"seed={value} is an empty range: A-B needs A <= B (e.g. seed={end}-{start})")
                override = f"{key}=range({start},{end + 1})"
            elif not re.fullmatch(r"-?\d+(,-?\d+)*|range\(\s*-?\d+\s*(,\s*-?\d+\s*){1,2}\)", value):
                raise ConfigError(f"seed={value} is not a seed: use {SEED_FORMS}")
        translated.append(override)
    return translated


def expand_jobs(overrides: Sequence[str]) -> list[list[str]]:
    """The override lists of every job a (multi)run launches, as Hydra's basic sweeper would."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    choices = []
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    return [list(job) for job in itertools.product(*choices)]


def _one_line(error: BaseException) -> str:
    text = str(error)
    if error.__cause__ is not None:  # Hydra wraps OmegaConf's message (which names the allowed values)
        text += "\n" + str(error.__cause__)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if "HYDRA_FULL_ERROR" not in line and not line.startswith(("full_key", "reference_type", "object_type"))]
    return " ".join(lines[:3]) or type(error).__name__


def check_job(overrides: list[str]) -> None:
    """Compose one job's config and check it; raises :class:`ConfigError` with one line."""
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key in CHECKED_GROUPS and value != "null":
            allowed = group_options(key)
            if value not in allowed:
                raise ConfigError(f"unknown {key} '{value}'; allowed: {', '.join(allowed)}")
    try:
        cfg = compose(config_name=CONFIG_NAME, overrides=overrides)
    except Exception as error:  # noqa: BLE001 - every composition error becomes one line
        raise ConfigError(_one_line(error)) from None
    try:
        check_config(cfg)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001
        raise ConfigError(_one_line(error)) from None


def check_command_line(argv: Sequence[str]) -> list[str]:
    """Translate and check a command line; returns the argv to hand to Hydra."""
    argv = translate_seed_ranges(argv)
    flags = [arg for arg in argv if arg.startswith("-")]
    overrides = [arg for arg in argv if not arg.startswith("-")]
    if any(flag not in MULTIRUN_FLAGS for flag in flags):
        return argv  # --help, --cfg job, ...: Hydra's own
    multirun = any(flag in MULTIRUN_FLAGS for flag in flags)
    jobs = expand_jobs(overrides)
    if len(jobs) > 1 and not multirun:
        raise ConfigError(f"these overrides sweep {len(jobs)} jobs: add -m (--multirun) to run them all")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        for job in jobs:
            check_job([item for item in job if not item.lstrip("+~").startswith("hydra")])
    GlobalHydra.instance().clear()
    return list(flags) + overrides


@hydra.main(version_base=None, config_path=str(CONFIG_DIR), config_name=CONFIG_NAME)
def hydra_main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    output_dir = hydra_cfg.runtime.output_dir
    title = " ".join(hydra_cfg.overrides.task) or "defaults"
    try:
        status, run_metrics = run_with_status(cfg)
    except RunFailed as error:
        write_outcome(output_dir, "failed", title, str(error.__cause__ or error))
        if hydra_cfg.mode == RunMode.MULTIRUN:
            return None  # the sweep goes on; SweepSummary lists the failure at the end
        print(f"{PROG}: error: {error}", file=sys.stderr)
        sys.exit(1)
    write_outcome(output_dir, status, title)
    return None if run_metrics is None else run_metrics["cumulative_reward"]


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in commands.SUBCOMMANDS:
        sys.exit(commands.main(argv))
    if any(arg in commands.HELP_FLAGS for arg in argv):
        return commands.print_help(argv)
    try:
        argv = check_command_line(argv)
    except ConfigError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [sys.argv[0], *argv]
    hydra_main()
