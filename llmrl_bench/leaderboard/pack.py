"""Bundle the runs of one agent on one track into a submission folder or ``.tar.gz``.

:func:`pack` selects the completed runs of a results dir that belong to the track (its
envs, seeds and budget; optionally one agent, repr or sweep), copies each run's
``result.json``, ``episodes.npz`` and final policy ``policy.pt``, writes its resolved ``config.yaml``, records the
code identity, the package and env versions and the metadata, computes ``summary.json``
from the runs, and writes ``submission.json`` with the SHA-256 of every file last. The
result is validated before it is moved into place: pack never leaves an invalid submission.
"""

from __future__ import annotations

import datetime
import gzip
import io
import json
import re
import shutil
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf

from llmrl_bench import results
from llmrl_bench.leaderboard import aggregate
from llmrl_bench.leaderboard.bundle import (
    CONFIG_FILE, POLICY_FILE, RUNS_DIR, SUBMISSION_FILE, SUMMARY_FILE, is_archive, sha256_file,
)
from llmrl_bench.leaderboard.identity import code_identity
from llmrl_bench.leaderboard.tracks import Track, load_tracks
from llmrl_bench.leaderboard.validate import SCHEMA_VERSION, validate


class PackError(ValueError):
    """Runs that cannot make a submission; ``lines`` says why, one problem each."""

    def __init__(self, lines: Sequence[str]):
        super().__init__("; ".join(lines))
        self.lines = list(lines)


@dataclass
class Metadata:
    """Who submits what; plain text (validation refuses HTML markup)."""

    name: str
    authors: list[str]
    url: str = ""
    date: str = ""
    """``YYYY-MM-DD``; empty means today (UTC)."""
    description: str = ""


def slug(name: str) -> str:
    """A submission id from its name: lower case, ``[a-z0-9._-]``, at most 64 characters."""
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9._-]+", "-", name.lower())).strip("-._")[:64]


def select_runs(
    results_dir: str | Path, track: Track, agent: str | None = None, repr: str | None = None, sweep: str | None = None
) -> tuple[list[results.RunResult], list[str]]:
    """The runs of ``results_dir`` that belong to ``track`` and the filters, and what was left out."""
    loaded, errors = results.load_results(results_dir)
    left_out: Counter[str] = Counter()
    specs = track.env_specs()
    chosen = []
    for result in loaded:
        budget = {key: result.config.get("budget", {}).get(key) for key in track.budget}
        reason = (
            "other agents" if agent is not None and result.agent != agent
            else "other reprs" if repr is not None and result.repr != repr
            else "other sweeps" if sweep is not None and result.sweep != sweep
            else f"envs outside track {track.name}" if result.env not in specs
            else f"seeds outside 0-{track.num_seeds - 1}" if result.seed not in track.seeds
            else "another budget" if budget != track.budget
            else None
        )
        if reason:
            left_out[reason] += 1
        else:
            chosen.append(result)
    notes = [f"left out {count} run(s): {reason}" for reason, count in sorted(left_out.items())]
    notes += [f"left out an invalid result: {error}" for error in errors]
    return chosen, notes


def pack(
    results_dir: str | Path,
    track_name: str,
    out: str | Path,
    metadata: Metadata,
    agent: str | None = None,
    repr: str | None = None,
    sweep: str | None = None,
    submission_id: str | None = None,
    tracks_path: str | Path | None = None,
) -> tuple[Path, list[str]]:
    """Write the submission to ``out`` (a folder, or an archive if it ends in ``.tar.gz``).

    Returns its path and notes (runs left out). Raises :class:`PackError` when the runs
    do not make one valid submission, or ``out`` exists.
    """
    tracks = load_tracks(tracks_path)
    if track_name not in tracks:
        raise PackError([f"track {track_name!r} is not one of {', '.join(sorted(tracks))}"])
    track = tracks[track_name]
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise PackError([f"{out}: exists; pack into a new path"])
    submission_id = submission_id or slug(metadata.name)
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", submission_id):
        raise PackError([f"id {submission_id!r} is not a slug [a-z0-9][a-z0-9._-]*: pass --id"])
    runs, notes = select_runs(results_dir, track, agent, repr, sweep)
    if not runs:
        raise PackError([f"{results_dir}: no completed runs of track {track.name} match", *notes])
    problems = _one_submission(runs)
    problems += [f"{results.run_dir(results_dir, run.run_id)}: has no {results.POLICY_FILE} (the final policy verify re-evaluates)"
                 for run in runs if not (results.run_dir(results_dir, run.run_id) / results.POLICY_FILE).is_file()]
    if problems:
        raise PackError(problems + notes)

    with tempfile.TemporaryDirectory(prefix=".pack-", dir=out.parent if out.parent.exists() else None) as tmp:
        staging = Path(tmp) / submission_id
        _write(staging, runs, track, metadata, submission_id, Path(results_dir))
        report = validate(staging, tracks_path)
        if not report.ok:
            raise PackError([f"the packed submission would not validate: {line}" for line in report.failures] + notes)
        out.parent.mkdir(parents=True, exist_ok=True)
        if is_archive(out):
            write_archive(staging, out)
        else:
            shutil.move(str(staging), out)
    return out, notes


