"""Command line: ``llmrl-bench [-m] key=value ...`` (also ``python -m llmrl_bench``).

Before Hydra runs anything, this module

* translates ``seed=A-B`` into Hydra's ``seed=range(A,B+1)`` (A..B inclusive);
* expands the sweep exactly as Hydra's basic sweeper does (the command line plus an
  experiment's ``hydra.sweeper.params``), refusing more than ``max_jobs`` jobs before expanding;
* composes every job and checks it (``llmrl_bench.validation``), so that bad input fails with
  one line and exit code 2, before any run starts and before anything is written.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Sequence

import hydra
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, RangeSweep
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from llmrl_bench import commands, sweep
from llmrl_bench.config import CONFIG_DIR, CONFIG_NAME, group_options, register_configs
from llmrl_bench.errors import ConfigError, RunFailed
from llmrl_bench.progress import terminal_line
from llmrl_bench.runner import run_with_status
from llmrl_bench.validation import check_config, check_moved_keys
from llmrl_bench.llm.model import bound_kernel_caches

PROG = "llmrl-bench"
CHECKED_GROUPS = ("agent", "env", "repr", "reward", "budget", "logger", "debug", "experiment", "hparams")
MULTIRUN_FLAGS = ("-m", "--multirun")
SEED_RANGE = re.compile(r"^(\d+)-(\d+)$")
SEED_FORMS = "an integer >= 0, A-B (e.g. 0-9), a list 1,3,5 or range(0,10)"

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
            elif not re.fullmatch(r"\d+(,\d+)*|range\(\s*\d+\s*(,\s*\d+\s*){1,2}\)", value):
                raise ConfigError(f"seed={value} is not a seed: use {SEED_FORMS}")
        translated.append(override)
    return translated


def _one_line(error: BaseException) -> str:
    text = str(error)
    if error.__cause__ is not None:  # Hydra wraps OmegaConf's message (which names the allowed values)
        text += "\n" + str(error.__cause__)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if "HYDRA_FULL_ERROR" not in line and "To append to your config" not in line
             and not line.startswith(("full_key", "reference_type", "object_type"))]
    return " ".join(lines[:3]) or type(error).__name__


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Hydra's own parse of the overrides; a malformed one is one line that names it."""
    parser = OverridesParser.create()
    parsed = []
    for override in overrides:
        if "=" not in override.lstrip("~"):
            raise ConfigError(f"'{override}' is not key=value (a value with spaces needs quotes: key='a b')")
        try:
            parsed.extend(parser.parse_overrides([override]))
        except Exception as error:  # noqa: BLE001 - Hydra's grammar errors become one line
            raise ConfigError(f"cannot parse '{override}': {_one_line(error).split('. ')[0]}") from None
    return parsed


def count_jobs(overrides: Sequence[Override]) -> int:
    """The number of jobs a sweep would launch, computed without expanding it (the last value of a key wins)."""
    sizes: dict[str, int] = {}
    for override in overrides:
        size = 1
        if override.is_sweep_override():
            value = override.value()
            if isinstance(value, RangeSweep):
                size = max(0, math.ceil((value.stop - value.start) / value.step))
            else:
                size = len(list(override.sweep_string_iterator()))
        sizes[override.get_key_element()] = size
    return math.prod(sizes.values())


def sweep_jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """Every job's override list, as Hydra's basic sweeper makes them (experiment sweeps included)."""
    parsed = parse_overrides(overrides)
    if not multirun:
        if any(override.is_sweep_override() for override in parsed):
            raise ConfigError(f"these overrides sweep {count_jobs(parsed)} jobs: add -m (--multirun) to run them all")
        return [list(overrides)]
    for override in overrides:
        check_group_choice(override)
    try:
        cfg = GlobalHydra.instance().hydra.compose_config(CONFIG_NAME, list(overrides), run_mode=RunMode.MULTIRUN, with_log_configuration=False)
    except Exception as error:  # noqa: BLE001
        raise ConfigError(_one_line(error)) from None
    params = [f"{key}={value}" for key, value in (cfg.hydra.sweeper.params or {}).items()] + list(overrides)  # as BasicSweeper.sweep
    parsed = parse_overrides(params)
    jobs = count_jobs(parsed)
    if jobs > cfg.max_jobs:
        raise ConfigError(f"this sweep has {jobs} jobs, more than max_jobs={cfg.max_jobs}; narrow it or raise max_jobs=N")
    if jobs == 0:
        raise ConfigError("this sweep has no jobs (an empty range?)")
    return BasicSweeper.split_arguments(parsed, max_batch_size=None)[0]


