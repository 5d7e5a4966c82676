"""Machine validation of a submission: one line per failure; nothing trusted, nothing written.

:func:`validate` reads a submission folder, or a ``.tar.gz`` without extracting it, and
checks, in order:

1. safety: no links, devices, absolute names or ``..``, and the size caps (nothing else is
   read otherwise); every JSON number finite (``NaN``/``Infinity`` refused at parse time);
2. ``submission.json`` against ``llmrl_bench/schema/submission-v1.json``, and its text
   (plain text only: HTML markup is refused; the URL is empty or http(s));
3. the checksums: every file is in the manifest with its SHA-256, and nothing else is there;
4. each run: ``result.json`` against ``result-v1.json``, its ``run_id`` against the hash
   of its config, the config as data of the registered schemas (``protocol``: no
   ``_target_`` but the registered components', and the config rebuilt from the track's
   protocol has the same ``run_id``), ``config.yaml`` against that config, ``episodes.npz``
   from its headers first, ``policy.pt`` as tensors only (``weights_only=True``), the track's standard env config,
   gym id, budget, evaluation steps and held-out contexts, and every metric against its
   recomputation from the curve (``aggregate.recompute_run_metrics``);
5. the track's protocol: every env, exactly seeds ``0..num_seeds-1``, one agent config per
   env, one representation, package versions within the track's, and no run under two
   seeds (identical per-episode data or curves, when they vary at all);
6. ``summary.json``, if present, against the aggregates recomputed from the runs;
7. the verification record beside the folder (``<folder>.verification.json``), if current;
   a ``verification.json`` inside the submission is ignored (a failure with ``incoming``).
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import numpy as np
import torch
from omegaconf import OmegaConf

from llmrl_bench import results
from llmrl_bench.leaderboard import aggregate
from llmrl_bench.leaderboard.bundle import (
    CONFIG_FILE, POLICY_FILE, RUNS_DIR, SUBMISSION_FILE, SUMMARY_FILE, UNLISTED_FILES, VERIFICATION_FILE,
    check_archive, is_archive, npz_headers, path_problem, scan_folder, sha256_bytes, verification_path,
)
from llmrl_bench.leaderboard.identity import is_external
from llmrl_bench.leaderboard.protocol import config_problems, rebuilt_run_id
from llmrl_bench.leaderboard.tracks import EnvSpec, Track, TrackError, load_tracks

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(results.__file__).with_name("schema") / f"submission-v{SCHEMA_VERSION}.json"
RUN_FILES = (results.RESULT_FILE, results.EPISODES_FILE, CONFIG_FILE, POLICY_FILE)
LAYOUT = re.compile(rf"^(?:{re.escape(SUMMARY_FILE)}|{RUNS_DIR}/[0-9a-f]{{16}}/(?:{'|'.join(map(re.escape, RUN_FILES))}))$")
HTML_MARKUP = re.compile(r"<\s*[A-Za-z!/?]|&(?:#\d+|#x[0-9A-Fa-f]+|[A-Za-z]+);")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
URL = re.compile(r"^https?://[^\s<>\"'`\\]+$")
EPISODE_COLUMNS = ("step", "return", "length")


@dataclass
class CheckedRun:
    """One run as validation read it: its record and its metrics recomputed from the curve."""

    run_id: str
    env: str
    seed: int
    result: results.RunResult
    metrics: dict[str, Any] | None
    fingerprints: tuple[str, ...] = ()
    """Digests of its per-episode data and curve, where they vary (a copy under another seed shows)."""

    @property
    def label(self) -> str:
        return f"{RUNS_DIR}/{self.run_id} ({self.env} seed {self.seed})"


@dataclass
class Report:
    """What :func:`validate` found; ``ok`` when there are no failures."""

    path: Path
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    submission: dict[str, Any] | None = None
    submission_sha256: str | None = None
    track: Track | None = None
    runs: list[CheckedRun] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    """Aggregates recomputed from the runs (not the submitted ``summary.json``)."""
    verification: dict[str, Any] | None = None
    """A schema-valid ``verification.json`` made for this very ``submission.json``."""

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def verified(self) -> bool:
        return self.ok and self.verification is not None and self.verification["verified"]

    def fail(self, line: str) -> None:
        self.failures.append(line)


class _Folder:
    """Files of a submission folder."""

    def __init__(self, root: Path):
        self.root = root
        self.files, self.problems = scan_folder(root)

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


class _Archive:
    """Files of a ``.tar.gz`` submission, read in one pass into memory, never extracted."""

    def __init__(self, path: Path):
        members, top, self.problems = check_archive(path)
        self.contents: dict[str, bytes] = {}
        if not self.problems:
            # "./<top>/a" and "<top>/a" are the same member; keys are relative to <top>.
            relative = {m.name: PurePosixPath(m.name).relative_to(top).as_posix() for m in members if m.isfile()}
            wanted = {name: rel for name, rel in relative.items() if rel != "."}
            with tarfile.open(path, "r:gz") as archive:
                for member in archive:
                    if member.name in wanted:
                        handle = archive.extractfile(member)
                        assert handle is not None
                        self.contents[wanted[member.name]] = handle.read()
        self.files = sorted(self.contents)

    def read(self, name: str) -> bytes:
        return self.contents[name]


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def submission_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_schema())


def verification_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_schema()["$defs"]["verification"])


def validate(path: str | Path, tracks_path: str | Path | None = None, incoming: bool = False) -> Report:
    """Validate the submission folder or archive at ``path``; reads only, writes nothing.

    ``incoming``: the submission comes from outside, so a ``verification.json`` in it (which
    only a maintainer's ``verify`` writes) is a failure.
    """
    path = Path(path)
    report = Report(path)
    try:
        tracks = load_tracks(tracks_path)
    except TrackError as error:
        report.fail(str(error))
        return report
    if path.is_symlink():
        report.fail(f"{path}: is a symlink; give the submission folder itself")
    elif is_archive(path) and path.is_file():
        _check(_Archive(path), report, tracks, incoming)
    elif path.is_dir():
        _check(_Folder(path), report, tracks, incoming)
    else:
        report.fail(f"{path}: not a submission folder or .tar.gz archive")
    return report


def _check(source: _Folder | _Archive, report: Report, tracks: dict[str, Track], incoming: bool) -> None:
    if source.problems:  # read nothing from a submission that holds links or escapes
        report.failures.extend(source.problems)
        return
    files = set(source.files)
    if SUBMISSION_FILE not in files:
        report.fail(f"{SUBMISSION_FILE}: missing")
        return
    raw = source.read(SUBMISSION_FILE)
    submission = _json(raw, SUBMISSION_FILE, report)
    if submission is None:
        return
    errors = sorted(submission_validator().iter_errors(submission), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        report.fail(f"{SUBMISSION_FILE}: does not match {SCHEMA_PATH.name} at {where}: {_clip(error.message)}")
    if errors:
        return
    report.submission, report.submission_sha256 = submission, sha256_bytes(raw)
    track = tracks.get(submission["track"])
    if track is None:
        report.fail(f"{SUBMISSION_FILE}: track {submission['track']!r} is not one of {', '.join(sorted(tracks))}")
        return
    report.track = track
    try:
        specs = track.env_specs()
    except TrackError as error:
        report.fail(str(error))
        return
    _check_metadata(submission, report)
    _check_manifest(source, submission["files"], report)
    for run_id in _run_ids(files, report):
        run = _guarded(report, f"{RUNS_DIR}/{run_id}", _check_run, source, run_id, submission, track, specs, report)
        if run is not None:
            report.runs.append(run)
    _guarded(report, "runs", _check_protocol, report.runs, submission, track, specs, report)
    _guarded(report, SUBMISSION_FILE, _check_environment, report.runs, submission, track, specs, report)
    _guarded(report, SUMMARY_FILE, _check_summary, source, files, report)
    _check_verification(source, files, report, incoming)


def _guarded(report: Report, where: str, check, *args):
    """Run one check; data too malformed for it (a list where a mapping belongs) is a failure, not a crash."""
    try:
        return check(*args)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as error:
        report.fail(f"{where}: malformed data ({type(error).__name__}: {_clip(str(error))})")
        return None


# ------------------------------------------------------------------------ submission.json


def _check_metadata(submission: dict[str, Any], report: Report) -> None:
    metadata = submission["metadata"]
    texts = [("metadata.name", metadata["name"]), ("metadata.description", metadata["description"])]
    texts += [(f"metadata.authors[{i}]", author) for i, author in enumerate(metadata["authors"])]
    for where, text in texts:
        markup = HTML_MARKUP.search(text)
        if markup:
            tag = re.match(r"<[^>]{0,30}>?|&[^;]*;", text[markup.start():]).group()  # type: ignore[union-attr]
            report.fail(f"{SUBMISSION_FILE}: {where} contains HTML markup ({tag!r}); submissions are plain text")
        if where != "metadata.description" and CONTROL.search(text):
            report.fail(f"{SUBMISSION_FILE}: {where} contains control characters (a newline?); one line of plain text")
    if metadata["url"] and not URL.match(metadata["url"]):
        report.fail(f"{SUBMISSION_FILE}: metadata.url must be empty or an http(s) URL, not {_clip(metadata['url'])!r}")
    try:
        datetime.date.fromisoformat(metadata["date"])
    except ValueError:
        report.fail(f"{SUBMISSION_FILE}: metadata.date {metadata['date']!r} is not a date (YYYY-MM-DD)")


def _check_manifest(source: _Folder | _Archive, manifest: dict[str, str], report: Report) -> None:
    present = set(source.files)
    for name in sorted(present - set(manifest) - set(UNLISTED_FILES)):
        report.fail(f"{name}: is not in the manifest ({SUBMISSION_FILE} files)")
    for name in sorted(present | set(manifest)):
        if name in UNLISTED_FILES:
            if name in manifest:
                report.fail(f"{SUBMISSION_FILE}: files lists {name}, which the manifest cannot hold")
            continue
        problem = path_problem(name)
        if problem:
            report.fail(f"{SUBMISSION_FILE}: files lists {name!r}, which has {problem}")
            continue
        if not LAYOUT.match(name):
            report.fail(f"{name}: unexpected file; a submission holds only {SUMMARY_FILE} and {RUNS_DIR}/<run_id>/{{{','.join(RUN_FILES)}}}")
        if name not in manifest:
            continue
        if name not in present:
            report.fail(f"{name}: listed in the manifest but missing")
            continue
        digest = sha256_bytes(source.read(name))
        if digest != manifest[name]:
            report.fail(f"{name}: checksum mismatch: its SHA-256 is {digest[:12]}… but the manifest says {manifest[name][:12]}…")


# -------------------------------------------------------------------------------- runs


def _run_ids(files: set[str], report: Report) -> list[str]:
    run_ids = sorted({PurePosixPath(name).parts[1] for name in files if name.startswith(RUNS_DIR + "/") and len(PurePosixPath(name).parts) == 3})
    if not run_ids:
        report.fail(f"{RUNS_DIR}/: holds no runs")
    return [run_id for run_id in run_ids if re.fullmatch(r"[0-9a-f]{16}", run_id)]


def _check_run(source, run_id: str, submission: dict, track: Track, specs: dict[str, EnvSpec], report: Report) -> CheckedRun | None:
    folder = f"{RUNS_DIR}/{run_id}"
    missing = [name for name in RUN_FILES if f"{folder}/{name}" not in source.files]
    for name in missing:
        report.fail(f"{folder}/{name}: missing")
    if results.RESULT_FILE in missing:
        return None
    path = f"{folder}/{results.RESULT_FILE}"
    record = _json(source.read(path), path, report)
    if record is None:
        return None
    try:
        results.validate_record(record, Path(path))
    except results.ResultError as error:
        report.fail(str(error))
        return None
    result = results.RunResult(**{key: value for key, value in record.items() if key in results.RunResult.__dataclass_fields__})
    run = CheckedRun(run_id, result.env, result.seed, result, None)
    label, config = run.label, result.config

    if result.status != "completed":
        report.fail(f"{label}: status is {result.status} ({result.error}); submit completed runs only")
        return run
    if result.run_id != run_id:
        report.fail(f"{label}: result.json says run_id {result.run_id}, but it lies in {folder}")
    try:
        expected_id = results.run_id(config)
    except KeyError as error:
        report.fail(f"{label}: config lacks the section {error}")
        return run
    if expected_id != result.run_id:
        report.fail(f"{label}: run_id {result.run_id} does not match the hash of its config ({expected_id}): the config was altered")
    if config.get("seed") != result.seed:
        report.fail(f"{label}: seed {result.seed} differs from config.seed {config.get('seed')}")
    for where, value in _strings(config):
        if "${" in value:
            report.fail(f"{label}: config.{where} holds an unresolved interpolation {_clip(value)!r}")
    unsafe = config_problems(config)
    for line in unsafe:
        report.fail(f"{label}: {line}")
    if f"{folder}/{CONFIG_FILE}" in source.files:
        _check_config_yaml(source.read(f"{folder}/{CONFIG_FILE}"), config, label, report)
    if f"{folder}/{results.EPISODES_FILE}" in source.files:
        run.fingerprints += _check_episodes(source.read(f"{folder}/{results.EPISODES_FILE}"), result, track, label, report)
    if f"{folder}/{POLICY_FILE}" in source.files:
        _check_policy(source.read(f"{folder}/{POLICY_FILE}"), label, report)

    spec = specs.get(result.env)
    if spec is None:
        report.fail(f"{label}: env {result.env} is not in track {track.name} ({', '.join(specs)})")
        return run
    _check_run_protocol(run, spec, track, unsafe, report)
    return run


def _check_run_protocol(run: CheckedRun, spec: EnvSpec, track: Track, unsafe: list[str], report: Report) -> None:
    """The run follows the track's protocol (config, env, budget, evaluation steps) and its metrics follow its curve."""
    result, label, config = run.result, run.label, run.result.config
    if not unsafe and rebuilt_run_id(config, spec.config, track.budget) != result.run_id:
        report.fail(f"{label}: its config is not the track's protocol plus agent and repr values: rebuilt from track {track.name}, it has another run_id")
    curve = [point.get("train_return") for point in result.curve] + [point.get("held_out_return") for point in result.curve]
    if len(set(curve)) > 1:
        run.fingerprints += ("curve:" + sha256_bytes(json.dumps(result.curve, sort_keys=True).encode()),)
    for line in _diff(config.get("env"), spec.config, "config.env"):
        report.fail(f"{label}: {line} (track {track.name} uses the standard conf/env/{spec.option}.yaml)")
    env_info = result.env_info
    expected_info = _env_info(spec)
    for key in expected_info:
        if env_info.get(key) != expected_info[key]:
            report.fail(f"{label}: env_info.{key} is {_clip(repr(env_info.get(key)))} but track {track.name} pins {expected_info[key]!r}")
    budget = config.get("budget") or {}
    for key, value in track.budget.items():
        if budget.get(key) != value:
            report.fail(f"{label}: budget.{key} is {budget.get(key)!r} but track {track.name} requires {value}")
    from llmrl_bench.evaluation import evaluation_steps

    steps = [point["step"] for point in result.curve]
    expected_steps = evaluation_steps(track.budget["env_steps"], track.budget["num_evals"])
    if steps != expected_steps:
        report.fail(f"{label}: curve steps {_clip(str(steps))} are not the track's evaluation steps {_clip(str(expected_steps))}")
    if result.provenance["env_steps"] < track.budget["env_steps"]:
        report.fail(f"{label}: trained {result.provenance['env_steps']} env steps, fewer than the budget's {track.budget['env_steps']}")
    held_out_ok = True
    for i, point in enumerate(result.curve):
        contexts = sorted(point["held_out"])
        if contexts != sorted(spec.held_out_contexts):
            report.fail(f"{label}: curve[{i}] evaluates held-out contexts {contexts}, not the track's {sorted(spec.held_out_contexts)}: the held-out split was not evaluated")
            held_out_ok = False
        elif not aggregate.close(point["held_out_return"], float(np.mean([point["held_out"][c] for c in spec.held_out_contexts]))):
            report.fail(f"{label}: curve[{i}].held_out_return {point['held_out_return']} is not the mean over its held-out contexts")
            held_out_ok = False
    if len(result.curve) >= 2 and held_out_ok:
        run.metrics = aggregate.recompute_run_metrics(result.curve, spec)
        for line in aggregate.differences(result.metrics, run.metrics, "metrics"):
            report.fail(f"{label}: {line.replace('the runs give', 'its curve gives')}")


def _check_config_yaml(data: bytes, config: dict, label: str, report: Report) -> None:
    try:
        stored = OmegaConf.to_container(OmegaConf.create(data.decode()), resolve=False)
    except Exception as error:  # noqa: BLE001 - any unreadable YAML is one line
        report.fail(f"{label}: {CONFIG_FILE} is not readable YAML: {_clip(str(error))}")
        return
    for line in _diff(stored, config, CONFIG_FILE):
        report.fail(f"{label}: {line} in result.json's config: config.yaml and result.json disagree")


def _check_episodes(data: bytes, result: results.RunResult, track: Track, label: str, report: Report) -> tuple[str, ...]:
    """Check the per-episode data, headers first; returns its fingerprint if its returns vary."""
    max_rows = result.provenance["env_steps"] if isinstance(result.provenance.get("env_steps"), int) else track.budget["env_steps"]
    try:
        headers = npz_headers(data)
        lengths = {name: shape for name, (shape, _) in headers.items()}
        if sorted(headers) != sorted(EPISODE_COLUMNS) or len(set(lengths.values())) != 1 or len(next(iter(lengths.values()))) != 1:
            report.fail(f"{label}: {results.EPISODES_FILE} must hold 1-D columns {', '.join(EPISODE_COLUMNS)} of one length; has {lengths}")
            return ()
        if next(iter(lengths.values()))[0] > max_rows:
            report.fail(f"{label}: {results.EPISODES_FILE} holds {next(iter(lengths.values()))[0]} episodes, more than the run's {max_rows} env steps allow")
            return ()
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            columns = {name: npz[name] for name in npz.files}
    except Exception as error:  # noqa: BLE001 - pickles, truncation, oversized arrays, anything else
        report.fail(f"{label}: {results.EPISODES_FILE} is not a readable npz of plain arrays within the caps: {_clip(str(error), 200)}")
        return ()
    step = columns["step"]
    if not all(np.issubdtype(c.dtype, np.number) and np.all(np.isfinite(c)) for c in columns.values()):
        report.fail(f"{label}: {results.EPISODES_FILE} holds non-numeric or non-finite values")
    elif step.size and (np.any(np.diff(step) < 0) or step[-1] > result.provenance["env_steps"]):
        report.fail(f"{label}: {results.EPISODES_FILE} steps are not increasing within the run's {result.provenance['env_steps']} env steps")
    if np.unique(columns["return"]).size < 2 and np.unique(columns["length"]).size < 2:
        return ()  # an agent that never varies: its episodes cannot tell seeds apart
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(columns[name]).tobytes() for name in EPISODE_COLUMNS)).hexdigest()
    return ("episodes:" + digest,)


