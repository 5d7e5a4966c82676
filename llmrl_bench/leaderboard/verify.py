"""Verify a submission: check every run cheaply, re-train a sample, in a sandboxed child process.

:func:`verify` validates the submission folder, rebuilds each run's config from the track's
protocol and the run's parsed hyperparameters (``protocol.rebuild_config``; nothing else of
the submission is used), and runs three kinds of job in one child process
(``sandbox``: no network, a wall-clock and a memory limit):

* **every run, step 0**: the untrained agent of the run's seed, evaluated as the runner
  does, against the claimed ``curve[0]`` (a seed swapped or relabelled shows here);
* **every run, final policy**: the submitted ``policy.pt`` (``weights_only=True``) evaluated
  on the track's evaluation episodes, against the claimed last curve point, which the
  headline metrics come from;
* **a sample, re-trained**: the run with the best claimed score plus ``retrain - 1`` others
  drawn with ``random.Random(selection_seed)``; the seed comes from ``os.urandom`` unless
  given, so a submitter cannot know which runs will be re-trained. Every metric and curve
  value of a re-trained run is compared.

Tolerance: runs are deterministic on one machine, so when this machine's platform, package
versions and torch threads equal the run's provenance the match must be **exact**.
Otherwise values must agree to ``rtol=1e-6`` or ``atol=1e-9`` (``CROSS_PLATFORM``); RL
training amplifies last-bit differences, so a cross-platform mismatch means "not
reproducible here", not "forged": re-verify on the platform in the provenance.

The only file written is the record beside the folder, ``<folder>.verification.json``,
bound to the SHA-256 of its ``submission.json``: a later change makes it stale.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from llmrl_bench import results
from llmrl_bench.leaderboard import sandbox
from llmrl_bench.leaderboard.aggregate import RANKING_METRIC
from llmrl_bench.leaderboard.bundle import POLICY_FILE, RUNS_DIR, is_archive, verification_path
from llmrl_bench.leaderboard.identity import package_source_sha256
from llmrl_bench.leaderboard.protocol import rebuild_config
from llmrl_bench.leaderboard.validate import CheckedRun, Report, validate

EXACT = {"mode": "exact", "rtol": 0.0, "atol": 0.0}
CROSS_PLATFORM = {"mode": "cross-platform", "rtol": 1e-6, "atol": 1e-9}
DEFAULT_RETRAIN = 3
DEFAULT_TIMEOUT_S = 4 * 3600
DEFAULT_MEMORY_GB = 16.0
RECORD_VERSION = 2


class VerifyError(ValueError):
    """A submission that cannot be verified at all (invalid, archived, too few runs)."""

    def __init__(self, lines: list[str]):
        super().__init__("; ".join(lines))
        self.lines = lines


@dataclass
class Verification:
    """The outcome of :func:`verify`; ``record`` is what the verification record holds."""

    record: dict[str, Any]
    path: Path
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.record["verified"]


def same_platform(provenance: dict[str, Any], torch_threads: int) -> bool:
    """Whether this machine can reproduce the run bit for bit."""
    from llmrl_bench.provenance import cpu_description, package_versions

    here = cpu_description()
    return (
        provenance.get("platform") == platform.platform()
        and provenance.get("cpu", here) == here  # runs from before the suite recorded the CPU: not compared
        and provenance.get("packages") == package_versions()
        and provenance.get("torch_threads", torch_threads) == torch_threads
    )


def new_selection_seed() -> int:
    """A seed no submitter can predict (the maintainer's secret until the record is written)."""
    return int.from_bytes(os.urandom(8), "big")


def select_retrain(runs: list[CheckedRun], count: int, selection_seed: int) -> list[str]:
    """The run with the best claimed score, plus ``count - 1`` others drawn with ``random.Random(selection_seed)``."""
    best = max(runs, key=lambda run: (_claimed_score(run), run.run_id)).run_id
    others = sorted(run.run_id for run in runs if run.run_id != best)
    return sorted([best, *random.Random(selection_seed).sample(others, count - 1)])


def _claimed_score(run: CheckedRun) -> float:
    value = run.result.metrics.get(RANKING_METRIC)
    return float(value) if isinstance(value, (int, float)) else -math.inf


def verify(
    path: str | Path,
    retrain: int = DEFAULT_RETRAIN,
    selection_seed: int | None = None,
    tracks_path: str | Path | None = None,
    echo: Callable[[str], None] = lambda line: None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_gb: float = DEFAULT_MEMORY_GB,
) -> Verification:
    """Check every run of the submission folder ``path``, re-train ``retrain`` of them, write the record.

    Raises :class:`VerifyError` (nothing written) when the submission is invalid, archived
    or has fewer runs than ``retrain``.
    """
    path = Path(path)
    if is_archive(path):
        raise VerifyError([f"{path}: verify needs the unpacked folder: python -m llmrl_bench.leaderboard unpack {path}"])
    report = validate(path, tracks_path)
    if not report.ok:
        raise VerifyError(["the submission is invalid (run validate):", *report.failures])
    if not 1 <= retrain <= len(report.runs):
        raise VerifyError([f"--retrain {retrain}: must be between 1 and the submission's {len(report.runs)} runs"])
    selection_seed = new_selection_seed() if selection_seed is None else selection_seed
    chosen = select_retrain(report.runs, retrain, selection_seed)
    echo(f"checking all {len(report.runs)} runs (step 0 and final policy); re-training {', '.join(chosen)} "
         f"(selection seed {selection_seed}); network isolation: {sandbox.network_isolation()}")
    mismatches, modes = _run_checks(path, report, chosen, timeout_s, memory_gb)
    return _write_record(path, report, chosen, selection_seed, mismatches, modes, timeout_s, memory_gb)


def _run_checks(path: Path, report: Report, chosen: list[str], timeout_s: float, memory_gb: float) -> tuple[list[str], set[str]]:
    specs, track = report.track.env_specs(), report.track  # type: ignore[union-attr]
    by_id = {run.run_id: run for run in report.runs}
    with tempfile.TemporaryDirectory(prefix="llmrl-verify-") as tmp:
        jobs = []
        for run in report.runs:
            config = rebuild_config(run.result.config, specs[run.env].config, track.budget, Path(tmp) / "results")
            jobs.append({"id": f"{run.run_id}/initial", "kind": "initial", "config": config, "step": 0})
            jobs.append({"id": f"{run.run_id}/policy", "kind": "policy", "config": config, "step": run.result.curve[-1]["step"],
                         "policy": str((path / RUNS_DIR / run.run_id / POLICY_FILE).resolve())})
            if run.run_id in chosen:
                jobs.append({"id": f"{run.run_id}/retrain", "kind": "retrain", "config": config, "run_id": run.run_id})
        try:
            outcomes = sandbox.run_jobs(jobs, Path(tmp), timeout_s, int(memory_gb * 1024**3))
        except sandbox.SandboxError as error:
            return [str(error)], {"exact"}
    mismatches: list[str] = []
    modes = set()
    for job in jobs:
        run = by_id[job["id"].split("/")[0]]
        tolerance = EXACT if same_platform(run.result.provenance, run.result.config.get("torch_threads", 1)) else CROSS_PLATFORM
        modes.add(tolerance["mode"])
        lines = _compare_job(job["kind"], run, outcomes.get(job["id"], {"error": "no outcome"}), tolerance)
        mismatches.extend(f"{run.label}: {line}" for line in lines)
    return mismatches, modes


def _compare_job(kind: str, run: CheckedRun, outcome: dict[str, Any], tolerance: dict[str, Any]) -> list[str]:
    what = {"initial": "the untrained agent's step-0 evaluation", "policy": "the submitted final policy's evaluation",
            "retrain": "the re-trained run"}[kind]
    if "error" in outcome:
        return [f"{what} failed: {outcome['error']}"]
    if kind == "retrain":
        rerun = results.RunResult(**{**run.result.__dict__, "metrics": outcome["metrics"], "curve": outcome["curve"], "run_id": outcome["run_id"]})
        return [f"re-trained: {line}" for line in compare_runs(run.result, rerun, tolerance)]
    index = 0 if kind == "initial" else len(run.result.curve) - 1
    lines = _compare_points(run.result.curve[index], outcome["point"], tolerance, f"curve[{index}]")
    return [f"{line} ({what})" for line in lines]


def _flat(point: dict[str, Any]) -> dict[str, Any]:
    return {"step": point["step"], "train_return": point["train_return"], "held_out_return": point["held_out_return"],
            **{f"held_out.{k}": v for k, v in point["held_out"].items()}}


def _compare_points(claimed: dict[str, Any], again: dict[str, Any], tolerance: dict[str, Any], where: str) -> list[str]:
    values, others = _flat(claimed), _flat(again)
    return [
        f"{where}.{key} is {values.get(key)!r}; the re-run gives {others.get(key)!r}"
        for key in sorted(set(values) | set(others)) if not _match(values.get(key), others.get(key), tolerance)
    ]


def compare_runs(submitted: results.RunResult, rerun: results.RunResult, tolerance: dict[str, Any]) -> list[str]:
    """One line per metric or curve value of the re-run that differs beyond ``tolerance``."""
    lines = []
    if rerun.run_id != submitted.run_id:
        lines.append(f"the re-run has run_id {rerun.run_id}, not {submitted.run_id}")
    for key in sorted(set(submitted.metrics) | set(rerun.metrics)):
        if not _match(submitted.metrics.get(key), rerun.metrics.get(key), tolerance):
            lines.append(f"metrics.{key} is {submitted.metrics.get(key)!r}; the re-run gives {rerun.metrics.get(key)!r}")
    if len(submitted.curve) != len(rerun.curve):
        lines.append(f"the curve has {len(submitted.curve)} points; the re-run's has {len(rerun.curve)}")
        return lines
    for i, (point, again) in enumerate(zip(submitted.curve, rerun.curve)):
        lines.extend(_compare_points(point, again, tolerance, f"curve[{i}]"))
    return lines


def _match(a: Any, b: Any, tolerance: dict[str, Any]) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return a == b or math.isclose(a, b, rel_tol=tolerance["rtol"], abs_tol=tolerance["atol"])
    return a == b


def _write_record(path: Path, report: Report, chosen: list[str], selection_seed: int, mismatches: list[str],
                  modes: set[str], timeout_s: float, memory_gb: float) -> Verification:
    from llmrl_bench.provenance import cpu_description, git_commit, package_versions

    code = report.submission["code"]  # type: ignore[index]
    package_sha256, _ = package_source_sha256()
    verification = Verification(record={}, path=verification_path(path), lines=mismatches)
    if package_sha256 != code["package_sha256"]:
        verification.warnings.append("this checkout's llmrl_bench source differs from the packed one (package_sha256): the re-runs use this checkout's code")
    tolerance = CROSS_PLATFORM if "cross-platform" in modes else EXACT
    verification.record = {
        "schema_version": RECORD_VERSION,
        "submission_sha256": report.submission_sha256,
        "verified": not mismatches,
        "re_evaluated": sorted(run.run_id for run in report.runs),
        "retrained": chosen,
        "selection_seed": selection_seed,
        "tolerance": tolerance,
        "limits": {"wall_clock_s": timeout_s, "memory_gb": memory_gb, "network": sandbox.network_isolation()},
        "verifier": {
            "platform": platform.platform(), "cpu": cpu_description(), "packages": package_versions(), "git_commit": git_commit(),
            "package_sha256": package_sha256, "same_code": package_sha256 == code["package_sha256"],
            "verified_at": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        },
        "mismatches": mismatches,
    }
    results.atomic_write_bytes(verification.path, (json.dumps(verification.record, indent=2, sort_keys=True) + "\n").encode())
    return verification
