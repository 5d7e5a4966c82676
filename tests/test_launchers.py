"""Sweeps through other Hydra launchers: submitit (the SLURM code path, run locally) and Ray (optional extra)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

from llmrl_bench import results
from tests.conftest import REPO, run_cli

SMOKE_SWEEP = ["agent=ppo", "env=cartpole", "debug=smoke"]


def test_submitit_local_sweep_of_four_runs(tmp_path):
    out = tmp_path / "results"
    proc = run_cli(
        "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1",
        *SMOKE_SWEEP, "seed=0-3", f"results_dir={out}", cwd=tmp_path,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "Submitit 'local' sweep" in proc.stdout + proc.stderr
    loaded, errors = results.load_results(out)
    assert errors == [] and sorted(r.seed for r in loaded) == [0, 1, 2, 3]
    assert len(list(tmp_path.glob("multirun/*/*/.submitit/*/*_result.pkl"))) == 4  # ran as submitit jobs
    assert "4 runs: 4 done, 0 skipped, 0 failed" in proc.stderr  # the outcomes reached the sweep summary


def test_launcher_overrides_are_still_checked_up_front(tmp_path):
    proc = run_cli("-m", "hydra/launcher=submitit_local", "agent=banana", "debug=smoke", f"results_dir={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 2 and "banana" in proc.stderr


def loopback_namespace_unavailable() -> str | None:
    """Why Ray cannot be started safely here, or ``None``."""
    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None or importlib.util.find_spec("ray") is None:
        return "hydra-ray-launcher is not installed (pip install -e '.[ray]')"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip is not available"
    probe = subprocess.run(["unshare", "-n", "--", "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip() or probe.returncode}"
    return None


def test_ray_sweep_inside_a_loopback_only_network_namespace(tmp_path):
    """Ray starts only in ``unshare -n`` (loopback only): its start-up probes cloud metadata addresses."""
    reason = loopback_namespace_unavailable()
    if reason:
        print(f"skipping the Ray launcher test: {reason}")
        pytest.skip(reason)
    home = tmp_path / "home"
    home.mkdir()
    (home / "ray_bootstrap_config.yaml").write_text("{}\n")
    out = tmp_path / "results"
    command = [
        sys.executable, "-m", "llmrl_bench", "-m", "hydra/launcher=ray",
        "++hydra.launcher.ray.init.num_cpus=2", "++hydra.launcher.ray.init.include_dashboard=false",
        *SMOKE_SWEEP, "seed=0-1", f"results_dir={out}",
    ]
    env = {
        **os.environ, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO),
    }
    script = f"ip link set lo up && exec {shlex.join(command)}"
    proc = subprocess.Popen(
        ["unshare", "-n", "--", "bash", "-c", script], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        output = proc.communicate(timeout=300)[0]  # the test's own timeout: it never hangs CI
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the Ray sweep timed out after 300 s: {proc.communicate()[0][-2000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # any Ray daemon left in the group
    assert proc.returncode == 0, output[-4000:]
    loaded, errors = results.load_results(out)
    assert errors == [] and sorted(r.seed for r in loaded) == [0, 1]
