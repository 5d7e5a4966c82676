"""One lock per run_id, so that two sweeps sharing a results dir never run the same run at once."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from llmrl_bench import results


@contextmanager
def run_lock(results_dir: Path, run_id: str) -> Iterator[bool]:
    """An exclusive, non-blocking lock on one run_id; yields whether this process holds it.

    The OS drops the lock when the process dies, so a killed sweep leaves nothing to clean up.
    """
    path = results.run_dir(results_dir, run_id) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
