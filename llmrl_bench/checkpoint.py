"""Checkpoint a run mid-training, resume it, and stop it cleanly on pre-emption signals.

``<results_dir>/runs/<run_id>/checkpoint.pt`` (``torch.save`` with ``cloudpickle``, so
lambdas inside vector envs pickle) holds::

    {"format": 1, "run_id": ..., "global_step": N,
     "agent": agent.state_dict(),      # networks, optimizer, replay buffer, agent RNGs, loop state, training envs
     "runner": RunnerHooks.state_dict(),  # curve and episodes so far, evaluation cursor
     "rng": {"python": ..., "numpy": ..., "torch": ...}}  # the global RNG states

It is written atomically every ``checkpoint.every_steps`` env steps and when a
pre-emption signal arrives (SIGTERM, SIGUSR1, SIGUSR2), at the agent's next
``hooks.checkpoint_point``, and deleted once the run's ``result.json`` is written.
Only agents with ``resumable = True`` (dqn, ppo) checkpoint; the others keep the
default signal behaviour and restart from step 0.

Signals follow submitit's protocol: the handler only notes the signal; once the
checkpoint is written, the handler that was installed before ours (submitit's, which
requeues the SLURM job and exits) is called, and otherwise the process exits with
status ``128 + signum`` so that the scheduler or the user re-runs the same command.
"""

from __future__ import annotations

import io
import logging
import random
import signal
import threading
from pathlib import Path
from typing import Any, Callable

import cloudpickle
import numpy as np
import torch

from llmrl_bench.results import atomic_write_bytes

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT_VERSION = 1
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


class Preempted(SystemExit):
    """A run stopped by a pre-emption signal after writing its checkpoint.

    A ``SystemExit`` so that no ``except Exception`` (the runner's failure record,
    Hydra's job wrapper) turns it into a failed run: the process exits ``128 + signum``.
    """


def rng_state() -> dict[str, Any]:
    """The global RNG states of python, numpy and torch."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a reader sees the previous checkpoint or this one."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT_VERSION, **state}, buffer, pickle_module=cloudpickle)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, run_id: str) -> dict[str, Any] | None:
    """The checkpoint of ``run_id`` at ``path``, or ``None`` (absent, unreadable or another run's)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, weights_only=False)  # our own file: it holds pickled envs
    except Exception as error:  # noqa: BLE001 - a bad checkpoint costs a restart, never the run
        log.warning("ignoring unreadable checkpoint %s: %s: %s", path, type(error).__name__, error)
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION or state.get("run_id") != run_id:
        log.warning("ignoring checkpoint %s: not a format-%d checkpoint of run %s", path, FORMAT_VERSION, run_id)
        return None
    return state


class PreemptionSignals:
    """Handlers for SIGTERM/SIGUSR1/SIGUSR2 that only note the signal; the run acts at a safe point."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> bool:
        """Install the handlers; ``False`` off the main thread, where Python allows none."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for signum in PREEMPTION_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._note)
        return True

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _note(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def stop(self) -> None:
        """Act on the noted signal, once the checkpoint is safe: hand it on, then exit."""
        signum = self.signum
        assert signum is not None
        previous = self._previous.get(signum)
        self.restore()
        if callable(previous):
            previous(signum, None)  # submitit: USR2 checkpoints the job, requeues it and exits; TERM is only logged
        raise Preempted(128 + signum)


class Checkpointer:
    """Decides at each checkpoint point whether to save, and stops the run after a signal."""

    def __init__(self, path: Path, every_steps: int, signals: PreemptionSignals, state: Callable[[int], dict[str, Any]], title: str, start_step: int = 0):
        self.path = path
        self.every_steps = every_steps
        self.signals = signals
        self.state = state
        self.title = title
        self.last_saved = start_step

    def point(self, global_step: int) -> None:
        """A safe point: save when ``every_steps`` have passed or a signal is pending."""
        if self.signals.signum is None and global_step - self.last_saved < self.every_steps:
            return
        save_checkpoint(self.path, self.state(global_step))
        self.last_saved = global_step
        if self.signals.requested:
            name = signal.Signals(self.signals.signum).name
            log.info("checkpoint %s at step %d (%s): stopping; re-run the same command to resume", self.title, global_step, name)
            self.signals.stop()
        log.debug("checkpoint %s at step %d -> %s", self.title, global_step, self.path)
