"""Verify a submission by re-running some of its runs from their configs.

:func:`verify` validates the submission, picks ``K`` runs with ``random.Random(seed)``
from its sorted run ids, re-runs each with the runner into a temporary results dir
(``logger.kind=none``, no progress bar), and compares every metric and every curve value.

Tolerance: runs are deterministic on one machine, so when this machine's platform, package
versions and torch threads equal the run's provenance the match must be **exact**.
Otherwise floats may differ in the last bits: values must agree to ``rtol=1e-6`` (relative)
or ``atol=1e-9``. RL training amplifies such differences, so a cross-platform mismatch
means "not reproducible here", not "forged"; re-verify on the platform in the provenance.

The only file written is ``verification.json`` in the submission's own folder, bound to
the SHA-256 of its ``submission.json``: any later change to the submission makes it stale.
"""

from __future__ import annotations

import datetime
import json
import math
import platform
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from omegaconf import OmegaConf

from llmrl_bench import results
from llmrl_bench.leaderboard.bundle import VERIFICATION_FILE, is_archive
from llmrl_bench.leaderboard.identity import is_external, module_sha256, package_source_sha256, targets
from llmrl_bench.leaderboard.validate import CheckedRun, validate

EXACT = {"mode": "exact", "rtol": 0.0, "atol": 0.0}
CROSS_PLATFORM = {"mode": "cross-platform", "rtol": 1e-6, "atol": 1e-9}
DEFAULT_RUNS = 3
DEFAULT_SELECTION_SEED = 0


class VerifyError(ValueError):
    """A submission that cannot be verified at all (invalid, archived, too few runs)."""

    def __init__(self, lines: list[str]):
        super().__init__("; ".join(lines))
        self.lines = lines


@dataclass
class Verification:
    """The outcome of :func:`verify`; ``record`` is what ``verification.json`` holds."""

    record: dict[str, Any]
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.record["verified"]


def same_platform(provenance: dict[str, Any], torch_threads: int) -> bool:
    """Whether this machine can reproduce the run bit for bit."""
    from llmrl_bench.provenance import package_versions

    return (
        provenance.get("platform") == platform.platform()
        and provenance.get("packages") == package_versions()
        and provenance.get("torch_threads", torch_threads) == torch_threads
    )


