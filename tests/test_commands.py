"""``llmrl-bench list``, ``show``, ``watch`` and ``--help``, on fresh smoke runs and on the committed reference results."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import get_class
from PIL import Image

from llmrl_bench import commands, results
from llmrl_bench.config import group_options
from llmrl_bench.envs.base import EVAL_SEED_OFFSET, TRAIN
from llmrl_bench.metrics import HEADLINE_METRICS
from llmrl_bench.stats import iqm_across_seeds
from tests.conftest import REPO, run_cli

REFERENCE = REPO / "results" / "reference"
SERIAL = {"LLMRL_BENCH_JOBS": "1"}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict[str, Path]:
    """Run dirs of a fresh smoke sweep through the real CLI: ppo on cartpole and on the maze."""
    root = tmp_path_factory.mktemp("commands")
    out = root / "results"
    proc = run_cli("-m", "agent=ppo", "env=cartpole,maze", "debug=smoke", "logger=none", f"results_dir={out}",
                   f"hydra.sweep.dir={root / 'multirun'}", cwd=root, env=SERIAL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded, errors = results.load_results(out)
    assert errors == [] and len(loaded) == 2
    return {"results": out, **{run.env: results.run_dir(out, run.run_id) for run in loaded}}


def _one_line_error(proc, *named: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    for text in named:
        assert text in lines[0]


# ----------------------------------------------------------------- list, --help


def test_list_shows_every_option_and_the_reprs_each_agent_accepts(make_config):
    proc = run_cli("list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for group in ("agent", "env", "repr", "experiment"):
        for option in group_options(group):
            matching = [line for line in lines if line.split()[:1] == [option]]
            assert len(matching) == 1, (group, option)
            if group == "agent":
                accepted = get_class(make_config(f"agent={option}").agent._target_).supported_reprs
                assert f"repr={'|'.join(accepted)}" in matching[0]
            assert len(matching[0].split()) >= 3, f"{option} has no description"
    assert "_schema" not in proc.stdout


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_starts_with_the_suites_usage_and_hides_schemas(flag):
    proc = run_cli(flag)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: llmrl-bench [-m] [key=value ...]")
    for command in ("list", "show PATH", "watch RUN"):
        assert f"llmrl-bench {command}" in proc.stdout
    assert "debug=smoke" in proc.stdout and "examples:" in proc.stdout
    assert "_schema" not in proc.stdout
    assert re.search(r"^agent:\n  _target_: llmrl_bench\.agents\.ppo\.PPO$", proc.stdout, re.M)  # the composed defaults


# ------------------------------------------------------------------------ show


def test_show_one_fresh_run_gives_the_four_metrics_directions_and_paths(fresh):
    run_dir = fresh["cartpole"]
    stored = results.load_result(run_dir / results.RESULT_FILE)
    for target in (run_dir, run_dir / results.RESULT_FILE):
        proc = run_cli("show", str(target))
        assert proc.returncode == 0, proc.stderr
        for name in HEADLINE_METRICS:
            line = next(line for line in proc.stdout.splitlines() if line.split()[:1] == [name])
            value = stored.metrics[name]
            assert line.split()[1] == ("n/a" if value is None else f"{value:.4g}")  # None: undefined (e.g. never learned)
            assert commands.metric_direction(name) in line
        assert "lower is better" in next(line for line in proc.stdout.splitlines() if "policy_stability" in line)
        assert f"result:  {run_dir / results.RESULT_FILE}" in proc.stdout
        assert f"policy:  {run_dir / results.POLICY_FILE}" in proc.stdout
        assert "W&B run: none (logger=none)" in proc.stdout


def test_show_a_fresh_results_folder_gives_one_row_per_cell(fresh):
    proc = run_cli("show", str(fresh["results"]))
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("ppo ")]
    assert sorted(row[1] for row in rows) == ["cartpole", "maze"]
    for row in rows:
        stored = results.load_result(fresh[row[1]] / results.RESULT_FILE)
        assert row[3] == "1"  # seeds
        value = f"{stored.metrics['cumulative_reward']:.3g}"
        assert row[4:7] == [value, f"[{value},", f"{value}]"]  # one seed: the interval collapses


def _run(seed: int, agent: str = "ppo", **metric_values) -> results.RunResult:
    return results.RunResult(run_id=f"{agent}{seed}", agent=agent, env="maze", repr="vector", seed=seed,
                             config={}, metrics=metric_values, curve=[], provenance={})


def test_show_folder_computes_iqm_per_cell_and_reports_undefined_metrics_as_na(monkeypatch, capsys):
    stabilities = [0.5, None, 0.1, 0.3, 0.9]
    runs = [_run(seed, cumulative_reward=float(seed), policy_stability=value) for seed, value in enumerate(stabilities)]
    runs += [_run(seed, agent="dqn", cumulative_reward=1.0) for seed in range(2)]
    monkeypatch.setattr(results, "load_results", lambda folder, include_failed=False: (runs, []))
    commands.show_folder(Path("anywhere"))
    out = capsys.readouterr().out
    ppo = next(line for line in out.splitlines() if line.startswith("ppo "))
    dqn = next(line for line in out.splitlines() if line.startswith("dqn "))
    reward = iqm_across_seeds(np.arange(5.0))
    stability = iqm_across_seeds(np.array([0.5, 0.1, 0.3, 0.9]))
    assert f"{reward.point:.3g} [{reward.low:.3g}, {reward.high:.3g}]" in ppo
    assert f"{stability.point:.3g} [{stability.low:.3g}, {stability.high:.3g}] (4/5)" in ppo
    assert reward.low < reward.point < reward.high
    assert ppo.split().count("n/a") == 2  # learning_speed and generalization are undefined in every run
    assert dqn.split()[3] == "2" and dqn.split().count("n/a") == 3


def test_show_on_the_committed_reference_results():
    loaded, errors = results.load_results(REFERENCE)
    assert loaded and errors == []
    proc = run_cli("show", str(REFERENCE))
    assert proc.returncode == 0, proc.stderr
    cells = {(run.agent, run.env, run.repr) for run in loaded}
    rows = {tuple(line.split()[:3]): line.split() for line in proc.stdout.splitlines() if tuple(line.split()[:3]) in cells}
    assert set(rows) == cells
    dqn = [run for run in loaded if (run.agent, run.env, run.repr) == ("dqn", "cartpole", "vector")]
    estimate = iqm_across_seeds(np.array([run.metrics["generalization"] for run in dqn]))
    assert rows["dqn", "cartpole", "vector"][3] == str(len({run.seed for run in dqn}))
    assert f"{estimate.point:.3g} [{estimate.low:.3g}, {estimate.high:.3g}]" in " ".join(rows["dqn", "cartpole", "vector"])

    logged = next(run for run in loaded if run.provenance.get("wandb_run_dir")  # made with W&B offline elsewhere
                  and not (results.run_dir(REFERENCE, run.run_id) / results.POLICY_FILE).exists())
    one = run_cli("show", str(results.run_dir(REFERENCE, logged.run_id)))
    assert one.returncode == 0, one.stderr
    assert "policy:  none" in one.stdout and "not found here" in one.stdout


@pytest.mark.parametrize("path", ["does/not/exist", "conf"])
def test_show_bad_path_is_one_line_exit_2(path):
    _one_line_error(run_cli("show", path), path)


# ----------------------------------------------------------------------- watch


def test_watch_cartpole_prints_frames_and_writes_a_gif(fresh, tmp_path):
    gif = tmp_path / "episode.gif"
    proc = run_cli("watch", str(fresh["cartpole"]), "--gif", str(gif))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""
    frames = [line for line in proc.stdout.splitlines() if re.match(r"step +\d+ .*\[[./|\\]+\] x=", line)]
    steps = int(re.search(r"^return \S+ in (\d+) steps", proc.stdout, re.M).group(1))
    assert len(frames) == steps + 1 > 1
    with Image.open(gif) as image:
        assert image.size == (600, 400) and image.n_frames > 1


def test_watch_maze_prints_grid_frames(fresh):
    proc = run_cli("watch", str(fresh["maze"]), "--context", "held_out_9x9")
    assert proc.returncode == 0, proc.stderr
    headers = re.findall(r"^step +\d+ ", proc.stdout, re.M)
    steps = int(re.search(r"^return \S+ in (\d+) steps", proc.stdout, re.M).group(1))
    assert len(headers) == steps + 1
    grid = proc.stdout.split("\n\n")[0].splitlines()[2:]
    assert len(grid) == 11 and all(len(row) == 22 for row in grid)  # 9x9 interior plus walls, 2 characters a cell
    assert sum(row.count(arrow) for row in grid for arrow in (">>", "<<", "^^", "VV")) == 1


@pytest.mark.parametrize("env", ["cartpole", "maze"])
def test_replayed_evaluation_episodes_give_the_recorded_final_return(fresh, env):
    """The rebuilt agent with its saved policy replays exactly what the runner's last evaluation measured."""
    stored = results.load_result(fresh[env] / results.RESULT_FILE)
    envs, agent = commands.rebuild(stored, fresh[env] / results.POLICY_FILE)
    returns = []
    for episode in range(stored.config["budget"]["eval_episodes"]):
        game = envs.make(TRAIN)
        returns.append(commands.play_episode(game, agent, envs.representation.is_text, EVAL_SEED_OFFSET + episode, lambda *_: None)[0])
    assert np.mean(returns) == pytest.approx(stored.curve[-1]["train_return"])


