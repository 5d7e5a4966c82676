"""The results schema: the one module that writes and loads ``results/``.

Layout::

    <results_dir>/runs/<run_id>/result.json    # one run: metrics, curve, config, provenance
    <results_dir>/runs/<run_id>/episodes.npz   # per-episode training data (columnar)
    <results_dir>/runs/<run_id>/policy.pt      # final policy checkpoint (not committed)

``result.json`` follows the versioned JSON Schema ``llmrl_bench/schema/result-v1.json``,
whose ``metrics`` section is filled in from the metric registry
(:data:`llmrl_bench.metrics.METRICS`). Every write is atomic (temporary file, fsync,
rename), and loading is strict: a file that is truncated or does not match the schema
raises :class:`ResultError` naming it.

When a metric's definition changes, rewrite every stored ``metrics`` from its stored
curve (documented in ``docs/metrics.md``)::

    python -m llmrl_bench.results recompute results/reference [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import jsonschema
import numpy as np

from llmrl_bench import metrics

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("schema") / f"result-v{SCHEMA_VERSION}.json"
RESULT_FILE = "result.json"
EPISODES_FILE = "episodes.npz"
POLICY_FILE = "policy.pt"

#: The config sections that define an experiment; everything else (logging, paths,
#: progress) can change without changing the run_id.
EXPERIMENT_KEYS = ("agent", "env", "repr", "budget", "seed")
#: The training split's key in ``env_info.optimal_return`` and in a curve point's ``modes``
#: (the suites' ``envs.base.TRAIN``; kept here so that readers of results need no env code).
TRAIN_SPLIT = "train"
DEFAULT_TORCH_THREADS = 1
#: The training reward that keeps run_ids as they were before ``reward=`` existed: the env's own.
DIRECT_REWARD = "direct"


class ResultError(ValueError):
    """A result file that is missing, truncated or invalid."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class RunResult:
    """One run's record, as stored in ``result.json``."""

    run_id: str
    agent: str
    env: str
    repr: str
    seed: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    curve: list[dict[str, Any]]
    provenance: dict[str, Any]
    env_info: dict[str, Any] = field(default_factory=dict)
    sweep: str = "default"
    status: str = "completed"
    error: str | None = None
    schema_version: int = SCHEMA_VERSION

    def curve_arrays(self) -> dict[str, np.ndarray]:
        """The curve as arrays: ``step``, ``train_return``, ``held_out_return`` ``(num_points,)``."""
        return {key: np.array([point[key] for point in self.curve]) for key in ("step", "train_return", "held_out_return")}


def options_off_default(section: dict[str, Any]) -> int:
    """How many options of a config section (``env``, ``agent``, ...) differ from its registered schema's defaults;
    0 for a section whose ``_target_`` is not registered."""
    import dataclasses

    from llmrl_bench import registry

    try:
        schema = registry.schema_of(str(section.get("_target_")))
    except KeyError:
        return 0
    defaults = {f.name: f.default for f in dataclasses.fields(schema) if f.default is not dataclasses.MISSING}
    defaults |= {f.name: f.default_factory() for f in dataclasses.fields(schema) if f.default_factory is not dataclasses.MISSING}
    return sum(1 for key, value in section.items() if key in defaults and value != defaults[key])