def load_policy_state(data: bytes) -> Any:
    """A policy file's content, read as data only (``torch.load(weights_only=True)``); raises on pickled code."""
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _check_policy(data: bytes, label: str, report: Report) -> None:
    try:
        state = load_policy_state(data)
    except Exception as error:  # noqa: BLE001 - pickled code, truncation, anything else
        report.fail(f"{label}: {POLICY_FILE} is not a weights-only torch file (tensors, dicts, lists, numbers): {_clip(str(error), 160)}")
        return
    tensors = [value for value in _leaves(state) if isinstance(value, torch.Tensor)]
    if not tensors:
        report.fail(f"{label}: {POLICY_FILE} holds no tensors")
    elif not all(torch.isfinite(t).all() for t in tensors if t.is_floating_point() or t.is_complex()):
        report.fail(f"{label}: {POLICY_FILE} holds non-finite weights")


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


# ------------------------------------------------------------------------- protocol


def _check_protocol(runs: list[CheckedRun], submission: dict, track: Track, specs: dict[str, EnvSpec], report: Report) -> None:
    code = submission["code"]
    completed = [run for run in runs if run.result.status == "completed"]
    for kind, values in (("agent", {run.result.agent for run in completed}), ("repr", {run.result.repr for run in completed})):
        if len(values) > 1:
            report.fail(f"runs: several {kind}s ({', '.join(sorted(values))}); a submission is one agent with one representation")
        elif values and code[kind] not in values:
            report.fail(f"{SUBMISSION_FILE}: code.{kind} is {code[kind]!r} but the runs use {next(iter(values))!r}")
    for run in completed:
        target = (run.result.config.get("agent") or {}).get("_target_")
        if target != code["agent_target"]:
            report.fail(f"{run.label}: config.agent._target_ is {target!r} but {SUBMISSION_FILE} code.agent_target is {code['agent_target']!r}")
    for env in specs:
        by_seed: dict[int, list[CheckedRun]] = {}
        for run in completed:
            if run.env == env:
                by_seed.setdefault(run.seed, []).append(run)
        if not by_seed:
            report.fail(f"env {env}: no runs; track {track.name} needs every env of {', '.join(specs)}")
            continue
        for seed in track.seeds:
            if seed not in by_seed:
                report.fail(f"env {env}: seed {seed} missing; track {track.name} needs seeds 0-{track.num_seeds - 1}")
        for seed in sorted(set(by_seed) - set(track.seeds)):
            report.fail(f"env {env}: seed {seed} is not one of the track's seeds 0-{track.num_seeds - 1} (no extra seeds, so none can be picked)")
        for seed, duplicates in sorted(by_seed.items()):
            if len(duplicates) > 1:
                report.fail(f"env {env}: seed {seed} has {len(duplicates)} runs ({', '.join(r.run_id for r in duplicates)})")
        reference = by_seed[min(by_seed)][0]
        for run in (run for seed in sorted(by_seed) for run in by_seed[seed] if run is not reference):
            for line in _diff(run.result.config.get("agent"), reference.result.config.get("agent"), "config.agent"):
                report.fail(f"{run.label}: agent config differs from seed {reference.seed}'s: {line} there")
    if completed:
        reference = completed[0]
        for run in completed[1:]:
            for line in _diff(run.result.config.get("repr"), reference.result.config.get("repr"), "config.repr"):
                report.fail(f"{run.label}: repr config differs from {reference.label}'s: {line}")
    _check_duplicates(completed, report)


