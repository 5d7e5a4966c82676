"""Every command in README.md's shell code blocks runs, in a fast form.

Commands are read from README.md's ```bash blocks (``\\`` continuations joined, ``#`` comments
dropped) and run in README order in one shared temporary workspace, so that a command finds
what an earlier one wrote (the leaderboard block packs the runs of the sweep before it).
The fast forms:

* ``python -m llmrl_bench`` / ``llmrl-bench`` training commands get ``debug=smoke``,
  ``logger=none`` (unless they choose a logger or debug option themselves), their own
  ``hydra.sweep.dir``/``hydra.run.dir`` and, unless they name one, a ``results_dir`` shared by
  all commands, so a sweep skips the runs an earlier one made. Sweeps into that shared dir run
  seed ranges shrunk to their first two seeds (``seed=0-9`` runs 0-1, and an experiment's own
  seeds become ``seed=0-1``); a command that names its own ``results_dir`` keeps its seeds,
  because a later command (the leaderboard's ``pack``) checks them.
* LLM agents (and ``repr=llm_embed``) run on the ``tiny-random`` model with the small budget of
  ``tests/test_llm_agents.py`` and their first seed only: a smoke run of ``llm_pg`` on
  SmolLM2-135M takes about 190 s on 2 cores. The classic agents of the same sweep run as above.
* Paths under ``/tmp/`` and ``results/`` (except ``results/reference``) move into the workspace;
  ``.venv/bin/X`` is this interpreter's venv; ``<...>`` placeholders are filled from the
  workspace (one smoke run is made first when nothing matches).
* ``VAR=value`` prefixes are kept, except :data:`KEPT_ENV`; ``a && b`` runs as two commands;
  ``git status`` runs on the repository (read only).
* :data:`SKIPPED` names every command that does not run here, with the reason.

A command with neither a fast form nor an entry in :data:`SKIPPED` fails: give it one.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from llmrl_bench import registry, results
from llmrl_bench.commands import HELP_FLAGS, SUBCOMMANDS
from llmrl_bench.config import CONFIG_DIR, CONFIG_NAME
from tests.conftest import REPO
from tests.test_llm_agents import SMALL_RUN, agent_overrides

README = REPO / "README.md"
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)[ \t]*\n(.*?)^```", re.M | re.S)
VENV_BIN = Path(sys.executable).parent
BENCH = ("python -m llmrl_bench", ".venv/bin/python -m llmrl_bench", "llmrl-bench", ".venv/bin/llmrl-bench")
SEED_RANGE = re.compile(r"^(\d+)-(\d+)$")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
#: What a README command's ``VAR=value`` prefix may not change here: one process (2 shared cores), W&B offline.
KEPT_ENV = {"LLMRL_BENCH_JOBS": "1", "WANDB_MODE": "offline"}

#: README commands that do not run in this test, each with its reason (regex on the command).
SKIPPED = {
    r"^make (run|test)\b": "`make test` is this suite, and `make run` trains a full-budget run: both are checked on their own",
    r"^make ": "make targets are checked on their own, not by running README lines",
    r"hydra/launcher=submitit_slurm": "needs a SLURM cluster (tests/test_launchers.py runs the same path with submitit_local)",
    r"hydra/launcher=ray": "needs hydra-ray-launcher in its own environment (tests/test_launchers.py, when installed)",
    r"^pip install -e '?\.\[ray\]'?": "installs the Ray extra, which conflicts with this environment's joblib",
}


def readme_commands(text: str) -> list[list[str]]:
    """The commands of ``text``'s shell code blocks, as words: continuations joined, comments
    dropped, ``a && b`` and ``a; b`` split in two."""
    found = []
    for block in SHELL_BLOCK.findall(text):
        for line in re.sub(r"\\\n", " ", block).splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&")
            lexer.whitespace_split = True
            words = []
            for word in [*lexer, ";"]:
                if word in (";", "&&"):
                    found += [words] if words else []
                    words = []
                else:
                    words.append(word)
    return found


def split_env(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """``A=1 B=2 cmd args`` as ``({"A": "1", "B": "2"}, ["cmd", "args"])``."""
    count = 0
    while count < len(words) - 1 and ENV_ASSIGNMENT.match(words[count]):
        count += 1
    return dict(word.split("=", 1) for word in words[:count]), words[count:]


COMMANDS = readme_commands(README.read_text())


class Workspace:
    """The temporary home of the README's paths, shared by all commands of one test session."""

    def __init__(self, root: Path):
        self.root = root
        self.results = root / "results"
        (root / "tmp").mkdir()  # the README's /tmp/
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                    "LLMRL_BENCH_JOBS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}

    def run(self, argv: list[str], timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=self.root, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout)

    def ensure_run(self, results_dir: str | Path) -> None:
        """One smoke run (with a W&B run) in ``results_dir``, for commands that read one."""
        made = self.run([sys.executable, "-m", "llmrl_bench", "agent=ppo", "env=cartpole", "debug=smoke", "logger.kind=wandb",
                         "overwrite=true", f"results_dir={results_dir}", f"hydra.run.dir={self.root / 'outputs' / 'example'}"])
        assert made.returncode == 0, made.stderr[-2000:]

    def path(self, value: str) -> str:
        """A README path moved into the workspace (``results/reference`` stays the repository's)."""
        if value.startswith("/tmp/"):
            return str(self.root / "tmp" / value[len("/tmp/"):])
        if value.startswith("results/reference"):
            return str(REPO / value)
        if value == "results/local" or value.startswith("results/"):
            return str(self.results / re.sub(r"^results/(local/?)?", "", value))
        if value.startswith(".venv/bin/"):
            return str(VENV_BIN / value[len(".venv/bin/"):])
        return value

    def fill(self, value: str) -> str:
        """Fill ``<...>`` placeholders from the workspace; makes one smoke run if nothing matches."""
        if not re.search(r"<[^>]*>", value):
            return value
        pattern = re.sub(r"<[^>]*>", "*", value)
        if not glob.glob(pattern):
            self.ensure_run(re.split(r"/(?:wandb|runs)/", pattern)[0])
        matches = sorted(glob.glob(pattern))
        assert matches, f"nothing in the workspace matches {value}"
        return matches[0]

    def word(self, word: str) -> str:
        key, sep, value = word.partition("=")
        if sep and not word.startswith("-") and "/" not in key:
            return f"{key}={self.fill(self.path(value))}"
        return self.fill(self.path(word))


