"""Sweep bookkeeping: each job leaves its outcome beside its Hydra output; the end of a multirun sums them up.

Interruptions: the first Ctrl-C (SIGINT) or SIGTERM to a sweep marks it interrupted (a flag file in
its folder) and is passed on to the workers. Running jobs checkpoint (resumable agents) and stop,
queued jobs do not start, and the sweep ends with one line and exit code 130 (143 for SIGTERM).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from llmrl_bench import checkpoint, results
from llmrl_bench.progress import SweepPosition
from llmrl_bench.metrics import HEADLINE_METRICS, METRICS
from llmrl_bench.runner import experiment_config

log = logging.getLogger(__name__)

OUTCOME_FILE = "outcome.json"
INTERRUPTED_FILE = ".interrupted"
SWEEP_ID_VARIABLE = "LLMRL_BENCH_SWEEP_ID"
SWEEP_JOBS_VARIABLE = "LLMRL_BENCH_SWEEP_JOBS"


class Interrupted(SystemExit):
    """Ctrl-C or SIGTERM: the run stopped (after its checkpoint, for resumable agents)."""


def write_outcome(output_dir: str | Path, status: str, title: str, error: str | None = None, **details: Any) -> None:
    """Record one job's outcome (``done``, ``skipped``, ``failed`` or ``interrupted``) in its Hydra output dir."""
    path = Path(output_dir) / OUTCOME_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"status": status, "title": title, "error": error, **details}, default=str))


def read_outcomes(sweep_dir: str | Path) -> list[dict[str, Any]]:
    outcomes = []
    for path in sorted(Path(sweep_dir).glob(f"*/{OUTCOME_FILE}"), key=lambda p: (len(p.parent.name), p.parent.name)):
        try:
            outcomes.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            outcomes.append({"status": "failed", "title": str(path.parent), "error": "no readable outcome"})
    return outcomes


def run_label(cfg: DictConfig) -> str:
    """``agent/repr/env/seed=N`` of the run ``cfg`` describes."""
    from hydra.utils import get_class

    return f"{get_class(cfg.agent._target_).name}/{cfg.repr.name}/{cfg.env.name}/seed={cfg.seed}"


def run_dir_of(cfg: DictConfig) -> str:
    """The results folder of the run ``cfg`` describes."""
    return str(results.run_dir(cfg.results_dir, results.run_id(experiment_config(cfg))))


def format_metric(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def metrics_table(rows: list[tuple[str, dict[str, Any] | None, str]]) -> str:
    """A plain-text table: one row per run (title, metrics, path), one column per headline metric."""
    header = ["run", *(f"{name} ({'↑' if METRICS[name].higher_is_better else '↓'})" for name in HEADLINE_METRICS), "result"]
    body = [[title, *(format_metric((metrics or {}).get(name)) for name in HEADLINE_METRICS), path] for title, metrics, path in rows]
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *body])


def print_run_summary(cfg: DictConfig, status: str, run_metrics: dict[str, Any] | None) -> None:
    """The end of a single run: its four metrics, where its result and its W&B run are."""
    run_dir = run_dir_of(cfg)
    print(metrics_table([(f"{run_label(cfg)} ({status})", run_metrics, f"{run_dir}/result.json")]))
    stored = results.completed_result(cfg.results_dir, Path(run_dir).name)
    wandb_dir = stored.provenance.get("wandb_run_dir") if stored is not None else None
    print(f"W&B run: {wandb_dir}" if wandb_dir else "W&B run: none (logger=none, or the result was already there)")


_SWEEP: dict[str, Path] = {}  # the running sweep's folder and results folder (main process)


class SweepSummary(Callback):
    """Notes the sweep folder at the start; at the end prints a table of the runs, then the failures.

    Exits 1 if any run failed, 130 (143) if the sweep was interrupted.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _SWEEP["dir"] = Path(config.hydra.sweep.dir)
        _SWEEP["results_dir"] = Path(config.results_dir)
        (_SWEEP["dir"] / INTERRUPTED_FILE).unlink(missing_ok=True)  # a folder reused by hydra.sweep.dir=

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        outcomes = read_outcomes(config.hydra.sweep.dir)
        counts = {status: sum(o["status"] == status for o in outcomes) for status in ("done", "skipped", "failed", "interrupted")}
        rows = [(o.get("run") or o["title"], o.get("metrics"), o.get("run_dir") or "") for o in outcomes if o["status"] in ("done", "skipped")]
        if rows:
            print(metrics_table(rows), file=sys.stderr)
        signum = interrupted_signal(config.hydra.sweep.dir)
        if signum is not None:
            print(_sweep_interrupted_line(config.hydra.sweep.dir), file=sys.stderr)
            sys.exit(128 + signum)
        print(f"sweep {config.sweep}: {len(outcomes)} runs: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed",
              file=sys.stderr)
        failures = [o for o in outcomes if o["status"] == "failed"]
        for outcome in failures:
            print(f"  failed {outcome['title']}: {outcome['error']}", file=sys.stderr)
        if failures:
            sys.exit(1)


def interrupted_signal(sweep_dir: str | Path) -> int | None:
    """The signal that interrupted the sweep in ``sweep_dir``, if any."""
    path = Path(sweep_dir) / INTERRUPTED_FILE
    return int(path.read_text() or signal.SIGINT) if path.exists() else None


def _stop_sweep(signum: int, frame: Any) -> None:
    """The sweep's main process: mark the sweep interrupted once and pass the signal on to the workers."""
    sweep_dir = _SWEEP.get("dir")
    if sweep_dir is not None and not (sweep_dir / INTERRUPTED_FILE).exists():
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / INTERRUPTED_FILE).write_text(str(signum))
        import psutil

        for child in psutil.Process().children(recursive=False):  # the workers, not their W&B services
            try:
                if not any("resource_tracker" in part for part in child.cmdline()):
                    child.send_signal(signum)
            except psutil.Error:
                pass
        print(f"\n{signal.Signals(signum).name}: stopping the sweep after the running jobs checkpoint ...", file=sys.stderr)
    if _RUN.get("active"):  # a job running in this very process (a sequential sweep): stop it
        raise KeyboardInterrupt


