"""Where a run's numbers came from: package versions, the git commit, the machine, time and memory."""

from __future__ import annotations

import importlib.metadata
import platform
import resource
import subprocess
from pathlib import Path
from typing import Any

PROVENANCE_PACKAGES = ("llmrl_bench", "torch", "numpy", "gymnasium", "minigrid", "hydra-core", "wandb", "transformers")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> str | None:
    """The checkout's commit, with ``+dirty`` when tracked files differ from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def reset_peak_memory() -> None:
    """Count peak memory afresh from now (Linux: ``/proc/self/clear_refs``), so that a run in a sweep
    worker, which runs job after job in one process, reports its own peak and not the worker's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mb() -> float:
    """Peak resident memory of this process since :func:`reset_peak_memory` (Linux ``VmHWM``), where
    the OS offers no reset since the process started (``ru_maxrss``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_provenance(start: dict[str, Any], wall_seconds: float, env_steps: int, **extra: Any) -> dict[str, Any]:
    """One run's provenance: ``start`` (read when the run began: commit, packages, platform, threads)
    plus its cost so far. ``wall_seconds`` covers the whole run, resumed parts included."""
    return {
        **start,
        "wall_seconds": wall_seconds,
        "env_steps": int(env_steps),
        "env_steps_per_second": env_steps / max(wall_seconds, 1e-9),
        "peak_memory_mb": peak_memory_mb(),
        **extra,
    }


#: /proc/cpuinfo flags that change which kernels (and so which float roundings and speeds) a run gets.
MATMUL_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """The CPU's model name and which of :data:`MATMUL_CPU_FLAGS` it has (Linux; elsewhere the processor name only).

    Numbers repeat bit for bit on one machine, not across CPUs: bf16 matmuls with AMX and with
    AVX512-BF16 round differently and run at very different speeds, so a result names its CPU."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return {"model": platform.processor() or platform.machine(), "flags": []}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name", platform.machine()),
            "flags": [flag for flag in MATMUL_CPU_FLAGS if flag in flags]}


def start_provenance(torch_threads: int) -> dict[str, Any]:
    """What is read once, when a run starts: the code and the machine it runs on."""
    return {
        "packages": package_versions(),
        "git_commit": git_commit(),
        "platform": platform.platform(),
        "cpu": cpu_description(),
        "torch_threads": torch_threads,
    }