def test_watch_a_reference_run_without_policy_is_one_line_exit_2():
    run_dir = next(path.parent for path in results.iter_result_paths(REFERENCE)
                   if not (path.parent / results.POLICY_FILE).exists())  # runs made on this machine keep theirs
    _one_line_error(run_cli("watch", str(run_dir)), "no policy.pt", "run it first with `llmrl-bench agent=")


def _copy_run(fresh, tmp_path, edit=None) -> Path:
    run_dir = tmp_path / "runs" / "copy"
    shutil.copytree(fresh["cartpole"], run_dir)
    if edit is not None:
        record = json.loads((run_dir / results.RESULT_FILE).read_text())
        edit(record)
        (run_dir / results.RESULT_FILE).write_text(json.dumps(record))
    return run_dir


def _foreign_target(record: dict) -> None:
    record["config"]["agent"]["_target_"] = "os.system"


WATCH_ERRORS = {
    "no policy": (lambda run_dir: (run_dir / results.POLICY_FILE).unlink(), [], "no policy.pt"),
    "results folder": (None, [], "a results folder"),
    "unknown context": (None, ["--context", "mars"], "allowed: train, "),
    "gif into a missing folder": (None, ["--gif", "/nonexistent/x.gif"], "not a writable folder"),
    "gif without .gif": (None, ["--gif", "x.png"], "must end in .gif"),
    "negative episode": (None, ["--episode", "-1"], "must be >= 0"),
}


