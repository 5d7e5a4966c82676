"""The paper build (``paper/``) on a small results set made by the real runner.

The runs are made once per module (``debug=smoke``: 12 runs, about 30 s on 2 cores); the
build itself is checked for every output file, non-empty figures, its strictness about
bad results folders, and byte-identical rebuilds. Selection and reproduction rules are
checked on hand-built records. Builds here use few bootstrap resamples (``RESAMPLES``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from llmrl_bench import stats
from llmrl_bench.metrics import HEADLINE_METRICS
from llmrl_bench.results import RunResult, options_off_default
from paper import build as paper_build
from paper import figures, formatting, reproductions, select, tables
from paper.checks import BuildError
from tests.conftest import REPO, run_cli

RESAMPLES = 200

ENVS = ("cartpole", "maze")
FIGURES = (
    *(f"learning_curves_{env}" for env in ENVS),
    *(f"aggregate_{metric}" for metric in HEADLINE_METRICS),
    "performance_profiles",
    "probability_of_improvement",
    "generalization",
    "return_vs_llm_compute",
    "equal_budget_maze",  # the maze runs made here record the protocol's modes and ceilings
    "compute_maze",
)
TABLES = ("metrics", "reliability", "aggregates", "runtime", "protocol", "reproduce_rlzoo_cartpole",
          "reproduce_rlzoo_minigrid", "equal_budget_maze", "compute_maze")
BROKEN = Path("runs") / "broken" / "result.json"


@pytest.fixture(scope="module")
def clean_results(tmp_path_factory) -> Path:
    """Real smoke runs of DQN and PPO on CartPole and the mazes, 3 seeds."""
    root = tmp_path_factory.mktemp("paper_results")
    made = run_cli(
        "-m", "agent=dqn,ppo", "env=cartpole,maze", "seed=0-2", "debug=smoke",
        f"results_dir={root / 'results'}", f"hydra.sweep.dir={root / 'multirun'}",
    )
    assert made.returncode == 0, made.stderr[-3000:]
    return root / "results"


@pytest.fixture(scope="module")
def results_dir(clean_results, tmp_path_factory) -> Path:
    """The smoke runs plus one truncated result file."""
    root = tmp_path_factory.mktemp("paper_results_broken") / "results"
    shutil.copytree(clean_results, root)
    broken = root / BROKEN
    broken.parent.mkdir(parents=True)
    broken.write_text('{"run_id": "trunc')
    return root


@pytest.fixture(scope="module")
def built(results_dir, tmp_path_factory):
    """One in-process build that leaves the truncated file out: (out dir, report, logged lines)."""
    out = tmp_path_factory.mktemp("paper_out")
    lines: list[str] = []
    report = paper_build.build(results_dir, out, RESAMPLES, log=lines.append, allow_invalid=True)
    return out, report, lines


def test_build_writes_every_figure_and_table(built):
    out, report, _ = built
    expected = {out / "figures" / f"{name}.{fmt}" for name in FIGURES for fmt in ("png", "pdf")}
    expected |= {out / "tables" / f"{name}.{fmt}" for name in TABLES for fmt in ("md", "tex")}
    expected |= {out / "README.md", out / "main.tex"}
    assert {path for path in expected if not path.is_file() or path.stat().st_size == 0} == set()
    assert set(report.files) == expected
    readme, main_tex = (out / "README.md").read_text(), (out / "main.tex").read_text()
    for name in FIGURES:
        assert f"(figures/{name}.png)" in readme
        assert f"figures/{name}.pdf" in main_tex
    for name in TABLES:
        assert (out / "tables" / f"{name}.md").read_text() in readme
        assert rf"\input{{tables/{name}.tex}}" in main_tex


def test_no_figure_is_empty(built):
    out, _, _ = built
    for name in FIGURES:
        image = imread(out / "figures" / f"{name}.png")
        height, width = image.shape[:2]
        assert height >= 200 and width >= 300, name
        pixels = image[..., :3].reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 10, f"{name} is (nearly) a single colour"
        assert np.mean(np.any(pixels < 0.9, axis=1)) > 0.005, f"{name} has almost nothing drawn"
        assert (out / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def test_tables_report_every_cell_with_cis(built):
    out, report, _ = built
    assert [(c.env, c.agent, c.repr, len(c.runs)) for c in report.cells] == [
        (env, agent, "vector", 3) for env in ENVS for agent in ("dqn", "ppo")
    ]
    metrics = (out / "tables" / "metrics.md").read_text()
    for env in ENVS:
        for agent in ("dqn", "ppo"):
            assert f"| {env} | {agent} | vector | 3 | 512 |" in metrics
    rows = [line.split(" | ")[5:] for line in metrics.splitlines() if line.startswith("| ") and "vector" in line]
    assert len(rows) == 4
    for cells in rows:  # a CI per metric, or n/a saying why (smoke runs are too short to learn)
        assert all("[" in cell or cell.startswith("n/a (3 of 3 never learned)") for cell in cells), cells
    assert report.tasks == list(ENVS) and report.algorithms == ["dqn/vector", "ppo/vector"]
    assert r"\toprule" in (out / "tables" / "metrics.tex").read_text()


def test_invalid_result_file_is_left_out_and_listed_when_allowed(built):
    out, report, lines = built
    assert report.num_results == 12
    assert any(line.startswith(f"left out: invalid result file: {BROKEN}: not valid JSON") for line in lines)
    assert f"- invalid result file: {BROKEN}: not valid JSON" in (out / "README.md").read_text()
    runtime_total = (out / "tables" / "runtime.md").read_text().splitlines()[-1]
    assert runtime_total.startswith("| all |  |  | 12 |")


def test_reproduction_rows_without_matching_runs_say_not_run(built):
    out, _, _ = built
    published = {table.name: table for table in reproductions.load_published().tables}
    for name in ("reproduce_rlzoo_cartpole", "reproduce_rlzoo_minigrid"):
        table = (out / "tables" / f"{name}.md").read_text()
        assert table.count("| not run |") == len(published[name].rows), table
        assert "not run" in (out / "tables" / f"{name}.tex").read_text()


def test_llm_compute_figure_says_no_llm_runs(built):
    fig = figures.compute_figure(built[1].cells, n_resamples=10)
    assert any("no LLM runs in results/" in text.get_text() for text in fig.axes[0].texts)


def test_rebuild_through_the_cli_is_byte_identical(built, results_dir, tmp_path):
    out, _, _ = built
    rebuilt = tmp_path / "paper"
    done = subprocess.run(
        [sys.executable, "-m", "paper.build", "--results", str(results_dir), "--out", str(rebuilt),
         "--allow-invalid", "--resamples", str(RESAMPLES)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "left out: invalid result file" in done.stderr
    first = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    second = sorted(p.relative_to(rebuilt) for p in rebuilt.rglob("*") if p.is_file())
    assert first == second
    differing = [str(p) for p in first if (out / p).read_bytes() != (rebuilt / p).read_bytes()]
    assert differing == []  # tables and documents, and PNG and PDF figures too


def test_build_is_fast(built):
    assert built[1].seconds < 60


def _doctor(clean_results: Path, root: Path) -> tuple[Path, list[str]]:
    """A copy of the smoke results with a corrupted file, an edited metric and a copied run folder."""
    results = root / "results"
    shutil.copytree(clean_results, results)
    corrupted, edited, copied = sorted((results / "runs").iterdir())[:3]
    (corrupted / "result.json").write_text((corrupted / "result.json").read_text()[:100])
    record = json.loads((edited / "result.json").read_text())
    record["metrics"]["cumulative_reward"] += 8.0
    (edited / "result.json").write_text(json.dumps(record))
    shutil.copytree(copied, results / "runs" / "copy_of_a_run")
    return results, [f"invalid result file: runs/{corrupted.name}/result.json: not valid JSON",
                      f"metrics disagree with the curve: runs/{edited.name}/result.json: cumulative_reward: stored",
                      f"duplicate run: runs/{copied.name}, runs/copy_of_a_run hold the same run (same config and seed)"]


def test_build_refuses_a_doctored_results_folder(clean_results, tmp_path):
    results, expected = _doctor(clean_results, tmp_path)
    out = tmp_path / "paper"
    done = subprocess.run([sys.executable, "-m", "paper.build", "--results", str(results), "--out", str(out),
                           "--resamples", str(RESAMPLES)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    problems = done.stderr.splitlines()[:-1]  # the last line says what to do
    assert len(problems) == 3 and all(line.startswith(start) for line, start in zip(problems, expected)), done.stderr
    assert not out.exists()  # nothing written
    with pytest.raises(BuildError) as error:
        paper_build.build(results, out, RESAMPLES, log=lambda line: None)
    assert len(error.value.problems) == 3


def test_allow_invalid_leaves_the_named_runs_out(clean_results, tmp_path):
    results, expected = _doctor(clean_results, tmp_path)
    lines: list[str] = []
    report = paper_build.build(results, tmp_path / "paper", RESAMPLES, log=lines.append, allow_invalid=True)
    assert [line for line in lines if line.startswith("left out: ")][:3] == [line for line in lines][:3]
    assert all(line.removeprefix("left out: ").startswith(start) for line, start in zip(lines, expected))
    assert sum(len(cell.runs) for cell in report.cells) == 10  # 12 runs, one corrupted, one edited; no copy
    readme = (tmp_path / "paper" / "README.md").read_text()
    assert readme.count("\n- duplicate run: ") == 1 and "problems left out: 3" in readme


# ----------------------------------------------------------------- hand-built records


def record(agent="ppo", env="cartpole", seed=0, value=500.0, env_steps=100_000, sweep="default", lr=1e-3):
    """A minimal completed run: one cumulative reward, a two-point curve."""
    config = {
        "agent": {"_target_": agent, "learning_rate": lr},
        "env": {"name": env},
        "repr": {"name": "vector"},
        "budget": {"env_steps": env_steps, "num_evals": 1, "eval_episodes": 10, "held_out_episodes": 10},
        "seed": seed,
    }
    metrics = {name: value for name in HEADLINE_METRICS} | {
        f"{name}_normalized": value / 500 for name in ("cumulative_reward", "policy_stability", "generalization")
    }
    curve = [{"step": s, "train_return": value, "held_out_return": value, "held_out": {}} for s in (0, env_steps)]
    return RunResult(
        run_id=f"{agent}-{env}-{env_steps}-{lr}-{seed}", agent=agent, env=env, repr="vector", seed=seed,
        config=config, metrics=metrics, curve=curve, sweep=sweep,
        provenance={"wall_seconds": 1.0, "env_steps": env_steps, "env_steps_per_second": 1.0, "peak_memory_mb": 1.0},
        env_info={"score_range": [0.0, 500.0]},
    )


def test_reproduction_matches_agent_env_and_budget_not_sweep():
    table = reproductions.PublishedTable(
        "reproduce_rlzoo_cartpole", "CartPole",
        (reproductions.PublishedRow("ppo", "cartpole", "CartPole-v1", 100_000, 500.0, 0.0, 300, 5.0),
         reproductions.PublishedRow("dqn", "cartpole", "CartPole-v1", 50_000, 500.0, 0.0, 300, 0.0)),
    )
    values = [500.0, 480.0, 10.0, 500.0, 495.0]
    runs = [record(seed=s, value=v, sweep="cartpole_classic") for s, v in enumerate(values)]
    runs += [record(seed=s, value=1.0, env_steps=5_000) for s in range(8)]  # another budget: never matches
    runs += [record(agent="dqn", seed=0, env_steps=100_000)]  # dqn at the wrong budget
    ppo, dqn = reproductions.reproduce(runs, table, n_resamples=200)
    assert ppo.seeds == (0, 1, 2, 3, 4) and ppo.sweeps == ("cartpole_classic",)
    assert ppo.estimate.point == pytest.approx(stats.iqm(np.array(values)[:, None]))
    assert ppo.mean == pytest.approx(np.mean(values)) and ppo.reached == 3  # 500, 500, 495 >= 500 - 5
    assert dqn.estimate is None and dqn.seeds == () and dqn.reached == 0
    rendered = tables.reproduction_table(table, [ppo, dqn], {"name": "Zoo", "url": "u"}).markdown()
    assert "| 3 of 5 (≥ 495.0) |" in rendered and "| 397.0 |" in rendered and "| 300 |" in rendered


def test_reproduction_prefers_the_tables_own_sweep():
    row = reproductions.PublishedRow("ppo", "cartpole", "CartPole-v1", 100_000, 500.0, 0.0, 300, 0.0)
    runs = [record(seed=s, lr=1e-3, sweep="other") for s in range(10)]
    runs += [record(seed=s, lr=3e-4, sweep="reproduce_rlzoo_cartpole") for s in range(3)]
    chosen = reproductions.matching_runs(runs, row, "reproduce_rlzoo_cartpole")
    assert [r.config["agent"]["learning_rate"] for r in chosen] == [3e-4] * 3


def test_reproduction_rows_match_only_runs_holding_their_hyperparameters():
    rlzoo = reproductions.PublishedRow("ppo", "cartpole", "CartPole-v1", 100_000, 500.0, 0.0, 300, 0.0,
                                       agent_config={"learning_rate": 1e-3})
    tuned = reproductions.PublishedRow("ppo", "cartpole", "CartPole-v1", 100_000, 500.0, 0.0, 300, 0.0,
                                       settings="tuned here", agent_config={"learning_rate": 3e-4})
    runs = [record(seed=s, lr=1e-3) for s in range(4)] + [record(seed=s, lr=3e-4) for s in range(6)]
    assert [r.seed for r in reproductions.matching_runs(runs, rlzoo, "t")] == [0, 1, 2, 3]
    assert {r.config["agent"]["learning_rate"] for r in reproductions.matching_runs(runs, tuned, "t")} == {3e-4}
    missing = reproductions.PublishedRow("ppo", "cartpole", "CartPole-v1", 100_000, 500.0, 0.0, 300, 0.0,
                                         agent_config={"n_epochs": 20})  # a key the runs do not hold
    assert reproductions.matching_runs(runs, missing, "t") == []


def test_select_cells_keeps_the_configuration_with_most_seeds():
    runs = [record(seed=s, env_steps=100_000) for s in range(5)] + [record(seed=s, env_steps=512) for s in range(3)]
    selection = select.select_cells(runs)
    (cell,) = selection.cells
    assert cell.seeds == [0, 1, 2, 3, 4] and cell.budget["env_steps"] == 100_000
    assert len(selection.notes) == 1 and "3 run(s) of another configuration (512 env steps" in selection.notes[0]


def test_a_variant_with_as_many_seeds_does_not_displace_the_envs_default_options():
    maze = {"_target_": "llmrl_bench.envs.maze.MazeSuite", "name": "maze", "num_train_layouts": 32, "reward": "default"}
    default = [record(env="maze", seed=s) for s in range(3)]
    variant = [record(env="maze", seed=s, value=1.0) for s in range(3)]  # sorts after the default by its key
    for run in default:
        run.config["env"] = dict(maze)
    for run in variant:
        run.config["env"] = {**maze, "reward": "step_penalty"}
    assert [options_off_default(run.config["env"]) for run in (variant[0], default[0])] == [1, 0]
    selection = select.select_cells(variant + default)
    (cell,) = selection.cells
    assert cell.runs == tuple(default)
    assert "3 run(s) of another configuration" in selection.notes[0]


def test_runs_that_differ_only_in_an_identity_neutral_option_are_one_configuration():
    maze = {"_target_": "llmrl_bench.envs.maze.MazeSuite", "name": "maze", "num_train_layouts": 32}
    older, newer = record(env="maze", seed=0), record(env="maze", seed=1)
    older.config["env"] = dict(maze)  # recorded before env.view existed
    newer.config["env"] = {**maze, "view": "egocentric"}  # the option at its neutral value: the same run_id
    assert reproductions.configuration_key(older) == reproductions.configuration_key(newer)
    newer.config["env"]["view"] = "full"
    assert reproductions.configuration_key(older) != reproductions.configuration_key(newer)
    newer.config["env"]["view"] = "egocentric"
    selection = select.select_cells([older, newer])
    (cell,) = selection.cells
    assert cell.seeds == [0, 1] and selection.notes == []


def test_comparison_tasks_keep_the_most_algorithm_env_cells():
    runs = [record(agent=a, env=e) for a in ("a", "b") for e in ("x", "y")] + [record(agent="c", env="x")]
    cells = select.select_cells(runs).cells
    assert select.comparison_tasks(cells) == (["x", "y"], ["a/vector", "b/vector"])
    matrix = select.score_matrices(cells, ["x", "y"], ["a/vector"], "cumulative_reward_normalized")
    assert matrix.scores["a/vector"].shape == (1, 2) and matrix.runs == {"a/vector": 1}


def test_number_formats():
    assert formatting.fmt(500.0) == "500.0"
    assert formatting.fmt(0.9641) == "0.964"
    assert formatting.fmt(None) == "–"
    assert formatting.fmt_estimate(stats.IntervalEstimate(10.5, 9.0, 13.0)) == "10.50 [9.00, 13.00]"
    assert formatting.fmt_seeds([0, 1, 2, 3]) == "0–3 (4)"
    assert formatting.latex_escape("a_b ± 1") == r"a\_b $\pm$ 1"


def test_never_learned_cells_say_so_instead_of_ranking_first():
    flat = [record(seed=s, value=0.0) for s in range(3)]
    for run in flat:
        run.metrics["policy_stability"] = None
    (cell,) = select.select_cells(flat).cells
    assert tables.estimate_text(cell, "policy_stability", RESAMPLES) == "n/a (3 of 3 never learned)"
    assert tables.never_learned(cell) == 3
    matrix = select.score_matrices([cell], ["cartpole"], ["ppo/vector"], "policy_stability")
    assert matrix.left_out == ("ppo/vector",) and matrix.defined == {"ppo/vector": (0, 3)}


def test_aggregate_panels_identical_by_construction_are_dropped():
    assert figures.distinct_aggregates("cumulative_reward", 1, {"a": 3, "b": 10}) == ["iqm", "mean", "optimality_gap"]
    assert figures.distinct_aggregates("cumulative_reward", 1, {"a": 3, "b": 2}) == ["iqm", "optimality_gap"]
    assert figures.distinct_aggregates("policy_stability", 2, {"a": 5}) == ["iqm", "mean", "median"]


def test_protocol_marks_runs_made_from_a_dirty_tree():
    runs = [record(seed=s) for s in range(3)]
    runs[0].provenance["git_commit"] = "abcdef0123+dirty"
    runs[1].provenance["git_commit"] = runs[2].provenance["git_commit"] = "1234567890"
    (cell,) = select.select_cells(runs).cells
    assert tables.code_version(cell) == "1234567, abcdef0 (dirty)"
    assert "abcdef0 (dirty)" in tables.protocol_table([cell]).markdown()


def test_maze_levels_normalizes_by_the_recorded_ceilings_and_puts_inf_last():
    from paper import sweeps

    def levels_run(count, seed, train, held_out):
        run = record(env="maze", seed=seed, sweep="maze_levels")
        run.config["env"]["num_train_layouts"] = count
        run.curve[-1] = {"step": 1, "train_return": train, "held_out_return": held_out, "held_out": {"held_out_7x7": held_out}}
        run.env_info = {"optimal_return": {"train": 0.8, "held_out_7x7": 0.5}}
        return run

    runs = [levels_run(c, s, 0.8 * f, 0.5 * f / 2) for c, f in (("inf", 1.0), (8, 0.5)) for s in range(3)]
    runs.append(record(env="maze", sweep="maze_levels"))  # no ceilings recorded: left out
    assert list(sweeps.levels_runs(runs)) == [8.0, float("inf")]
    table = sweeps.levels_table(runs, n_resamples=50).markdown()
    assert "| 8 | 0–2 (3) | 100000 | 0.500 [0.500, 0.500] | 0.250 [0.250, 0.250] | 0.250 [0.250, 0.250] |" in table
    assert "| inf |" in table.splitlines()[-1]
    assert sweeps.levels_figure(runs, n_resamples=50) is not None
    assert sweeps.levels_figure(runs[-1:], n_resamples=50) is None


def protocol_run(agent, seed, steps, greedy, sampled, **provenance):
    """A maze run under the evaluation protocol: both modes' training-split returns per step, ceiling 0.5."""
    run = record(agent=agent, env="maze", seed=seed, env_steps=steps[-1])
    run.curve = [{"step": s, "train_return": g, "held_out_return": 0.0, "held_out": {},
                  "modes": {"greedy": {"train": g}, "sampled": {"train": x}}} for s, g, x in zip(steps, greedy, sampled)]
    run.env_info = {"optimal_return": {"train": 0.5}}
    run.provenance.update(provenance)
    return run