def rerun_config(config: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    """The run's config, writing to ``results_dir`` with no logger and no progress bar."""
    return {
        **config, "results_dir": str(results_dir), "progress": False, "overwrite": False,
        "logger": {**(config.get("logger") or {}), "kind": "none"},
    }


def select_runs(run_ids: list[str], count: int, selection_seed: int) -> list[str]:
    """``count`` of the sorted ``run_ids``, chosen with ``random.Random(selection_seed)``."""
    return sorted(random.Random(selection_seed).sample(sorted(run_ids), count))


def verify(
    path: str | Path,
    runs: int = DEFAULT_RUNS,
    selection_seed: int = DEFAULT_SELECTION_SEED,
    tracks_path: str | Path | None = None,
    allow_external: bool = False,
    echo: Callable[[str], None] = lambda line: None,
) -> Verification:
    """Re-run ``runs`` runs of the submission folder ``path`` and write its ``verification.json``.

    Raises :class:`VerifyError` when the submission is invalid, archived, has fewer runs
    than asked, or names an external ``_target_`` (which re-running would execute) without
    ``allow_external``; nothing is written then.
    """
    from llmrl_bench.provenance import git_commit, package_versions
    from llmrl_bench.runner import run

    path = Path(path)
    if is_archive(path):
        raise VerifyError([f"{path}: verify needs the unpacked folder: python -m llmrl_bench.leaderboard unpack {path}"])
    report = validate(path, tracks_path)
    if not report.ok:
        raise VerifyError(["the submission is invalid (run validate):", *report.failures])
    if not 1 <= runs <= len(report.runs):
        raise VerifyError([f"--runs {runs}: the submission holds {len(report.runs)} runs"])
    code = report.submission["code"]
    by_id = {run.run_id: run for run in report.runs}
    chosen = select_runs(list(by_id), runs, selection_seed)
    blocked = [line for run_id in chosen for line in _target_problems(by_id[run_id], code, allow_external)]
    if blocked:
        raise VerifyError(blocked)

    package_sha256, _ = package_source_sha256()
    verification = Verification(record={})
    if package_sha256 != code["package_sha256"]:
        verification.warnings.append(
            "this checkout's llmrl_bench source differs from the packed one (package_sha256): the re-runs use this checkout's code"
        )
    echo(f"re-running {runs} of {len(by_id)} runs (selection seed {selection_seed}): {', '.join(chosen)}")
    mismatches: list[str] = []
    modes = set()
    for run_id in chosen:
        checked = by_id[run_id]
        config = checked.result.config
        tolerance = EXACT if same_platform(checked.result.provenance, config.get("torch_threads", 1)) else CROSS_PLATFORM
        modes.add(tolerance["mode"])
        with tempfile.TemporaryDirectory(prefix="llmrl-verify-") as tmp:
            try:
                run(OmegaConf.create(rerun_config(config, Path(tmp))))
                rerun = results.load_result(results.run_dir(tmp, run_id) / results.RESULT_FILE)
            except Exception as error:  # noqa: BLE001 - a run that cannot be repeated fails verification
                lines = [f"{checked.label}: the re-run failed: {type(error).__name__}: {error}"]
            else:
                lines = [f"{checked.label}: {line}" for line in compare_runs(checked.result, rerun, tolerance)]
        mismatches.extend(lines)
        echo(f"{checked.label}: {'MISMATCH' if lines else 'match'} ({tolerance['mode']})")
    tolerance = CROSS_PLATFORM if "cross-platform" in modes else EXACT
    verification.record = {
        "schema_version": 1,
        "submission_sha256": report.submission_sha256,
        "verified": not mismatches,
        "runs": chosen,
        "selection_seed": selection_seed,
        "tolerance": tolerance,
        "verifier": {
            "platform": platform.platform(), "packages": package_versions(), "git_commit": git_commit(),
            "package_sha256": package_sha256, "same_code": package_sha256 == code["package_sha256"],
            "verified_at": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        },
        "mismatches": mismatches,
    }
    verification.lines = mismatches
    results.atomic_write_bytes(path / VERIFICATION_FILE, (json.dumps(verification.record, indent=2, sort_keys=True) + "\n").encode())
    return verification


def _target_problems(run: CheckedRun, code: dict[str, Any], allow_external: bool) -> list[str]:
    """Why re-running this run's config would execute code that was not reviewed."""
    problems = []
    for where, target in targets(run.result.config):
        if not is_external(target):
            continue
        if not allow_external:
            problems.append(
                f"{run.label}: config.{where} is {target!r}, outside llmrl_bench; re-running executes it: "
                "review the agent's code, install it, then pass --allow-external"
            )
            continue
        module = code.get("module") or {}
        if where != "agent._target_" or module.get("name") != target.rpartition(".")[0]:
            problems.append(f"{run.label}: config.{where} is {target!r}, which the code identity does not cover")
            continue
        try:
            local = module_sha256(module["name"])
        except ImportError as error:
            problems.append(f"{run.label}: {error}; install the submitted agent first")
            continue
        if local != module["sha256"]:
            problems.append(f"{run.label}: the installed {module['name']} has SHA-256 {local[:12]}…, not the submitted {module['sha256'][:12]}…")
    return problems


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
        values = {"step": point["step"], "train_return": point["train_return"], "held_out_return": point["held_out_return"],
                  **{f"held_out.{k}": v for k, v in point["held_out"].items()}}
        others = {"step": again["step"], "train_return": again["train_return"], "held_out_return": again["held_out_return"],
                  **{f"held_out.{k}": v for k, v in again["held_out"].items()}}
        for key in sorted(set(values) | set(others)):
            if not _match(values.get(key), others.get(key), tolerance):
                lines.append(f"curve[{i}].{key} is {values.get(key)!r}; the re-run gives {others.get(key)!r}")
    return lines


def _match(a: Any, b: Any, tolerance: dict[str, Any]) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return a == b or math.isclose(a, b, rel_tol=tolerance["rtol"], abs_tol=tolerance["atol"])
    return a == b
