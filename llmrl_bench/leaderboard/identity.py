"""The code identity of an agent: which code made the runs.

For an agent of this package: the git commit of its runs and a SHA-256 of the
``llmrl_bench`` source (every ``.py`` and ``.json`` file under ``llmrl_bench/``, except
``__pycache__`` and this ``leaderboard/`` tooling, which does not affect a run). For an
external agent (``_target_`` outside ``llmrl_bench``) also its module and the SHA-256 of
the module's file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from llmrl_bench.leaderboard.bundle import sha256_bytes, sha256_file

PACKAGE = "llmrl_bench"
PACKAGE_DIR = Path(__file__).resolve().parent.parent
SOURCE_SUFFIXES = (".py", ".json")
EXCLUDED_DIRS = ("__pycache__", "leaderboard")


def is_external(target: str) -> bool:
    """Whether a ``_target_`` lies outside this package."""
    return not (target == PACKAGE or target.startswith(PACKAGE + "."))


def package_source_files() -> list[Path]:
    return sorted(
        path for path in PACKAGE_DIR.rglob("*")
        if path.is_file() and path.suffix in SOURCE_SUFFIXES
        and not any(part in EXCLUDED_DIRS for part in path.relative_to(PACKAGE_DIR).parts[:-1])
    )


def package_source_sha256() -> tuple[str, int]:
    """SHA-256 over ``"<relative path>\\0<sha256 of the file>\\n"`` per source file, and their count."""
    files = package_source_files()
    lines = "".join(f"{path.relative_to(PACKAGE_DIR).as_posix()}\0{sha256_file(path)}\n" for path in files)
    return sha256_bytes(lines.encode()), len(files)


def module_sha256(module: str) -> str:
    """SHA-256 of the file that defines ``module``; raises ``ImportError`` if there is none.

    ``find_spec`` imports the module's parent packages, so only call it on code you trust.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise ImportError(f"cannot find the file of module {module}")
    return sha256_file(Path(spec.origin))


def code_identity(agent: str, repr: str, agent_target: str, git_commit: str | None) -> dict[str, Any]:
    """``submission.json``'s ``code``: which code made runs of ``agent_target`` at ``git_commit``.

    Raises ``ImportError`` when an external agent's module cannot be found (pack installs it first).
    """
    from llmrl_bench.provenance import git_commit as checkout_commit

    external = is_external(agent_target)
    module = None
    if external:
        name = agent_target.rpartition(".")[0]
        module = {"name": name, "sha256": module_sha256(name)}
    package_sha256, package_files = package_source_sha256()
    return {
        "agent": agent, "repr": repr, "agent_target": agent_target, "external": external, "module": module,
        "git_commit": git_commit, "package_commit": checkout_commit(),
        "package_sha256": package_sha256, "package_files": package_files,
    }