def _is_llm(agent: str) -> bool:
    """Whether ``agent`` runs a language model (its schema has an ``llm`` section)."""
    return any(field.name == "llm" for field in dataclasses.fields(registry.schemas("agent")[agent]))


def _swept_agents(overrides: dict[str, str]) -> list[str]:
    """The agents a training command runs: its ``agent=``, its experiment's, or the default."""
    if "agent" in overrides:
        return overrides["agent"].split(",")
    if "experiment" in overrides:
        experiment = OmegaConf.load(CONFIG_DIR / "experiment" / f"{overrides['experiment']}.yaml")
        swept = OmegaConf.select(experiment, "hydra.sweeper.params.agent")
        if swept:
            return str(swept).split(",")
    defaults = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / f"{CONFIG_NAME}.yaml").defaults, resolve=False)
    return [next(item["agent"] for item in defaults if isinstance(item, dict) and "agent" in item)]


def _first_seeds(seed: str | None, count: int) -> str:
    """The first ``count`` seeds of a seed override (``None``: an experiment's own, from 0)."""
    match = SEED_RANGE.match(seed or "0-9")
    if match:
        start, end = int(match.group(1)), int(match.group(2))
        return f"{start}-{min(end, start + count - 1)}" if count > 1 else str(start)
    seeds = re.findall(r"-?\d+", seed)
    if seed.startswith("range("):
        start = int(seeds[0])
        return f"{start}-{start + count - 1}" if count > 1 else str(start)
    return ",".join(seeds[:count])


