"""The results schema: run ids, atomic writes, strict loading."""

import json

import numpy as np
import pytest

from llmrl_bench import results


def make_result(run_id="0123456789abcdef", **overrides):
    record = dict(
        run_id=run_id, agent="dqn", env="cartpole", repr="vector", seed=0,
        config={"seed": 0},
        metrics={"cumulative_reward": 10.0, "policy_stability": 1.0, "learning_speed": 0.5,
                 "generalization": 8.0, "generalization_gap": 2.0, "steps_to_threshold": None},
        curve=[{"step": 0, "train_return": 1.0, "held_out_return": 1.0, "held_out": {"a": 1.0}},
               {"step": 10, "train_return": 10.0, "held_out_return": 8.0, "held_out": {"a": 8.0}}],
        provenance={"packages": {"torch": "2"}, "wall_seconds": 1.0, "env_steps": 10,
                    "env_steps_per_second": 10.0, "peak_memory_mb": 1.0},
    )
    record.update(overrides)
    return results.RunResult(**record)


def test_run_id_depends_only_on_experiment_fields():
    config = {"agent": {"lr": 1}, "env": {"name": "maze"}, "repr": {}, "budget": {"env_steps": 5}, "seed": 0, "results_dir": "a"}
    same = {**config, "results_dir": "elsewhere", "progress": False}
    other_seed = {**config, "seed": 1}
    assert results.run_id(config) == results.run_id(same)
    assert results.run_id(config) != results.run_id(other_seed)
    assert len(results.run_id(config)) == 16


def test_write_then_load_round_trip(tmp_path):
    path = results.write_result(make_result(), tmp_path)
    assert path == tmp_path / "runs" / "0123456789abcdef" / "result.json"
    loaded = results.load_result(path)
    assert loaded == make_result()
    np.testing.assert_array_equal(loaded.curve_arrays()["train_return"], [1.0, 10.0])
    assert not list(path.parent.glob("*.tmp"))


def test_truncated_file_is_reported_with_path(tmp_path):
    path = results.write_result(make_result(), tmp_path)
    path.write_text(path.read_text()[:50])
    with pytest.raises(results.ResultError, match="not valid JSON") as error:
        results.load_result(path)
    assert str(path) in str(error.value)
    loaded, errors = results.load_results(tmp_path)
    assert loaded == [] and len(errors) == 1
    assert results.completed_result(tmp_path, "0123456789abcdef") is None


def test_schema_violation_is_reported(tmp_path):
    path = results.write_result(make_result(), tmp_path)
    record = json.loads(path.read_text())
    del record["metrics"]["generalization"]
    path.write_text(json.dumps(record))
    with pytest.raises(results.ResultError, match="generalization"):
        results.load_result(path)


def test_invalid_result_is_never_written(tmp_path):
    with pytest.raises(results.ResultError):
        results.write_result(make_result(curve=[]), tmp_path)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("result.json"))


def test_failed_runs_are_left_out_unless_asked(tmp_path):
    results.write_result(make_result(status="failed", error="boom", metrics={}, curve=[]), tmp_path)
    assert results.load_results(tmp_path)[0] == []
    assert len(results.load_results(tmp_path, include_failed=True)[0]) == 1


def test_failing_writer_leaves_old_file(tmp_path, monkeypatch):
    path = results.write_result(make_result(), tmp_path)
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.os, "fsync", disk_full)
    with pytest.raises(OSError):
        results.write_result(make_result(seed=0, metrics={**make_result().metrics, "cumulative_reward": 99.0}), tmp_path)
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".*tmp"))


def test_episodes_round_trip(tmp_path):
    results.write_episodes(tmp_path, "0123456789abcdef", {"step": np.array([5, 9]), "return": np.array([1.0, 2.0])})
    loaded = results.load_episodes(tmp_path, "0123456789abcdef")
    np.testing.assert_array_equal(loaded["step"], [5, 9])


def test_metric_types_come_from_the_registry(tmp_path):
    path = results.write_result(make_result(metrics={**make_result().metrics, "policy_stability": None}), tmp_path)
    assert results.load_result(path).metrics["policy_stability"] is None  # undefined is allowed
    record = json.loads(path.read_text())
    record["metrics"]["dispersion_across_time"] = "0.1"
    path.write_text(json.dumps(record))
    with pytest.raises(results.ResultError, match="dispersion_across_time"):
        results.load_result(path)


