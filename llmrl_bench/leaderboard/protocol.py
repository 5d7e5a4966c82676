"""A submission's configs are data: parsed against the project's schemas, rebuilt from the track.

The registered components are the schemas of :mod:`llmrl_bench.registry` (groups ``agent``,
``env``, ``repr``; the project's own and the maintainer's ``$LLMRL_BENCH_PLUGINS``): each
carries its ``_target_``, so that set is the allowlist. A run config may name exactly one of them per group, at the top of that group's
section; any other ``_target_`` or Hydra key (``_args_``, ``_partial_`` ...) anywhere is
refused, and every section must parse against its schema (no unknown keys, right types).

:func:`rebuild_config` makes the config a verifier runs: the track's env config, budget and
the run's seed, plus only the agent and repr values that parsed; logging, checkpoints and
paths are the verifier's. Its ``run_id`` must be the submitted one, or the run is not the
track's experiment.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any, Iterator

from omegaconf import OmegaConf

from llmrl_bench import registry, results
from llmrl_bench.config import RunConfig

COMPONENT_GROUPS = ("agent", "env", "repr", "reward")
#: Groups a run config may lack: it was recorded before the group existed, and means the group's default.
OPTIONAL_GROUPS = {"reward": "direct"}
#: Keys Hydra's ``instantiate`` acts on; only a component's own ``_target_`` may appear.
HYDRA_KEYS = ("_target_", "_args_", "_recursive_", "_convert_", "_partial_")


def registered_components() -> dict[str, dict[str, type]]:
    """``group -> {_target_: schema dataclass}`` of every registered component."""
    return {group: {schema._target_: schema for schema in registry.schemas(group).values()} for group in COMPONENT_GROUPS}


def _special_keys(config: Any, where: str = "config") -> Iterator[tuple[str, str]]:
    """Every ``(path, key)`` whose key Hydra would act on (``_name_``-shaped), at any depth."""
    if isinstance(config, dict):
        for key, value in config.items():
            path = f"{where}.{key}"
            if isinstance(key, str) and (key in HYDRA_KEYS or (key.startswith("_") and key.endswith("_"))):
                yield path, key
            yield from _special_keys(value, path)
    elif isinstance(config, list):
        for i, value in enumerate(config):
            yield from _special_keys(value, f"{where}[{i}]")


def _parsed(schema: type, section: Any) -> dict[str, Any]:
    """``section`` merged into ``schema``; raises on unknown keys or wrong types."""
    return copy.deepcopy(_parsed_json(schema, json.dumps(section, sort_keys=True)))


@functools.lru_cache(maxsize=256)
def _parsed_json(schema: type, section: str) -> dict[str, Any]:
    """Cached by the section's JSON: the runs of a submission share their sections, and OmegaConf is slow."""
    merged = OmegaConf.merge(OmegaConf.structured(schema), json.loads(section))
    return OmegaConf.to_container(merged, resolve=True, enum_to_str=True)  # type: ignore[return-value]


def config_problems(config: Any) -> list[str]:
    """One line per part of a run config that is not plain data of the registered schemas."""
    if not isinstance(config, dict):
        return ["config is not a mapping"]
    components = registered_components()
    problems = []
    for path, key in _special_keys(config):
        top = path.count(".") == 2 and path.split(".")[1] in COMPONENT_GROUPS
        if not (key == "_target_" and top):
            problems.append(f"{path} is refused: only {', '.join(COMPONENT_GROUPS)} name a _target_, at the top of their section")
    for group in COMPONENT_GROUPS:
        if group in OPTIONAL_GROUPS and group not in config:
            continue
        section = config.get(group)
        target = section.get("_target_") if isinstance(section, dict) else None
        if target not in components[group]:
            allowed = ", ".join(sorted(components[group]))
            problems.append(f"config.{group}._target_ is {str(target)[:120]!r}, not a registered {group}; allowed: {allowed}")
            continue
        try:
            _parsed(components[group][target], section)
        except Exception as error:  # noqa: BLE001 - any schema error is one line
            problems.append(f"config.{group} does not parse as {components[group][target].__name__}: {' '.join(str(error).split())[:160]}")
    rest = {key: value for key, value in config.items() if key not in COMPONENT_GROUPS}
    try:
        _parsed(RunConfig, rest)
    except Exception as error:  # noqa: BLE001
        problems.append(f"config does not parse as RunConfig: {' '.join(str(error).split())[:160]}")
    return problems


def rebuild_config(config: dict[str, Any], env_config: dict[str, Any], budget: dict[str, int], results_dir: str | Path) -> dict[str, Any]:
    """The config a verifier runs: the track's env and budget, the run's seed, the parsed agent and repr values.

    Call only on a config without :func:`config_problems`.
    """
    components = registered_components()
    base = _parsed(RunConfig, {})
    parsed = _parsed(RunConfig, {key: value for key, value in config.items() if key not in COMPONENT_GROUPS})
    rebuilt = {
        **base,  # type: ignore[dict-item]
        "agent": _parsed(components["agent"][config["agent"]["_target_"]], config["agent"]),
        "repr": _parsed(components["repr"][config["repr"]["_target_"]], config["repr"]),
        **{group: _parsed(components[group][config[group]["_target_"]], config[group])
           for group in OPTIONAL_GROUPS if group in config},
        "env": dict(env_config),
        "budget": dict(budget),
        "seed": int(parsed["seed"]),
        "torch_threads": int(parsed["torch_threads"]),
        "sweep": str(parsed["sweep"]),
        "results_dir": str(results_dir),
        "progress": False,
        "overwrite": False,
    }
    rebuilt["logger"] = {**rebuilt["logger"], "kind": "none", "mode": "disabled"}
    rebuilt["checkpoint"] = {**rebuilt["checkpoint"], "enabled": False}
    return rebuilt


def rebuilt_run_id(config: dict[str, Any], env_config: dict[str, Any], budget: dict[str, int]) -> str:
    return results.run_id(rebuild_config(config, env_config, budget, "."))
