"""Ctrl-C on a sweep: one line, exit 130, checkpoints written, no worker left behind, and the same command resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from llmrl_bench import results
from tests.conftest import REPO

SWEEP = ["-m", "agent=ppo", "env=cartpole", "seed=0-1", "logger=none", "progress=false", "checkpoint.every_steps=1000",
         "budget.env_steps=60000", "budget.num_evals=2"]


def start_sweep(tmp_path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "LLMRL_BENCH_JOBS": "2", "WANDB_MODE": "offline"}
    return subprocess.Popen(
        [sys.executable, "-m", "llmrl_bench", *SWEEP, f"results_dir={tmp_path / 'results'}", f"hydra.sweep.dir={tmp_path / 'multirun'}", *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def wait_for_checkpoints(results_dir, count: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(results_dir.glob("runs/*/checkpoint.pt"))) >= count:
            return
        time.sleep(0.5)
    raise AssertionError("no checkpoints appeared")


def test_ctrl_c_stops_a_sweep_cleanly_and_the_same_command_resumes(tmp_path):
    proc = start_sweep(tmp_path)
    wait_for_checkpoints(tmp_path / "results", 2)  # both runs are training
    group = os.getpgid(proc.pid)
    os.killpg(group, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("interrupted")]
    assert line.endswith("2 checkpointed; the same command resumes"), line
    time.sleep(1)
    leftovers = [p for p in psutil.process_iter(["pid"]) if _in_group(p, group)]
    assert leftovers == [], leftovers

    again = start_sweep(tmp_path)
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-2000:]
    assert (stdout + stderr).count("resume ppo") == 2
    loaded, errors = results.load_results(tmp_path / "results")
    assert errors == [] and len(loaded) == 2
    assert not list((tmp_path / "results").glob("runs/*/checkpoint.pt"))


def _in_group(process: psutil.Process, group: int) -> bool:
    try:  # a zombie has exited and holds nothing; only its (gone) parent could reap it
        return os.getpgid(process.pid) == group and process.status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.Error):
        return False
