"""The real command line: sweeps, seed ranges, bad input, W&B offline runs, determinism."""

import json
import subprocess
import sys

import pytest

from llmrl_bench import results
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from llmrl_bench.cli import count_jobs, parse_overrides, sweep_jobs, translate_seed_ranges
from llmrl_bench.config import CONFIG_DIR
from llmrl_bench.errors import ConfigError
from llmrl_bench.runner import run
from tests.conftest import run_cli


def test_seed_range_translation():
    assert translate_seed_ranges(["seed=0-9"]) == ["seed=range(0,10)"]
    assert translate_seed_ranges(["seed=3-3", "agent=dqn"]) == ["seed=range(3,4)", "agent=dqn"]
    assert translate_seed_ranges(["seed=1,3,5"]) == ["seed=1,3,5"]
    assert translate_seed_ranges(["seed=range(0,10)"]) == ["seed=range(0,10)"]
    with pytest.raises(ConfigError, match="9-0"):
        translate_seed_ranges(["seed=9-0"])
    with pytest.raises(ConfigError, match="a-b"):
        translate_seed_ranges(["seed=a-b"])


def expand(*overrides: str) -> list[list[str]]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return sweep_jobs(translate_seed_ranges(overrides), multirun=True)


def test_sweep_expansion_counts_jobs():
    jobs = expand("agent=dqn,llm_pg", "seed=0-9")
    assert len(jobs) == 20
    assert jobs[0] == ["agent=dqn", "seed=0"] and jobs[-1] == ["agent=llm_pg", "seed=9"]
    assert len(expand("seed=1,3,5")) == 3


def test_experiment_sweeps_are_expanded_as_hydra_does():
    """An experiment's hydra.sweeper.params count: maze_classic is 4 agents x 3 seeds; the command line wins per key."""
    assert len(expand("experiment=maze_classic")) == 12
    assert len(expand("experiment=maze_classic", "seed=0")) == 4


def test_jobs_are_counted_without_expanding():
    assert count_jobs(parse_overrides(translate_seed_ranges(["seed=0-99999999", "agent=dqn,ppo"]))) == 200_000_000


BAD_INPUTS = [
    (["agent=banana"], "banana", "dqn"),
    (["env=nowhere"], "nowhere", "cartpole"),
    (["not_a_key=1"], "not_a_key", None),
    (["agent=dqn", "agent.not_a_key=1"], "not_a_key", None),
    (["-m", "seed=9-0"], "9-0", None),
    (["-m", "seed=a-b"], "a-b", None),
    (["budget.env_steps=0"], "env_steps=0", None),
    (["budget.env_steps=-5"], "env_steps=-5", None),
    (["agent=q_learning", "repr=text"], "text", "vector"),
    (["budget.env_steps=lots"], "lots", None),
]


@pytest.mark.parametrize("args,named,allowed", BAD_INPUTS, ids=[" ".join(a) for a, _, _ in BAD_INPUTS])
def test_bad_input_is_one_line_nonzero_and_writes_nothing(tmp_path, args, named, allowed):
    out = tmp_path / "results"
    proc = run_cli(*args, "debug=smoke", f"results_dir={out}", cwd=tmp_path)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert named in lines[0]
    if allowed:
        assert allowed in lines[0]
    assert not out.exists()