def training_forms(args: list[str], ws: Workspace, index: int) -> list[list[str]]:
    """The fast forms of one training command (see the module docstring)."""
    flags = [arg for arg in args if arg.startswith("-")]
    overrides = dict(arg.split("=", 1) for arg in (ws.word(a) for a in args if not a.startswith("-")))
    own_results = "results_dir" in overrides
    overrides.setdefault("debug", "smoke")
    if not {"logger", "logger.kind"} & set(overrides):
        overrides["logger"] = "none"
    overrides.setdefault("results_dir", str(ws.results))
    overrides["hydra.sweep.dir"] = str(ws.root / "multirun" / str(index))
    overrides["hydra.run.dir"] = str(ws.root / "outputs" / str(index))
    multirun = bool({"-m", "--multirun"} & set(flags))
    if multirun and not own_results and ("seed" in overrides or "experiment" in overrides):
        overrides["seed"] = _first_seeds(overrides.get("seed"), 2)
    if overrides.get("repr") == "llm_embed":
        overrides.update(dict(item.split("=", 1) for item in (*SMALL_RUN, "llm.model=tiny-random")))
    agents = _swept_agents(overrides)
    classic = [agent for agent in agents if not _is_llm(agent)]
    if classic == agents:
        return [[sys.executable, "-m", "llmrl_bench", *flags, *(f"{k}={v}" for k, v in overrides.items())]]
    forms = [{**overrides, "agent": ",".join(classic)}] if classic else []
    for agent in (agent for agent in agents if _is_llm(agent)):
        small = dict(item.split("=", 1) for item in (*agent_overrides(agent), *SMALL_RUN))
        forms.append({**overrides, **small, "seed": _first_seeds(overrides.get("seed"), 1)})
    return [[sys.executable, "-m", "llmrl_bench", *flags, *(f"{k}={v}" for k, v in form.items())] for form in forms]


def fast_forms(words: list[str], ws: Workspace, index: int) -> list[list[str]]:
    """The commands that check one README command here; fails for a command without a fast form."""
    line = " ".join(words)
    bench = next((prefix for prefix in BENCH if line == prefix or line.startswith(prefix + " ")), None)
    if bench is not None:
        args = words[len(bench.split()):]
        if (args[:1] and args[0] in SUBCOMMANDS) or set(args) & set(HELP_FLAGS):
            if args[:1] in (["show"], ["watch"]) and not any(results.iter_result_paths(ws.results)):
                ws.ensure_run(ws.results)  # e.g. `show results/local` right after the skipped `make run`
            return [[sys.executable, "-m", "llmrl_bench", *(ws.word(arg) for arg in args)]]
        return training_forms(args, ws, index)
    if words[:2] == ["git", "status"]:
        return [["git", "-C", str(REPO), *words[1:]]]
    if words[0] in ("python", ".venv/bin/python") and words[1:2] == ["-m"]:
        return [[sys.executable, *(ws.word(word) for word in words[1:])]]
    if words[0] in ("wandb", ".venv/bin/wandb"):
        return [[str(VENV_BIN / "wandb"), *(ws.word(word) for word in words[1:])]]
    if words[0] in ("source", ".") and words[1:] == [".venv/bin/activate"]:
        return [["test", "-f", str(VENV_BIN / "activate")]]
    pytest.fail(f"no fast form for this README command; add one (or a SKIPPED reason) to tests/test_readme.py: {line}")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("readme"))


@pytest.fixture(scope="module")
def git_status_before() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout


def test_llm_agents_are_recognised():
    assert [agent for agent in registry.schemas("agent") if _is_llm(agent)] == ["llm_pg", "llm_zero_shot"]


def test_readme_parsing():
    assert len(COMMANDS) >= 5
    block = "```bash\n# a comment\nA=1 python -m x \\\n  'a b'=1  # trailing\nmake venv && make run; ls\n```\n```python\nnot=shell\n```\n"
    assert readme_commands(block) == [["A=1", "python", "-m", "x", "a b=1"], ["make", "venv"], ["make", "run"], ["ls"]]
    assert split_env(["A=1", "B=x=y", "python", "C=2"]) == ({"A": "1", "B": "x=y"}, ["python", "C=2"])


@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=[" ".join(words)[:70] for words in COMMANDS])
def test_readme_command_runs(index, workspace, git_status_before):
    words = COMMANDS[index]
    line = " ".join(split_env(words)[1])
    for pattern, reason in SKIPPED.items():
        if re.search(pattern, line):
            pytest.skip(reason)
    env, command = split_env(words)
    for argv in fast_forms(command, workspace, index):
        proc = workspace.run(argv, env={**env, **KEPT_ENV})
        assert proc.returncode == 0, f"{shlex.join(argv)}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_readme_commands_leave_git_status_unchanged(git_status_before):
    after = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    assert after == git_status_before


def test_citation_and_license_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert str(citation["version"]) == project["version"]
    assert citation["license"] == project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