def test_recompute_rewrites_stale_metrics_from_the_curve(tmp_path, capsys):
    stale = make_result(env_info={"score_range": [0.0, 10.0], "reward_threshold": 9.0})
    path = results.write_result(stale, tmp_path)
    before = json.loads(path.read_text())
    assert results.main(["recompute", str(tmp_path), "--check"]) == 1
    assert "stale: " in capsys.readouterr().out and json.loads(path.read_text()) == before  # check writes nothing
    assert results.main(["recompute", str(tmp_path)]) == 0
    after = json.loads(path.read_text())
    assert {k: v for k, v in after.items() if k != "metrics"} == {k: v for k, v in before.items() if k != "metrics"}
    assert after["metrics"]["policy_stability"] == 0.0  # rose 1 -> 10 without a drop
    assert after["metrics"]["steps_to_threshold"] == 10.0
    assert results.main(["recompute", str(tmp_path), "--check"]) == 0  # idempotent
    assert results.main(["recompute", str(tmp_path / "nowhere")]) == 2


def test_written_files_respect_the_umask(tmp_path):
    import os
    import stat

    from llmrl_bench.results import atomic_write_bytes

    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


def test_late_added_options_keep_earlier_run_ids_at_their_neutral_value(make_config):
    """DQN's n_step/dueling came after results were recorded: at 1/False the run_id is the one it was."""
    from omegaconf import OmegaConf

    from llmrl_bench.results import run_id

    def identity(*overrides):
        config = OmegaConf.to_container(make_config("agent=dqn", "env=cartpole", *overrides), resolve=True)
        return config, run_id(config)

    config, default_id = identity()
    assert config["agent"]["n_step"] == 1 and config["agent"]["dueling"] is False
    without = {**config, "agent": {k: v for k, v in config["agent"].items() if k not in ("n_step", "dueling")}}
    assert run_id(without) == default_id
    assert identity("agent.n_step=3")[1] != default_id
    assert identity("agent.dueling=true")[1] != default_id


def test_an_infinite_setting_is_stored_as_text_and_keeps_its_run_id():
    from omegaconf import OmegaConf

    from llmrl_bench.runner import experiment_config

    cfg = OmegaConf.create({"agent": {}, "env": {"num_train_layouts": float("inf"), "sizes": [7, float("-inf")]},
                            "repr": {}, "budget": {}, "seed": 0})
    config = experiment_config(cfg)
    assert config["env"] == {"num_train_layouts": "inf", "sizes": [7, "-inf"]}
    stored = json.loads(json.dumps(config))  # what result.json holds
    assert results.run_id(stored) == results.run_id(config)


def test_result_files_name_the_training_split_as_the_suites_do():
    from llmrl_bench.envs.base import TRAIN

    assert results.TRAIN_SPLIT == TRAIN


def test_peak_memory_counts_from_the_runs_start():
    """A sweep worker runs job after job in one process: each run reports its own peak, not the worker's."""
    import subprocess
    import sys
    from pathlib import Path

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("no /proc/self/clear_refs: the OS cannot reset the peak")
    # A fresh process, so that what earlier tests left in this one cannot hide the effect.
    script = (
        "import numpy as np\n"
        "from llmrl_bench.provenance import peak_memory_mb, reset_peak_memory\n"
        "block = np.ones(300 * 2**20 // 8)  # 300 MB, touched\n"
        "worker_peak = peak_memory_mb()\n"
        "del block\n"
        "reset_peak_memory()\n"
        "print(worker_peak, peak_memory_mb())\n"
    )
    worker_peak, run_peak = map(float, subprocess.check_output([sys.executable, "-c", script], text=True).split())
    assert worker_peak > 300
    assert run_peak < worker_peak - 200


def test_provenance_names_the_cpu_and_its_matmul_flags(tmp_path):
    from llmrl_bench.provenance import cpu_description, start_provenance

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Example Xeon\nflags\t\t: fpu avx2 amx_bf16 avx512f sse\n\n"
                       "processor\t: 1\nmodel name\t: Example Xeon\nflags\t\t: fpu avx2 amx_bf16 avx512f sse\n")
    assert cpu_description(cpuinfo) == {"model": "Example Xeon", "flags": ["avx2", "avx512f", "amx_bf16"]}
    assert cpu_description(tmp_path / "missing")["flags"] == []
    assert start_provenance(1)["cpu"] == cpu_description()


def test_a_run_from_another_cpu_is_not_reproduced_bit_for_bit_here():
    from llmrl_bench.leaderboard.verify import same_platform
    from llmrl_bench.provenance import start_provenance

    here = start_provenance(1)
    assert same_platform(here, 1)
    assert same_platform({key: value for key, value in here.items() if key != "cpu"}, 1)  # recorded before the CPU was
    assert not same_platform({**here, "cpu": {"model": "Other CPU", "flags": ["avx2"]}}, 1)
