"""Fault injection: crashes, diverged losses and failing writers never leave half-written results."""

import errno

import pytest

from llmrl_bench import results, runner
from llmrl_bench.errors import RunFailed
from llmrl_bench.hooks import check_finite
from llmrl_bench.runner import run
import tests.fault_agents  # noqa: F401  (registers CrashingPPO in this process)
from tests.conftest import run_cli


def test_crash_in_one_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    out = tmp_path / "results"
    proc = run_cli(
        "-m", "agent=ppo", "agent._target_=tests.fault_agents.CrashingPPO", "env=cartpole", "seed=0,1",
        "debug=smoke", "budget.env_steps=2048", f"results_dir={out}", env={"LLMRL_BENCH_PLUGINS": "tests.fault_agents"},
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "1 done, 0 skipped, 1 failed" in proc.stderr
    assert "injected crash" in proc.stderr
    completed, errors = results.load_results(out)
    assert errors == [] and [r.seed for r in completed] == [0]
    everything, _ = results.load_results(out, include_failed=True)
    (failed,) = [r for r in everything if r.status == "failed"]
    assert failed.seed == 1 and "injected crash" in failed.error
    assert len(failed.curve) >= 1  # the evaluations made before the crash are kept


def test_failed_run_is_rerun_next_time(make_config, tmp_path):
    cfg = make_config("agent=ppo", "agent._target_=tests.fault_agents.CrashingPPO", "env=cartpole", "seed=1", "debug=smoke", f"results_dir={tmp_path}")
    with pytest.raises(RunFailed):
        run(cfg)
    cfg = make_config("agent=ppo", "env=cartpole", "seed=1", "debug=smoke", f"results_dir={tmp_path}")
    status, metrics = runner.run_with_status(cfg)
    assert status == "done" and metrics["cumulative_reward"] > 0


def test_nan_loss_fails_the_run():
    with pytest.raises(FloatingPointError, match="losses/td_loss"):
        check_finite({"losses/td_loss": float("nan"), "charts/sps": 3.0}, step=7)
    check_finite({"losses/td_loss": 0.5, "charts/x": float("nan")}, step=7)


def test_disk_full_writer_leaves_no_result(make_config, tmp_path, monkeypatch):
    real_write = results.atomic_write_bytes

    def disk_full(path, data):
        if path.name == results.RESULT_FILE and b'"completed"' in data:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(results, "atomic_write_bytes", disk_full)
    cfg = make_config("agent=ppo", "env=cartpole", "debug=smoke", f"results_dir={tmp_path}")
    with pytest.raises(RunFailed, match="No space left"):
        run(cfg)
    assert results.load_results(tmp_path)[0] == []
    (failed,) = results.load_results(tmp_path, include_failed=True)[0]
    assert failed.status == "failed" and "No space left" in failed.error
    assert not list(tmp_path.rglob("*.tmp"))


def test_held_lock_skips_the_run(make_config, tmp_path):
    cfg = make_config("agent=ppo", "env=cartpole", "debug=smoke", f"results_dir={tmp_path}")
    run_id = results.run_id(runner.experiment_config(cfg))
    with runner.run_lock(tmp_path, run_id) as locked:
        assert locked
        assert runner.run_with_status(cfg) == ("skipped", None)
    assert runner.run_with_status(cfg)[0] == "done"
