"""Every bad input of a new user's first hour: one line on stderr naming the value, exit 2, nothing written."""

from __future__ import annotations

import os

import pytest

from tests.conftest import run_cli

BAD_INPUTS = [
    # (arguments, what the line must name, what it must offer)
    (["seed=-1"], "seed=-1", "integer >= 0"),
    (["-m", "seed=0-99999999"], "100000000 jobs", "max_jobs"),
    (["torch_threads=0"], "torch_threads=0", ">= 1"),
    (["torch_threads=-3"], "torch_threads=-3", ">= 1"),
    (["env.num_train_layouts=0"], "num_train_layouts=0", None),
    (["env.train_sizes=[4]"], "4", None),
    (["env.train_sizes=[6]"], "6", None),
    (["env.train_sizes=[8]"], "8", None),
    (["results_dir={tmp}/a_file"], "is a file", None),
    (["results_dir={tmp}/a_file/below"], "cannot be made", None),
    (["results_dir={tmp}/a", "b"], "'b' is not key=value", "quotes"),
    (["budget.env_steps=[1"], "budget.env_steps=[1", None),
    (["agent.foo=1"], "agent.foo", "n_steps"),
    (["+agent.foo=1"], "agent.foo", "n_steps"),
    (["results_dir="], "results_dir=''", "results/local"),
    (["agent=dqn,ppo"], "2 jobs", "-m"),
    (["agent._target_=os.system"], "os.system", "llmrl_bench.agents.ppo.PPO"),
    (["logger.kind=nope"], "nope", None),
    (["reward=nope"], "reward 'nope'", "learned_irl"),
    (["reward=learned_irl", "agent=dqn"], "reward=learned_irl supports agent=ppo, llm_pg; got agent=dqn", None),
    (["reward=learned_irl", "reward.mode=bogus"], "bogus", "replace"),
]


@pytest.mark.parametrize("args,named,offered", BAD_INPUTS, ids=[" ".join(a) for a, _, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, named, offered):
    (tmp_path / "a_file").write_text("")
    args = [arg.format(tmp=tmp_path) for arg in args]
    explicit_results = any(arg.startswith("results_dir=") for arg in args)
    results = tmp_path / "results"
    proc = run_cli(*args, *([] if explicit_results else [f"results_dir={results}"]), cwd=tmp_path, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("llmrl-bench: error: ") and named in lines[0], lines[0]
    if offered:
        assert offered in lines[0], lines[0]
    assert sorted(os.listdir(tmp_path)) == ["a_file"]  # no results, no outputs/ or multirun/ folder