def test_smoke_sweep_through_the_cli(tmp_path):
    out = tmp_path / "results"
    proc = run_cli("-m", "agent=dqn,ppo", "env=cartpole", "seed=0-1", "debug=smoke", f"results_dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded, errors = results.load_results(out)
    assert errors == []
    assert sorted((r.agent, r.seed) for r in loaded) == [("dqn", 0), ("dqn", 1), ("ppo", 0), ("ppo", 1)]
    for result in loaded:
        assert {"cumulative_reward", "policy_stability", "learning_speed", "generalization"} <= set(result.metrics)
        assert len(result.curve) == 3
        assert (results.run_dir(out, result.run_id) / results.POLICY_FILE).exists()
    # re-running the same sweep skips every finished run
    again = run_cli("-m", "agent=dqn,ppo", "env=cartpole", "seed=0-1", "debug=smoke", f"results_dir={out}", cwd=tmp_path)
    assert again.returncode == 0
    assert (again.stdout + again.stderr).count("skip ") == 4


def test_same_config_and_seed_give_identical_numbers(make_config, tmp_path):
    for agent, env in [("dqn", "cartpole"), ("ppo", "maze"), ("q_learning", "maze"), ("reinforce", "cartpole")]:
        records = []
        for attempt in range(2):
            cfg = make_config(f"agent={agent}", f"env={env}", "debug=smoke", "budget.env_steps=1500", f"results_dir={tmp_path / str(attempt)}")
            run(cfg)
            loaded, _ = results.load_results(tmp_path / str(attempt))
            records.append([r for r in loaded if r.agent == agent and r.env == env][0])
        assert records[0].run_id == records[1].run_id
        assert records[0].metrics == records[1].metrics, agent
        assert records[0].curve == records[1].curve, agent


def test_wandb_offline_run_holds_the_four_metrics(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_config("agent=ppo", "env=cartpole", "debug=smoke", "logger.kind=wandb", f"results_dir={tmp_path}")
    run(cfg)
    (result,) = results.load_results(tmp_path)[0]
    run_dir = result.provenance["wandb_run_dir"]
    assert run_dir and run_dir.startswith(str(tmp_path))
    wandb_cli = [sys.executable, "-c", "from wandb.cli.cli import cli; cli()"]
    proc = subprocess.run([*wandb_cli, "leet", "inspect", "--summary", "--json", run_dir], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)["summary"]
    for metric in ("cumulative_reward", "policy_stability", "learning_speed", "generalization"):
        if result.metrics[metric] is None:  # undefined (a smoke run never learns): not logged
            assert metric not in summary, metric
        else:
            assert summary[metric] == pytest.approx(result.metrics[metric]), metric


def test_failing_wandb_never_loses_results(make_config, tmp_path, monkeypatch):
    import wandb

    def broken_init(*args, **kwargs):
        raise RuntimeError("wandb is down")

    monkeypatch.setattr(wandb, "init", broken_init)
    cfg = make_config("agent=ppo", "env=cartpole", "debug=smoke", "logger.kind=wandb", f"results_dir={tmp_path}")
    run(cfg)
    (result,) = results.load_results(tmp_path)[0]
    assert result.provenance["wandb_run_dir"] is None


def test_torch_threads_is_part_of_the_identity_when_it_changes_results(make_config, tmp_path):
    """torch_threads=1 and =2 either give identical numbers or two different run_ids (never one id, two results)."""
    records = []
    for threads in (1, 2):
        cfg = make_config("agent=ppo", "env=cartpole", "debug=smoke", "budget.env_steps=3000", f"torch_threads={threads}",
                          f"results_dir={tmp_path}")
        run(cfg)
    loaded, errors = results.load_results(tmp_path)
    assert errors == [] and len(loaded) == 2
    first, second = loaded
    assert first.run_id != second.run_id or (first.metrics == second.metrics and first.curve == second.curve)
    assert {r.provenance["torch_threads"] for r in loaded} == {1, 2}


def test_progress_logs_one_line_per_evaluation_off_a_terminal(caplog):
    """Under nohup or a cluster job there is no bar: each evaluation logs step, budget and return."""
    import logging

    from llmrl_bench.progress import RunProgress, SweepPosition

    assert not sys.stderr.isatty()  # pytest captures stderr
    with caplog.at_level(logging.INFO, logger="llmrl_bench.progress"):
        RunProgress("ppo/vector/maze/seed=0", 1000, position=SweepPosition(2, 5)).set_eval(0.25, 500)
        RunProgress("quiet", 1000, enabled=False).set_eval(0.5, 500)
    assert [record.getMessage().split(" after ")[0] for record in caplog.records] == ["job 2/5 ppo/vector/maze/seed=0: step 500/1000"]
    assert caplog.records[0].getMessage().endswith("evaluation return 0.25")