@contextmanager
def interrupt_handling(multirun: bool) -> Iterator[None]:
    """Ctrl-C and SIGTERM end a sweep or a run with one line and exit code 128 + signal, never a traceback."""
    previous = {}
    if multirun and threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, _stop_sweep) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except (KeyboardInterrupt, checkpoint.Preempted, Interrupted) as stop:
        code = stop.code if isinstance(stop, SystemExit) and isinstance(stop.code, int) else 128 + signal.SIGINT
        if multirun and "dir" in _SWEEP:  # a worker's interruption surfaced here: sum up what the sweep has
            signum = interrupted_signal(_SWEEP["dir"])
            code = 128 + signum if signum is not None else code
            print(_sweep_interrupted_line(_SWEEP["dir"]), file=sys.stderr)
        else:
            print(f"interrupted ({_resume_hint()}); the same command resumes", file=sys.stderr)
        sys.exit(code)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _sweep_interrupted_line(sweep_dir: str | Path) -> str:
    outcomes = read_outcomes(sweep_dir)
    done = sum(o["status"] in ("done", "skipped") for o in outcomes)
    results_dir = _SWEEP.get("results_dir")
    checkpointed = len(list(Path(results_dir).glob(f"runs/*/{checkpoint.CHECKPOINT_FILE}"))) if results_dir else 0
    return f"interrupted: {done} done, {checkpointed} checkpointed; the same command resumes"


def _resume_hint() -> str:
    return "checkpointed" if _RUN.get("checkpointed") else "not checkpointed: this agent restarts from step 0"


_RUN: dict[str, bool] = {}


@contextmanager
def job_interrupts(output_dir: str, title: str, run_dir: Path, multirun: bool) -> Iterator[None]:
    """One job: an interruption is recorded as its outcome; in a sweep the job then ends quietly."""
    worker = multirun and threading.current_thread() is threading.main_thread() and os.getpid() != _main_pid()
    if worker:
        for signum in (signal.SIGINT, signal.SIGTERM):  # the first signal stops the run, more are ignored
            signal.signal(signum, _once(signum))
    _RUN["active"] = not worker
    try:
        yield
    except (KeyboardInterrupt, checkpoint.Preempted, Interrupted):
        checkpointed = (run_dir / checkpoint.CHECKPOINT_FILE).exists()
        _RUN["checkpointed"] = checkpointed
        write_outcome(output_dir, "interrupted", title, checkpointed=checkpointed)
        if not multirun:
            raise
    finally:
        _RUN["active"] = False
        if worker:  # idle between jobs: a late signal must not kill the worker
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_IGN)


def job_position(output_dir: str, job_num: int, line: int) -> SweepPosition:
    """Job ``job_num`` (0-based) of the sweep in ``output_dir``'s parent, with the sweep's remaining time
    estimated from the jobs finished so far (mean seconds per job x jobs left / workers)."""
    total = int(os.environ.get(SWEEP_JOBS_VARIABLE, "1") or 1)
    seconds = [o["seconds"] for o in read_outcomes(Path(output_dir).parent) if o.get("seconds") and o["status"] == "done"]
    eta = None
    if seconds:
        eta = sum(seconds) / len(seconds) * (total - job_num) / max(1, min(sweep_workers(), total))
    return SweepPosition(number=job_num + 1, total=total, line=line, sweep_eta_seconds=eta)


def sweep_workers() -> int:
    """Parallel jobs of a local sweep: ``$LLMRL_BENCH_JOBS`` or one per core."""
    jobs = int(os.environ.get("LLMRL_BENCH_JOBS", "-1"))
    return jobs if jobs > 0 else (os.cpu_count() or 1)


def sweep_interrupted(output_dir: str) -> bool:
    """A job of an interrupted sweep: it does not start."""
    return interrupted_signal(Path(output_dir).parent) is not None


def _main_pid() -> int:
    return int(os.environ.get(SWEEP_ID_VARIABLE, "-1"))


def _once(signum: int):
    state = {"seen": False}

    def handler(received: int, frame: Any) -> None:
        if not state["seen"]:
            state["seen"] = True
            raise KeyboardInterrupt

    return handler