def _one_submission(runs: list[results.RunResult]) -> list[str]:
    problems = []
    for kind in ("agent", "repr"):
        values = sorted({getattr(run, kind) for run in runs})
        if len(values) > 1:
            problems.append(f"runs of several {kind}s remain ({', '.join(values)}): choose one with --{kind}")
    by_cell = Counter((run.env, run.seed) for run in runs)
    for (env, seed), count in sorted(by_cell.items()):
        if count > 1:
            problems.append(f"{count} runs for {env} seed {seed} (different configs): choose one with --sweep")
    commits = sorted({str(run.provenance.get("git_commit")) for run in runs})
    if len(commits) > 1:
        problems.append(f"the runs come from several commits ({', '.join(commits)}): a submission is one code version")
    versions = {json.dumps(run.provenance["packages"], sort_keys=True) for run in runs}
    if len(versions) > 1:
        problems.append("the runs used different package versions: a submission is one software environment")
    return problems


def _write(root: Path, runs: list[results.RunResult], track: Track, metadata: Metadata, submission_id: str, results_dir: Path) -> None:
    specs = track.env_specs()
    for run in runs:
        source = results.run_dir(results_dir, run.run_id)
        folder = root / RUNS_DIR / run.run_id
        folder.mkdir(parents=True)
        shutil.copyfile(source / results.RESULT_FILE, folder / results.RESULT_FILE)
        shutil.copyfile(source / results.EPISODES_FILE, folder / results.EPISODES_FILE)
        shutil.copyfile(source / results.POLICY_FILE, folder / POLICY_FILE)
        (folder / CONFIG_FILE).write_text(OmegaConf.to_yaml(OmegaConf.create(run.config)))
    summary = aggregate.summarize(track.name, [(run.env, run.seed, aggregate.recompute_run_metrics(run.curve, specs[run.env])) for run in runs])
    (root / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")

    first = runs[0]
    target = first.config["agent"]["_target_"]
    try:
        code = code_identity(first.agent, first.repr, target, first.provenance.get("git_commit"))
    except ImportError as error:
        raise PackError([f"agent _target_ {target}: {error}; install the agent's package before packing"]) from None
    envs = {}
    for run in runs:
        envs[run.env] = {key: run.env_info.get(key) for key in ("gym_id", "score_range", "reward_threshold", "held_out_contexts")}
    files = sorted(path for path in root.rglob("*") if path.is_file())
    submission: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": submission_id,
        "track": track.name,
        "metadata": {
            "name": metadata.name, "authors": list(metadata.authors), "url": metadata.url,
            "date": metadata.date or datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
            "description": metadata.description,
        },
        "code": code,
        "environment": {
            "python": first.provenance["packages"].get("python", ""),
            "platforms": sorted({run.provenance.get("platform", "") for run in runs} - {""}),
            "packages": first.provenance["packages"],
            "envs": dict(sorted(envs.items())),
        },
        "files": {path.relative_to(root).as_posix(): sha256_file(path) for path in files},
    }
    (root / SUBMISSION_FILE).write_text(json.dumps(submission, indent=2, sort_keys=True) + "\n")


def write_archive(folder: Path, archive: Path) -> None:
    """A reproducible ``.tar.gz`` of ``folder`` (sorted members, zeroed times and owners)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = [folder, *sorted(folder.rglob("*"))]
        for path in entries:
            info = tar.gettarinfo(str(path), arcname=(Path(folder.name) / path.relative_to(folder)).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if info.isdir() else 0o644
            if info.isfile():
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    results.atomic_write_bytes(archive, buffer.getvalue())
