"""The one registry of components: a config schema registers itself where it is defined.

``@register("agent", "ppo")`` on ``PPOConfig`` (whose ``_target_`` names the class) is all an
agent needs besides its file and ``conf/agent/ppo.yaml`` (whose defaults list names
``ppo_schema``). Hydra's ConfigStore (``llmrl_bench.config``), the CLI's allowed values,
``llmrl-bench list`` and the leaderboard's allowed ``_target_`` values all read this registry.

Components are found by importing every module of ``llmrl_bench.agents``, ``.envs``,
``.representations`` and ``.rewards``, plus the modules named in ``$LLMRL_BENCH_PLUGINS`` (comma-separated).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import Any, Callable, TypeVar

GROUPS = ("agent", "env", "repr", "reward")
PACKAGES = {"agent": "llmrl_bench.agents", "env": "llmrl_bench.envs", "repr": "llmrl_bench.representations",
            "reward": "llmrl_bench.rewards"}
PLUGINS_VARIABLE = "LLMRL_BENCH_PLUGINS"

Schema = TypeVar("Schema", bound=type)
_SCHEMAS: dict[str, dict[str, type]] = {group: {} for group in GROUPS}


def register(group: str, name: str) -> Callable[[Schema], Schema]:
    """Class decorator: the config dataclass ``schema`` is option ``name`` of ``group``.

    It is stored in ConfigStore as ``<group>/<name>_schema``; its ``_target_`` field names the component.
    """
    if group not in GROUPS:
        raise ValueError(f"unknown component group {group!r}; allowed: {', '.join(GROUPS)}")

    def decorate(schema: Schema) -> Schema:
        known = _SCHEMAS[group].get(name)
        if known is not None and known.__qualname__ != schema.__qualname__:
            raise ValueError(f"{group} {name!r} is registered twice: {known.__qualname__} and {schema.__qualname__}")
        _SCHEMAS[group][name] = schema
        return schema

    return decorate


def discover() -> None:
    """Import every component module (and the plugins), so that their ``@register`` calls run."""
    for package_name in PACKAGES.values():
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package_name}.{module.name}")
    for module_name in filter(None, os.environ.get(PLUGINS_VARIABLE, "").split(",")):
        importlib.import_module(module_name.strip())


def schemas(group: str) -> dict[str, type]:
    """``{name: schema}`` of ``group``, every component module imported."""
    discover()
    return dict(sorted(_SCHEMAS[group].items()))


def targets() -> dict[str, str]:
    """``{_target_: group}`` of every registered component: the only targets a config may name."""
    return {schema._target_: group for group in GROUPS for schema in schemas(group).values()}


def schema_of(target: str) -> type:
    """The registered schema whose ``_target_`` is exactly ``target``; ``KeyError`` names the allowed ones."""
    for group in GROUPS:
        for schema in schemas(group).values():
            if schema._target_ == target:
                return schema
    raise KeyError(f"_target_={target!r} is not a registered component; allowed: {', '.join(sorted(targets()))}")


def typed_config(node: Any) -> Any:
    """``node`` (a dict or DictConfig with a registered ``_target_``) as its schema's dataclass, type-checked."""
    from omegaconf import DictConfig, OmegaConf

    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node  # plain data only
    schema = schema_of(str(values["_target_"]))
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))


def identity_view(section: dict[str, Any]) -> dict[str, Any]:
    """``section`` (a config section with a ``_target_``) as the run_id sees it.

    A schema may declare ``IDENTITY_NEUTRAL: ClassVar[dict]``: options added after results were
    recorded, with the value that reproduces the old behaviour. At exactly that value such an option
    is left out of the run_id, so earlier run_ids stay valid; any other value changes the run_id.
    """
    schema = next((s for group in GROUPS for s in schemas(group).values() if s._target_ == section.get("_target_")), None)
    neutral = getattr(schema, "IDENTITY_NEUTRAL", {})
    return {key: value for key, value in section.items() if not (key in neutral and value == neutral[key])}


def component_class(group: str, name: str) -> type:
    """The class of the registered ``name`` in ``group`` (its schema's ``_target_``)."""
    from hydra.utils import get_class

    return get_class(schemas(group)[name]._target_)