def test_equal_budget_reads_each_mode_at_the_last_evaluation_within_the_budget():
    from paper import equal_budget

    short = [protocol_run("llm_pg", s, [0, 16, 32], [0.0, 0.1, 0.2], [0.0, 0.2, 0.3]) for s in range(3)]
    long = [protocol_run("ppo", s, [0, 20, 300], [0.0, 0.25, 0.5], [0.0, 0.1, 0.4]) for s in range(3)]
    assert equal_budget.value_at(long[0], "greedy", 32) == 0.5  # step 20's 0.25 over the ceiling 0.5
    assert equal_budget.value_at(long[0], "sampled", 300) == pytest.approx(0.8)
    assert np.isnan(equal_budget.value_at(short[0], "greedy", 300))  # never trained that long
    old = record(agent="dqn", env="maze")  # recorded before the protocol: no modes
    cells = [select.Cell("llm_pg", "vector", "maze", tuple(short)), select.Cell("ppo", "vector", "maze", tuple(long)),
             select.Cell("dqn", "vector", "maze", (old,))]
    table = equal_budget.equal_budget_table(cells, "maze", n_resamples=20).markdown()
    assert "| llm_pg | vector | 3 | 32 | 0.400 [0.400, 0.400] | 0.600 [0.600, 0.600] | – | – |" in table
    assert "| ppo | vector | 3 | 300 | 0.500 [0.500, 0.500] | 0.200 [0.200, 0.200] | 1.000" in table
    assert "dqn" not in table.split("\n\n")[1] and "1 cell(s) of maze were recorded before the protocol" in table
    colors = {cell.algorithm: "C0" for cell in cells}
    assert equal_budget.equal_budget_figure(cells, "maze", colors, n_resamples=20) is not None
    assert equal_budget.equal_budget_table(cells[2:], "maze", n_resamples=20) is None