def _check_duplicates(runs: list[CheckedRun], report: Report) -> None:
    """One run submitted under two seeds: identical per-episode data or curves (where they vary)."""
    first: dict[tuple[str, str], CheckedRun] = {}
    for run in sorted(runs, key=lambda r: (r.env, r.seed, r.run_id)):
        for fingerprint in run.fingerprints:
            other = first.setdefault((run.env, fingerprint), run)
            if other is not run:
                what = "per-episode data" if fingerprint.startswith("episodes:") else "curve"
                report.fail(f"{run.label}: identical {what} to {other.label}: one run submitted under two seeds")


def _check_environment(runs: list[CheckedRun], submission: dict, track: Track, specs: dict[str, EnvSpec], report: Report) -> None:
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    environment, code = submission["environment"], submission["code"]
    packages = environment["packages"]
    completed = [run for run in runs if run.result.status == "completed"]
    if completed:  # one software environment: every run's versions and commit, then submission.json's
        reference = completed[0]
        for run in completed[1:]:
            for line in _diff(run.result.provenance["packages"], reference.result.provenance["packages"], "provenance.packages"):
                report.fail(f"{run.label}: {line} in {reference.label}: the runs used different versions")
            if run.result.provenance.get("git_commit") != reference.result.provenance.get("git_commit"):
                report.fail(f"{run.label}: provenance.git_commit differs from {reference.label}'s: the runs come from different code")
        for line in _diff(packages, reference.result.provenance["packages"], "environment.packages"):
            report.fail(f"{SUBMISSION_FILE}: {line} in the runs' provenance: the versions disagree")
        if code["git_commit"] != reference.result.provenance.get("git_commit"):
            report.fail(f"{SUBMISSION_FILE}: code.git_commit is {code['git_commit']!r} but the runs were made at {reference.result.provenance.get('git_commit')!r}")
    if packages.get("python") not in (None, environment["python"]):
        report.fail(f"{SUBMISSION_FILE}: environment.python {environment['python']} differs from environment.packages.python {packages['python']}")
    platforms = sorted({run.result.provenance.get("platform", "") for run in completed} - {""})
    if completed and platforms != environment["platforms"]:
        report.fail(f"{SUBMISSION_FILE}: environment.platforms {environment['platforms']} are not the runs' {platforms}")
    envs = environment["envs"]
    for name in sorted(set(envs) - set(specs)):
        report.fail(f"{SUBMISSION_FILE}: environment.envs.{name} is not an env of track {track.name}")
    for name, spec in specs.items():
        for key, expected in _env_info(spec).items():
            value = (envs.get(name) or {}).get(key)
            if value != expected:
                report.fail(f"{SUBMISSION_FILE}: environment.envs.{name}.{key} is {_clip(repr(value))} but track {track.name} pins {expected!r}")
    for package, spec in sorted(track.packages.items()):
        version = packages.get(package)
        try:
            satisfied = version is not None and Version(version) in SpecifierSet(spec)
        except InvalidVersion:
            satisfied = False
        if not satisfied:
            report.fail(f"{SUBMISSION_FILE}: environment.packages.{package} is {version!r}; track {track.name} requires {package}{spec}")
    external = is_external(code["agent_target"])
    if code["external"] != external:
        report.fail(f"{SUBMISSION_FILE}: code.external is {code['external']} but the agent _target_ {code['agent_target']} is {'outside' if external else 'inside'} llmrl_bench")
    if external and code["module"] is None:
        report.fail(f"{SUBMISSION_FILE}: code.module is null; an external agent needs its module and the SHA-256 of its file")
    if external and code["module"] and not code["agent_target"].startswith(code["module"]["name"] + "."):
        report.fail(f"{SUBMISSION_FILE}: code.module.name {code['module']['name']} is not the module of {code['agent_target']}")
    if code["git_commit"] and code["git_commit"].endswith("+dirty"):
        report.warnings.append(f"{SUBMISSION_FILE}: the runs were made at {code['git_commit']}: uncommitted changes, so the commit does not pin the code")


