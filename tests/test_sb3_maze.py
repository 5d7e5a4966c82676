"""The SB3 comparison on the maze: the hyperparameter translation, SB3's policy behind our evaluation, the
record a run writes, and the paper table read from records (experiments/sb3_maze.py, paper/sb3_maze.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from llmrl_bench import results
from llmrl_bench.results import RunResult
from llmrl_bench.runner import experiment_config
from paper import sb3_maze as table_module
from tests.conftest import load_experiment

TINY = ["budget.env_steps=512", "budget.num_evals=1", "budget.eval_episodes=2", "budget.held_out_episodes=1"]


@pytest.fixture(scope="module")
def sb3_maze():
    pytest.importorskip("stable_baselines3")
    return load_experiment("sb3_maze")


def agent_config(module, algo: str) -> dict:
    return OmegaConf.to_container(module.run_config(algo, 0).agent, resolve=True)


def test_our_maze_hyperparameters_reach_sb3s_models(sb3_maze):
    ppo_cfg, dqn_cfg = agent_config(sb3_maze, "ppo"), agent_config(sb3_maze, "dqn")
    envs = sb3_maze.RunEnvs(*_suite_and_repr(sb3_maze, "ppo"))
    ppo = sb3_maze.sb3.PPO("MlpPolicy", sb3_maze.training_envs("ppo", ppo_cfg, envs), **sb3_maze.sb3_arguments("ppo", ppo_cfg))
    assert (ppo.n_envs, ppo.n_steps, ppo.batch_size, ppo.n_epochs, ppo.gamma, ppo.ent_coef) == (8, 128, 64, 10, 0.99, 0.01)
    assert ppo.get_vec_normalize_env().norm_obs and ppo.get_vec_normalize_env().norm_reward
    dqn = sb3_maze.sb3.DQN("MlpPolicy", sb3_maze.training_envs("dqn", dqn_cfg, envs), **sb3_maze.sb3_arguments("dqn", dqn_cfg))
    for key in ("learning_starts", "batch_size", "target_update_interval", "exploration_fraction", "exploration_final_eps", "gamma"):
        assert getattr(dqn, key) == dqn_cfg[key], key
    assert (dqn.train_freq.frequency, dqn.gradient_steps, dqn.buffer_size) == (dqn_cfg["train_freq"], dqn_cfg["gradient_steps"], dqn_cfg["buffer_size"])
    assert dqn.policy.net_arch == dqn_cfg["net_arch"]


def test_an_option_sb3_lacks_is_refused(sb3_maze):
    cfg = agent_config(sb3_maze, "dqn") | {"double_q": True}
    with pytest.raises(ValueError, match="double_q"):
        sb3_maze.sb3_arguments("dqn", cfg)


def test_schedules_match_rl_zoos_linear(sb3_maze):
    schedule = sb3_maze.linear(0.5, anneal=True)
    assert schedule(1.0) == 0.5 and schedule(0.25) == 0.125 and repr(schedule) == "lin_0.5"
    assert sb3_maze.linear(0.5, anneal=False) == 0.5


def _suite_and_repr(module, algo):
    from hydra.utils import instantiate

    cfg = module.run_config(algo, 0)
    return instantiate(cfg.env), instantiate(cfg.repr)


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_sb3_policy_gives_our_evaluation_a_distribution_whose_argmax_is_its_action(sb3_maze, algo):
    cfg = agent_config(sb3_maze, algo)
    envs = sb3_maze.RunEnvs(*_suite_and_repr(sb3_maze, algo))
    model = sb3_maze.SB3_CLASSES[algo]("MlpPolicy", sb3_maze.training_envs(algo, cfg, envs), **sb3_maze.sb3_arguments(algo, cfg), seed=0)
    policy = sb3_maze.SB3Policy(model, cfg.get("exploration_final_eps"))
    env = envs.make()
    observations = np.stack([env.reset(seed=seed)[0] for seed in range(6)])
    probabilities = policy.action_probabilities(observations)
    assert probabilities.shape == (6, 3) and np.allclose(probabilities.sum(-1), 1.0)
    np.testing.assert_array_equal(probabilities.argmax(-1), policy.act(observations))
    if algo == "dqn":  # epsilon-greedy at the final epsilon, as our DQN's
        assert np.allclose(probabilities.min(-1), cfg["exploration_final_eps"] / 3)


def test_a_tiny_run_is_recorded_deterministically_and_names_our_run(sb3_maze):
    first = sb3_maze.train_and_evaluate("ppo", 0, TINY)
    second = sb3_maze.train_and_evaluate("ppo", 0, TINY)
    assert first["curve"] == second["curve"] and first["final_returns"] == second["final_returns"]
    assert [point["step"] for point in first["curve"]] == [0, 512] and first["env_steps"] >= 512
    last = first["curve"][-1]["modes"]
    for split, per_mode in first["final_returns"].items():
        assert len(per_mode["greedy"]) == len(first["optimal_returns"][split]) == (2 if split == "train" else 1)
        assert np.mean(per_mode["sampled"]) == last["sampled"][split]
    assert first["ours"]["run_id"] == results.run_id(experiment_config(sb3_maze.run_config("ppo", 0, TINY)))
    assert all(0 < value <= 1 for values in first["optimal_returns"].values() for value in values)


def test_bad_arguments_exit_2_and_write_nothing(sb3_maze, tmp_path, capsys):
    assert sb3_maze.main(["trpo", "--out", str(tmp_path / "out")]) == 2
    assert sb3_maze.main(["ppo", "--seeds", "x", "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    assert "allowed: algos of ['a2c', 'dqn', 'ppo']" in capsys.readouterr().err


# ---- the paper table, from hand-built records ---------------------------------------------------

CEILINGS = {"train": 0.8, "held_out_7x7": 0.5, "held_out_9x9": 1.0}


def modes(train: float, held_7: float, held_9: float) -> dict:
    point = {"train": train, "held_out_7x7": held_7, "held_out_9x9": held_9}
    return {"greedy": point, "sampled": {split: value / 2 for split, value in point.items()}}


def sb3_record(algo: str, seed: int, train: float, our_run_id: str) -> dict:
    return {"algo": algo, "seed": seed, "budget": 1000, "settings": {"differences": "none"},
            "ours": {"agent": algo, "run_id": our_run_id}, "curve": [{"step": 1000, "modes": modes(train, 0.25, 0.5)}],
            "optimal_returns": {"train": [0.7, 0.9], "held_out_7x7": [0.5], "held_out_9x9": [1.0]}}


def our_run(run_id: str, seed: int, train: float) -> RunResult:
    return RunResult(run_id=run_id, agent="ppo", env="maze", repr="vector", seed=seed, config={}, metrics={},
                     curve=[{"step": 1000, "modes": modes(train, 0.5, 1.0)}], provenance={},
                     env_info={"optimal_return": CEILINGS})


def test_normalized_returns_divide_by_the_mean_optimum_and_average_held_out_contexts():
    values = table_module.normalized_returns(modes(0.4, 0.25, 0.5), CEILINGS)
    assert values == {("train", "greedy"): 0.5, ("train", "sampled"): 0.25,
                      ("held_out", "greedy"): 0.5, ("held_out", "sampled"): 0.25}
    assert table_module.sb3_normalized(sb3_record("ppo", 0, 0.4, "a"))[("train", "greedy")] == pytest.approx(0.5)


def test_the_table_pairs_our_runs_with_sb3s_by_run_id(tmp_path):
    (tmp_path / "sb3_maze").mkdir()
    for seed in range(4):
        (tmp_path / "sb3_maze" / f"ppo_seed{seed}.json").write_text(json.dumps(sb3_record("ppo", seed, 0.4, f"id{seed}")))
    ours = [our_run(f"id{seed}", seed, 0.8) for seed in range(3)] + [our_run("other", 3, 0.0)]
    table = table_module.sb3_maze_table(ours, tmp_path, n_resamples=50)
    (our_row, sb3_row) = table.rows
    assert our_row[:5] == ("PPO", "ours (ppo)", "3", "1,000", "1.000 [1.000, 1.000]")
    assert "1 of our runs at these settings missing" in our_row[-1]
    assert sb3_row[:5] == ("PPO", "SB3 PPO", "4", "1,000", "0.500 [0.500, 0.500]")
    assert sb3_row[6] == "0.500 [0.500, 0.500]"  # held-out greedy: (0.25 / 0.5 + 0.5 / 1.0) / 2


def test_a_side_fails_only_when_every_seed_stays_below_the_threshold_in_both_modes():
    low = {(split, mode): 0.0 for split in ("train", "held_out") for mode in ("greedy", "sampled")}
    assert table_module.fails([low, low]) and not table_module.fails([])
    assert not table_module.fails([low, low | {("train", "sampled"): table_module.FAILED_BELOW}])


def test_no_records_no_table_and_a_bad_record_is_named(tmp_path):
    assert table_module.sb3_maze_table([], tmp_path, 10) is None
    (tmp_path / "sb3_maze").mkdir()
    (tmp_path / "sb3_maze" / "ppo_seed0.json").write_text('{"algo": "ppo", "seed": NaN}')
    with pytest.raises(ValueError, match="ppo_seed0.json"):
        table_module.sb3_maze_table([], tmp_path, 10)