def test_runs_that_differ_in_reward_or_in_evaluation_only_are_not_duplicates(clean_results, tmp_path):
    from paper import checks

    results = tmp_path / "results"
    shutil.copytree(clean_results, results)
    original = sorted((results / "runs").iterdir())[0]
    for name, edit in (("indirect_reward", lambda r: r["config"].update(reward={"name": "learned_irl", "coef": 1.0})),
                       ("more_eval_episodes", lambda r: r["config"]["budget"].update(eval_episodes=32))):
        shutil.copytree(original, results / "runs" / name)
        record = json.loads((results / "runs" / name / "result.json").read_text())
        edit(record)
        (results / "runs" / name / "result.json").write_text(json.dumps(record))
    (results / "runs" / "indirect_reward" / "episodes.npz").unlink()  # another reward trains differently
    problems = [p for p in checks.audit(results).problems if p.kind == "duplicate run"]
    assert problems == []
    shutil.copytree(original, results / "runs" / "plain_copy")
    (problem,) = [p for p in checks.audit(results).problems if p.kind == "duplicate run"]
    assert "plain_copy" in problem.line()


def test_metrics_table_divides_the_final_return_by_the_recorded_optimum():
    runs = [record(env="maze", seed=s, value=0.45) for s in range(3)]
    for run in runs:
        run.env_info = {**run.env_info, "optimal_return": {"train": 0.9}}
    normalized, gap = tables._optimum_columns(select.Cell("ppo", "vector", "maze", tuple(runs)), n_resamples=20)
    assert (normalized, gap) == ("0.500 [0.500, 0.500]", "0.500 [0.500, 0.500]")
    assert tables._optimum_columns(select.Cell("ppo", "vector", "cartpole", (record(),)), n_resamples=20) == ("–", "–")