def run_id(config: dict[str, Any]) -> str:
    """A 16-hex-digit hash of the resolved config fields that define the experiment.

    Torch's thread count changes floating-point sums, so a run with more than the default one
    thread is another experiment (the default stays out of the hash: ids made before stay valid).
    So is the training reward: ``reward=direct`` (or none) stays out, any other ``reward`` is hashed.
    """
    canonical = json.dumps(experiment_identity(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def experiment_identity(config: dict[str, Any]) -> dict[str, Any]:
    """What :func:`run_id` hashes: the ``EXPERIMENT_KEYS`` sections as the schemas' identity views (late-added
    options at their neutral value left out), the training reward where it is not the env's own, and the thread
    count where it is not the default. Two runs with equal identities less ``seed`` differ only in seed."""
    from llmrl_bench import registry  # the schemas say which late-added options are identity-neutral

    identity = {key: config[key] for key in EXPERIMENT_KEYS}
    for key in ("agent", "env", "repr"):
        if isinstance(identity[key], dict):
            identity[key] = registry.identity_view(identity[key])
    reward = config.get("reward")
    if isinstance(reward, dict) and reward.get("name", DIRECT_REWARD) != DIRECT_REWARD:
        identity["reward"] = reward
    if config.get("torch_threads", DEFAULT_TORCH_THREADS) != DEFAULT_TORCH_THREADS:
        identity["torch_threads"] = config["torch_threads"]
    return identity


def curve_repeats(reference: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> bool:
    """Whether ``fresh`` repeats ``reference`` point for point on every field ``reference`` records
    (curves recorded before the protocol's evaluation modes have no ``modes``)."""
    return len(reference) == len(fresh) and all(
        {key: point.get(key) for key in old} == old for old, point in zip(reference, fresh)
    )


def run_dir(results_dir: str | Path, run_id_: str) -> Path:
    return Path(results_dir) / "runs" / run_id_


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """``write(handle)`` into a temporary file that then replaces ``path``: readers see the old file or
    the whole new one, and large data (a checkpoint) streams to disk without a copy in memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; collaborators read results (0644 by default)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_ready(value: Any) -> Any:
    """NaN/inf are not JSON: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return _json_ready(value.item())
    return value


def write_result(result: RunResult, results_dir: str | Path) -> Path:
    """Validate ``result`` against the schema and write it atomically; returns its path."""
    path = run_dir(results_dir, result.run_id) / RESULT_FILE
    write_record(path, asdict(result))
    return path


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Validate a ``result.json`` record and write it atomically to ``path``."""
    record = _json_ready(record)
    validate_record(record, Path(RESULT_FILE))
    atomic_write_bytes(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def write_episodes(results_dir: str | Path, run_id_: str, columns: dict[str, np.ndarray]) -> Path:
    """Per-episode training data (e.g. ``step``, ``return``, ``length``) as a compressed npz."""
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: np.asarray(values) for name, values in columns.items()})
    path = run_dir(results_dir, run_id_) / EPISODES_FILE
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_episodes(results_dir: str | Path, run_id_: str) -> dict[str, np.ndarray]:
    path = run_dir(results_dir, run_id_) / EPISODES_FILE
    with np.load(path) as data:
        columns = {name: data[name] for name in data.files}
    if not all(np.all(np.isfinite(column)) for column in columns.values() if np.issubdtype(column.dtype, np.number)):
        raise ResultError(path, "holds NaN or infinite values; every number must be finite")
    return columns


class NonFiniteNumber(ValueError):
    """A JSON ``NaN``, ``Infinity`` or ``-Infinity``: not a valid number in a result."""


def reject_non_finite(constant: str) -> float:
    """``json.loads(..., parse_constant=reject_non_finite)``: JSON's NaN and infinities are errors."""
    raise NonFiniteNumber(f"holds {constant}; every number must be finite")


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    registry = metrics.result_schema()
    schema["properties"]["metrics"]["properties"] = registry["properties"]
    schema["allOf"][0]["then"]["properties"]["metrics"]["required"] = registry["required"]
    return jsonschema.Draft202012Validator(schema)


def validate_record(record: dict[str, Any], path: Path) -> None:
    """Raise :class:`ResultError` if ``record`` does not match the result schema."""
    error = jsonschema.exceptions.best_match(_validator().iter_errors(record))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ResultError(path, f"does not match {SCHEMA_PATH.name} at {where}: {error.message}")


def load_result(path: str | Path) -> RunResult:
    """Strictly load one ``result.json``; raises :class:`ResultError` with the reason."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(), parse_constant=reject_non_finite)
    except FileNotFoundError:
        raise ResultError(path, "missing") from None
    except NonFiniteNumber as error:
        raise ResultError(path, str(error)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ResultError(path, f"not valid JSON (truncated?): {error}") from None
    if not isinstance(record, dict):
        raise ResultError(path, "not a JSON object")
    validate_record(record, path)
    known = {name for name in RunResult.__dataclass_fields__}
    return RunResult(**{key: value for key, value in record.items() if key in known})


def iter_result_paths(results_dir: str | Path) -> Iterator[Path]:
    yield from sorted((Path(results_dir) / "runs").glob(f"*/{RESULT_FILE}"))


def read_results(results_dir: str | Path) -> Iterator[tuple[Path, RunResult | ResultError]]:
    """Every ``result.json`` under ``results_dir`` in path order, loaded or with its error."""
    for path in iter_result_paths(results_dir):
        try:
            yield path, load_result(path)
        except ResultError as error:
            yield path, error


def load_results(results_dir: str | Path, include_failed: bool = False) -> tuple[list[RunResult], list[ResultError]]:
    """Every valid result under ``results_dir`` and the errors for the invalid ones.

    Invalid files are reported, never read as results. Failed runs are left out
    unless ``include_failed``.
    """
    results, errors = [], []
    for _, result in read_results(results_dir):
        if isinstance(result, ResultError):
            errors.append(result)
        elif result.status == "completed" or include_failed:
            results.append(result)
    return results, errors


def completed_result(results_dir: str | Path, run_id_: str) -> RunResult | None:
    """The completed result for ``run_id_``, or ``None`` if absent, failed or invalid."""
    try:
        result = load_result(run_dir(results_dir, run_id_) / RESULT_FILE)
    except ResultError:
        return None
    return result if result.status == "completed" else None


def recomputed_metrics(result: RunResult) -> dict[str, Any]:
    """The run's metrics recomputed from its stored curve and env info (:mod:`llmrl_bench.metrics`)."""
    return metrics.run_metrics_from_curve(result.curve, result.env_info["score_range"],
                                          result.env_info.get("reward_threshold"))


def recompute(results_dir: str | Path, check: bool = False) -> tuple[list[str], list[ResultError]]:
    """Rewrite every completed run's ``metrics`` from its stored curve (or only list them, ``check``).

    Returns one line per run whose stored metrics differ from the recomputed ones, and
    the invalid files (left untouched). Curves, config and provenance are never changed.
    """
    changed, errors = [], []
    for path, result in read_results(results_dir):
        if isinstance(result, ResultError):
            errors.append(result)
            continue
        if result.status != "completed":
            continue
        fresh = recomputed_metrics(result)
        differences = metrics.metric_differences(result.metrics, fresh)
        if differences:
            changed.append(f"{path}: {'; '.join(differences)}")
            if not check:
                write_record(path, asdict(result) | {"metrics": fresh})
    return changed, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmrl_bench.results",
                                     description="Maintain a results folder.")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("recompute", help="rewrite every stored metrics block from its stored curve")
    command.add_argument("results_dir", help="a results folder holding runs/<run_id>/result.json")
    command.add_argument("--check", action="store_true", help="only list the runs that would change (exit 1 if any)")
    args = parser.parse_args(argv)
    if not (Path(args.results_dir) / "runs").is_dir():
        print(f"results: {args.results_dir!r} holds no runs/ folder", file=sys.stderr)
        return 2
    changed, errors = recompute(args.results_dir, check=args.check)
    for line in changed:
        print(("stale: " if args.check else "rewrote: ") + line)
    for error in errors:
        print(f"invalid (left as is): {error}", file=sys.stderr)
    print(f"results: {len(changed)} run(s) {'stale' if args.check else 'rewritten'}, {len(errors)} invalid")
    return 1 if (args.check and changed) or errors else 0


if __name__ == "__main__":
    sys.exit(main())