@pytest.mark.parametrize("case", list(WATCH_ERRORS))
def test_watch_bad_input_is_one_line_exit_2(fresh, tmp_path, capsys, case):
    prepare, flags, message = WATCH_ERRORS[case]
    run_dir = _copy_run(fresh, tmp_path)
    if prepare is not None:
        prepare(run_dir)
    target = tmp_path if case == "results folder" else run_dir
    assert commands.main(["watch", str(target), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_watch_refuses_a_target_outside_the_registry(fresh, tmp_path, capsys, monkeypatch):
    run_dir = _copy_run(fresh, tmp_path, edit=_foreign_target)
    monkeypatch.setattr("os.system", lambda *_: pytest.fail("a _target_ from result.json was called"))
    assert commands.main(["watch", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "agent._target_='os.system' is not a registered agent" in err and "llmrl_bench.agents.ppo.PPO" in err


def test_watch_trains_a_committed_reference_run_again_with_train(tmp_path):
    """A reference run ships no policy: --train re-trains it from its stored config (same run_id), then replays it."""
    protocol_runs = [result for result in results.load_results(REPO / "results" / "reference")[0]
                     if result.agent in ("q_learning", "dqn", "reinforce", "ppo") and "modes" in result.curve[-1]]
    reference = min(protocol_runs, key=lambda result: result.provenance["wall_seconds"])  # the quickest to train again
    committed = REPO / "results" / "reference" / "runs" / reference.run_id
    run_dir = tmp_path / "reference" / "runs" / reference.run_id  # as committed: a run made here also holds its policy
    shutil.copytree(committed, run_dir, ignore=shutil.ignore_patterns(results.POLICY_FILE, "checkpoint*", ".lock"))
    refused = run_cli("watch", str(run_dir))
    assert refused.returncode == 2 and "--train" in refused.stderr
    fresh = tmp_path / "fresh"
    proc = run_cli("watch", str(run_dir), "--train", "--results-dir", str(fresh), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no policy stored: training" in proc.stdout and re.search(r"return \S+ in \d+ steps", proc.stdout)
    assert (fresh / "runs" / reference.run_id / results.POLICY_FILE).is_file()
    (retrained,) = results.load_results(fresh)[0]
    assert results.curve_repeats(reference.curve, retrained.curve)  # the same run, bit for bit