# ----------------------------------------------------------------- colours, log steps, compute (issue 17)


def compute_cells():
    """LLM runs (3 seeds, 32 steps, recorded LLM FLOPs) and PPO runs (3 seeds, 3,200 steps, none) on the maze."""
    llm = [protocol_run("llm_pg", s, [0, 16, 32], [0.0, 0.1, 0.1 * (s + 1)], [0.0, 0.2, 0.3],
                        llm_flops=f * 1e12, wall_seconds=w) for s, f, w in zip(range(3), (2, 1, 4), (30, 10, 20))]
    ppo = [protocol_run("ppo", s, [0, 1600, 3200], [0.0, 0.2, 0.4], [0.0, 0.25, 0.45], wall_seconds=5.0 + s)
           for s in range(3)]
    return [select.Cell("llm_pg", "vector", "maze", tuple(llm)), select.Cell("ppo", "vector", "maze", tuple(ppo))]


def test_protocol_modes_are_the_evaluators():
    from llmrl_bench.evaluation import EVAL_MODES
    from paper import equal_budget

    assert equal_budget.MODES == EVAL_MODES and equal_budget.HEADLINE_MODE in EVAL_MODES


def test_one_colour_per_agent_in_every_figure():
    cells = compute_cells()
    cells.append(select.Cell("ppo", "image", "maze", cells[1].runs))  # another representation, the same agent
    colors = figures.paper_colors(cells)
    assert colors["ppo/vector"] == colors["ppo/image"] != colors["llm_pg/vector"]
    curves = figures.learning_curve_figure("maze", cells, colors, n_resamples=20).axes[0]
    curve_colors = {line.get_label().split(":")[0]: line.get_color() for line in curves.get_lines()}
    assert curve_colors == colors
    flops_panel, wall_panel = figures.protocol_compute_figure(cells, "maze", colors, n_resamples=20).axes
    marker_colors = lambda ax: {container.lines[0].get_color() for container in ax.containers}  # noqa: E731
    assert marker_colors(flops_panel) == {colors["llm_pg/vector"]}  # PPO records no LLM FLOPs
    assert marker_colors(wall_panel) == set(colors.values())