def _check_summary(source, files: set[str], report: Report) -> None:
    track, runs = report.track, report.runs
    complete = (
        track is not None and runs and all(run.metrics is not None for run in runs)
        and sorted((run.env, run.seed) for run in runs) == sorted((env, seed) for env in track.env_specs() for seed in track.seeds)
    )
    if complete:
        report.summary = aggregate.summarize(track.name, [(run.env, run.seed, run.metrics) for run in runs])
    if SUMMARY_FILE not in files:
        return
    submitted = _json(source.read(SUMMARY_FILE), SUMMARY_FILE, report)
    if submitted is None:
        return
    if report.summary is None:
        report.fail(f"{SUMMARY_FILE}: cannot be checked, the runs above are incomplete")
        return
    for line in aggregate.differences(submitted, report.summary):
        report.fail(f"{SUMMARY_FILE}: {line}: the summary disagrees with the runs")


def _check_verification(source, files: set[str], report: Report, incoming: bool) -> None:
    if VERIFICATION_FILE in files:
        if incoming:
            report.fail(f"{VERIFICATION_FILE}: present in an incoming submission; only a maintainer's verify writes a record, beside the folder")
        else:
            report.warnings.append(f"{VERIFICATION_FILE}: inside the submission, so ignored; verify writes its record beside the folder")
    if not isinstance(source, _Folder):
        return
    path = verification_path(source.root)
    if path.is_symlink() or not path.is_file():
        return
    name = path.name
    if path.stat().st_size > 1024**2:
        report.warnings.append(f"{name}: larger than 1 MiB, not a verification record; unverified")
        return
    record = _json(path.read_bytes(), name, report, fatal=False)
    error = jsonschema.exceptions.best_match(verification_validator().iter_errors(record)) if record is not None else None
    if record is None or error is not None:
        report.warnings.append(f"{name}: not a valid verification record{': ' + _clip(error.message) if error else ''}; unverified")
    elif record["submission_sha256"] != report.submission_sha256:
        report.warnings.append(f"{name}: made for another {SUBMISSION_FILE} (stale); verify again")
    else:
        report.verification = record