def check_group_choice(override: str) -> None:
    """``group=option`` names a YAML option of the group (each value of a sweep too)."""
    key, sep, value = override.partition("=")
    if not sep or key not in CHECKED_GROUPS or value == "null":
        return
    allowed = group_options(key)
    for choice in (part.strip() for part in value.split(",")):
        if choice not in allowed and not choice.startswith(("range(", "choice(", "glob(")):
            raise ConfigError(f"unknown {key} '{choice}'; allowed: {', '.join(allowed)}")


def _unknown_key(error: BaseException, overrides: list[str]) -> ConfigError | None:
    """``agent.foo=1`` on a schema without ``foo``: one line listing the valid keys."""
    match = re.search(r"Could not override '([^']+)'", str(error))
    if not match:
        return None
    key = match.group(1)
    parent, _, name = key.rpartition(".")
    rest = [item for item in overrides if item.partition("=")[0].lstrip("+~") != key]
    try:
        node = OmegaConf.select(compose(config_name=CONFIG_NAME, overrides=rest), parent) if parent else None
    except Exception:  # noqa: BLE001
        return None
    if not isinstance(node, DictConfig):
        return None
    return ConfigError(f"unknown key {key}; valid keys of {parent}: {', '.join(sorted(map(str, node.keys())))}")


def check_job(overrides: list[str]) -> None:
    """Compose one job's config and check it; raises :class:`ConfigError` with one line."""
    for override in overrides:
        check_group_choice(override)
    try:
        cfg = compose(config_name=CONFIG_NAME, overrides=overrides)
    except Exception as error:  # noqa: BLE001 - every composition error becomes one line
        raise (_unknown_key(error, overrides) or ConfigError(_one_line(error))) from None
    try:
        check_config(cfg)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001
        raise ConfigError(_one_line(error)) from None


def check_command_line(argv: Sequence[str]) -> tuple[list[str], int]:
    """Translate and check a command line; returns the argv to hand to Hydra and the number of jobs."""
    argv = translate_seed_ranges(argv)
    flags = [arg for arg in argv if arg.startswith("-")]
    overrides = [arg for arg in argv if not arg.startswith("-")]
    check_moved_keys(overrides)
    if any(flag not in MULTIRUN_FLAGS for flag in flags):
        return argv, 0  # --cfg job, --info, ...: Hydra's own
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        jobs = sweep_jobs(overrides, multirun=bool(flags))
        for job in jobs:
            check_job([item for item in job if not item.lstrip("+~").startswith("hydra")])
    GlobalHydra.instance().clear()
    return list(flags) + overrides, len(jobs)


@hydra.main(version_base=None, config_path=str(CONFIG_DIR), config_name=CONFIG_NAME)
def hydra_main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    output_dir = hydra_cfg.runtime.output_dir
    title = " ".join(hydra_cfg.overrides.task) or "defaults"
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if multirun and sweep.sweep_interrupted(output_dir):
        return None  # the sweep was interrupted before this job started
    run_dir = sweep.run_dir_of(cfg)
    status, run_metrics = "interrupted", None
    started = time.perf_counter()
    with sweep.job_interrupts(output_dir, title, Path(run_dir), multirun), \
            terminal_line(Path(output_dir).parent, sweep.sweep_workers()) as line:
        position = sweep.job_position(output_dir, hydra_cfg.job.num, line) if multirun else None
        try:
            status, run_metrics = run_with_status(cfg, position)
        except RunFailed as error:
            sweep.write_outcome(output_dir, "failed", title, str(error.__cause__ or error))
            if multirun:
                return None  # the sweep goes on; SweepSummary lists the failure at the end
            print(f"{PROG}: error: {error}", file=sys.stderr)
            sys.exit(1)
        sweep.write_outcome(output_dir, status, title, metrics=run_metrics, run_dir=run_dir, run=sweep.run_label(cfg),
                            seconds=time.perf_counter() - started)
    if status == "interrupted":
        return None
    if not multirun:
        sweep.print_run_summary(cfg, status, run_metrics)
    return None if run_metrics is None else run_metrics["cumulative_reward"]


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in commands.SUBCOMMANDS:
        sys.exit(commands.main(argv))
    if any(arg in commands.HELP_FLAGS for arg in argv):
        return commands.print_help(argv)
    try:
        argv, num_jobs = check_command_line(argv)
    except ConfigError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        sys.exit(2)
    bound_kernel_caches()  # before any run uses oneDNN; sweep workers inherit it
    os.environ.setdefault(sweep.SWEEP_ID_VARIABLE, str(os.getpid()))  # one output folder per sweep
    os.environ[sweep.SWEEP_JOBS_VARIABLE] = str(num_jobs)
    sys.argv = [sys.argv[0], *argv]
    with sweep.interrupt_handling(multirun=any(arg in MULTIRUN_FLAGS for arg in argv)):
        hydra_main()