def test_learning_curves_take_a_log_step_axis_when_budgets_span_more_than_tenfold():
    llm, ppo = compute_cells()
    pre_protocol = select.Cell("llm_zero_shot", "vector", "maze", (record(agent="llm_zero_shot", env="maze", env_steps=32),))
    pre_protocol.runs[0].config["agent"]["llm"] = {"eval_sampling": True, "temperature": 1.0}
    ax = figures.learning_curve_figure("maze", [llm, ppo, pre_protocol], figures.paper_colors([llm, ppo, pre_protocol]),
                                       n_resamples=20).axes[0]
    assert ax.get_xscale() == "log" and min(ax.get_lines()[0].get_xdata()) == 16  # step 0 left out of a log axis
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["llm_pg/vector: greedy, protocol (n=3, IQM = mean)", "ppo/vector: greedy, protocol (n=3, IQM = mean)",
                      "llm_zero_shot/vector: sampled, own policy (n=1, IQM = mean)"]
    assert np.allclose(ax.get_lines()[1].get_ydata(), [0.2, 0.4])  # the greedy mode's returns, not normalized
    assert not figures.log_steps([llm, pre_protocol])  # 32 and 32 steps: a linear axis
    assert figures.learning_curve_figure("maze", [llm], {"llm_pg/vector": "C0"}, n_resamples=20).axes[0].get_xscale() == "linear"


