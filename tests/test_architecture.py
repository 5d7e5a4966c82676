"""The layering holds: imports run one way, no cycles, short functions, and an agent is one file plus one YAML."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from llmrl_bench import results
from tests.conftest import REPO, run_cli

PACKAGE = REPO / "llmrl_bench"
COMPONENT_PACKAGES = ("llmrl_bench.agents", "llmrl_bench.envs", "llmrl_bench.representations", "llmrl_bench.llm")
#: What paper/ may import from the library: the results loader, statistics, plots, the metric registry.
PAPER_ALLOWED = ("llmrl_bench.results", "llmrl_bench.stats", "llmrl_bench.plots", "llmrl_bench.metrics")
MAX_FUNCTION_LINES = 80
MAX_LEARN_LINES = 120


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``llmrl_bench``/``paper`` module ``path`` imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in ("llmrl_bench", "paper")}


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = {module_name(path): path for path in root.rglob("*.py")}
    return {name: {imp for imp in imports_of(path) if imp in modules and imp != name} for name, path in modules.items()}


def test_no_component_imports_the_runner():
    graph = import_graph(PACKAGE)
    offenders = {name: sorted(imp for imp in imports if imp.startswith(("llmrl_bench.runner", "llmrl_bench.cli")))
                 for name, imports in graph.items() if name.startswith(COMPONENT_PACKAGES)}
    assert {name: imps for name, imps in offenders.items() if imps} == {}


def test_no_import_cycle():
    graph = import_graph(PACKAGE)
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for child in sorted(graph[node]):
            if state.get(child) == "open":
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(child):], child]))
            if child not in state:
                visit(child, [*path, child])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_paper_reads_the_library_only_through_results_stats_plots_and_metrics():
    for path in (REPO / "paper").rglob("*.py"):
        library = {imp for imp in imports_of(path) if imp.startswith("llmrl_bench")}
        assert all(imp == "llmrl_bench" or imp.startswith(PAPER_ALLOWED) for imp in library), (path.name, library)


def function_lengths(root: Path):
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{path.relative_to(REPO)}:{node.lineno} {node.name}", node.name, node.end_lineno - node.lineno + 1


def test_functions_are_short():
    """At most 80 lines, an agent's ``learn`` (one CleanRL-style loop) at most 120."""
    too_long = [(where, lines) for root in (PACKAGE, REPO / "paper") for where, name, lines in function_lengths(root)
                if lines > (MAX_LEARN_LINES if name == "learn" else MAX_FUNCTION_LINES)]
    assert too_long == []


AGENT_FILE = '''"""A test agent added from one file: it always takes action 0."""
from dataclasses import dataclass

import numpy as np

from llmrl_bench.registry import register


@register("agent", "always_zero")
@dataclass
class AlwaysZeroConfig:
    """An agent that needs no training."""

    _target_: str = "llmrl_bench.agents.always_zero.AlwaysZero"
    note: str = "zero"
    """A setting, to show the schema is checked."""


class AlwaysZero:
    name = "always_zero"
    supported_reprs = ("vector",)

    def __init__(self, config, observation_space, action_space, seed):
        self.config = config

    def act(self, observations, greedy=True):
        return np.zeros(len(observations), np.int64)

    def learn(self, envs, total_steps, hooks):
        env = envs.make()
        env.reset(seed=0)
        for step in range(1, total_steps + 1):
            _, _, terminated, truncated, _ = env.step(0)
            if terminated or truncated:
                env.reset()
            hooks.on_step(step)

    def save(self, path):
        path.write_bytes(b"")

    def load(self, path):
        pass
'''
AGENT_YAML = "# A test agent (tests/test_architecture.py).\ndefaults:\n  - always_zero_schema\n  - _self_\n"


def test_adding_an_agent_is_one_file_and_one_yaml(tmp_path):
    module = PACKAGE / "agents" / "always_zero.py"
    option = REPO / "conf" / "agent" / "always_zero.yaml"
    assert not module.exists() and not option.exists()
    try:
        module.write_text(AGENT_FILE)
        option.write_text(AGENT_YAML)
        out = tmp_path / "results"
        proc = run_cli("agent=always_zero", "env=cartpole", "debug=smoke", f"results_dir={out}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        (result,) = results.load_results(out)[0]
        assert result.agent == "always_zero" and result.config["agent"]["note"] == "zero"
        bad = run_cli("agent=always_zero", "agent.note=1", "agent.nope=2", "debug=smoke", f"results_dir={out}", cwd=tmp_path)
        assert bad.returncode == 2 and "agent.nope" in bad.stderr
    finally:
        module.unlink(missing_ok=True)
        option.unlink(missing_ok=True)