# ------------------------------------------------------------------------------ helpers


def _env_info(spec: EnvSpec) -> dict[str, Any]:
    """``result.json``'s ``env_info`` as this checkout makes it."""
    return {
        "gym_id": spec.gym_id, "score_range": list(spec.score_range),
        "reward_threshold": spec.reward_threshold, "held_out_contexts": list(spec.held_out_contexts),
    }


def _json(data: bytes, name: str, report: Report, fatal: bool = True) -> Any:
    try:
        value = json.loads(data, parse_constant=results.reject_non_finite)
    except results.NonFiniteNumber as error:
        report.fail(f"{name}: {error}")
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        if fatal:
            report.fail(f"{name}: not valid JSON: {error}")
        return None
    if not isinstance(value, dict):
        if fatal:
            report.fail(f"{name}: not a JSON object")
        return None
    return value


def _diff(value: Any, expected: Any, where: str) -> list[str]:
    """One line ``"<path> is <value>, against <expected>"`` per leaf where the two differ (exactly)."""
    if isinstance(value, dict) and isinstance(expected, dict):
        lines = []
        for key in sorted(set(value) | set(expected), key=str):
            path = f"{where}.{key}"
            if key not in value:
                lines.append(f"{path} is missing, against {_clip(repr(expected[key]))}")
            elif key not in expected:
                lines.append(f"{path} is {_clip(repr(value[key]))}, against no such key")
            else:
                lines.extend(_diff(value[key], expected[key], path))
        return lines
    same_type = type(value) is type(expected) or (
        isinstance(value, (int, float)) and isinstance(expected, (int, float)) and not isinstance(value, bool) and not isinstance(expected, bool)
    )
    if value == expected and same_type:
        return []
    return [f"{where} is {_clip(repr(value))}, against {_clip(repr(expected))}"]


def _strings(config: Any, where: str = "") -> list[tuple[str, str]]:
    if isinstance(config, dict):
        return [item for key, value in config.items() for item in _strings(value, f"{where}.{key}" if where else str(key))]
    if isinstance(config, list):
        return [item for i, value in enumerate(config) for item in _strings(value, f"{where}[{i}]")]
    return [(where, config)] if isinstance(config, str) else []


def _clip(text: str, limit: int = 100) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