def test_compute_table_and_figure_read_the_recorded_compute_and_final_modes():
    from paper import equal_budget

    cells = compute_cells() + [select.Cell("dqn", "vector", "maze", (record(agent="dqn", env="maze"),))]
    table = equal_budget.compute_table(cells, "maze", n_resamples=20).markdown()
    # llm_pg: FLOPs 1e12, 2e12, 4e12; wall 10, 20, 30 s; final greedy 0.1, 0.2, 0.3 and sampled 0.3 over the ceiling 0.5
    (llm_row,) = [line for line in table.splitlines() if line.startswith("| llm_pg ")]
    assert llm_row.startswith("| llm_pg | vector | 3 | 32 | 2e+12 [1e+12, 4e+12] | 20.00 [10.00, 30.00] | 0.400 [0.200, ")
    assert llm_row.endswith("] | 0.600 [0.600, 0.600] |")  # the bootstrap's upper bound depends on its resamples
    assert "| ppo | vector | 3 | 3,200 | – | 6.000 [5.000, 7.000] | 0.800 [0.800, 0.800] | 0.900 [0.900, 0.900] |" in table
    assert "1 cell(s) of maze were recorded before the protocol and are not shown: dqn/vector." in table
    flops_panel, wall_panel = figures.protocol_compute_figure(cells, "maze", figures.paper_colors(cells), n_resamples=20).axes
    points = lambda ax: np.array([c.lines[0].get_xydata()[0] for c in ax.containers])  # noqa: E731 (x, y) per mode and cell
    assert np.allclose(points(flops_panel), [(2e12, 0.4), (2e12, 0.6)])  # the median seed's FLOPs; greedy, sampled
    assert np.allclose(points(wall_panel), [(20.0, 0.4), (20.0, 0.6), (6.0, 0.8), (6.0, 0.9)])
    assert equal_budget.compute_table(cells[2:], "maze", n_resamples=20) is None
    assert figures.protocol_compute_figure(cells[2:], "maze", {}, n_resamples=20) is None
