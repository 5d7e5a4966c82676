"""A live progress line per run (steps, steps/s, latest evaluation return) on a terminal; elsewhere
(a sweep under ``nohup``, a cluster job) one log line per evaluation.

In a sweep each worker owns one line (``position``), and each line says which job of how many it
shows and an estimate of the whole sweep's remaining time.
"""

from __future__ import annotations

import fcntl
import logging
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass
class SweepPosition:
    """Where one job sits in a sweep: job ``number`` (1-based) of ``total``, on terminal line ``line``."""

    number: int = 1
    total: int = 1
    line: int = 0
    sweep_eta_seconds: float | None = None

    def label(self) -> str:
        return f"job {self.number}/{self.total} " if self.total > 1 else ""


class RunProgress:
    """tqdm bar over env steps when stderr is a terminal, else a log line per evaluation; silent when ``enabled`` is false."""

    #: Steps between two bar updates, so the bar costs nothing per env step.
    UPDATE_EVERY = 512

    def __init__(self, title: str, total_steps: int, enabled: bool = True, position: SweepPosition | None = None):
        position = position or SweepPosition()
        self.title = f"{position.label()}{title}"
        self.total_steps = total_steps
        self.logs = enabled and not sys.stderr.isatty()
        self.enabled = enabled and sys.stderr.isatty()
        self.shown = 0
        self.sweep_eta = position.sweep_eta_seconds
        self.bar = tqdm(
            total=total_steps, desc=self.title, unit="step", dynamic_ncols=True,
            position=position.line, leave=position.total <= 1,  # in a sweep the final table replaces the bars
        ) if self.enabled else None
        self.started = time.perf_counter()

    def update(self, global_step: int) -> None:
        if self.bar is not None and global_step - self.shown >= self.UPDATE_EVERY:
            self.bar.update(global_step - self.shown)
            self.shown = global_step

    def set_eval(self, eval_return: float, step: int) -> None:
        if self.logs:
            seconds = time.perf_counter() - self.started
            log.info("%s: step %d/%d after %.0f s, evaluation return %.3g", self.title, step, self.total_steps, seconds, eval_return)
        if self.bar is not None:
            postfix = {"eval_return": f"{eval_return:.3g}"}
            if self.sweep_eta is not None:
                postfix["sweep_eta"] = f"~{self.sweep_eta / 60:.0f} min"
            self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def terminal_line(sweep_dir: Path, lines: int) -> Iterator[int]:
    """A terminal line of its own for this worker: the first of ``lines`` slots no other worker holds."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    for line in range(max(lines, 1)):
        handle = open(sweep_dir / f".line-{line}", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield line
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        return
    yield 0
