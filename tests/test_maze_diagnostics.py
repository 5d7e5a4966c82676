"""``experiments/maze_policy_failures.py``: every training layout of a finished run is counted once."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO, run_cli


def test_policy_failures_count_every_training_layout_once(tmp_path):
    out = tmp_path / "results"
    proc = run_cli("agent=q_learning", "env=maze", "seed=0", "debug=smoke", "logger=none", f"results_dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    [run_dir] = (out / "runs").iterdir()
    assert (run_dir / "policy.pt").is_file()

    script = subprocess.run([sys.executable, "experiments/maze_policy_failures.py", "q_learning", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert script.returncode == 0, script.stderr[-2000:]
    [line] = script.stdout.splitlines()
    assert line.startswith(f"{run_dir.name} seed 0: ")
    counts = re.search(r"shortest (\d+), longer (\d+), stuck (\d+), loop (\d+)", line)
    assert counts, line
    # a failed episode of 196 steps among the maze's ~100 (cell, heading) states always repeats one: stuck or loop
    assert sum(int(n) for n in counts.groups()) == 32

    other = subprocess.run([sys.executable, "experiments/maze_policy_failures.py", "dqn", str(out)],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert other.returncode == 0 and other.stdout == ""  # another agent's runs are not replayed
