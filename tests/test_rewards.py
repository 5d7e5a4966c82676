"""Indirect rewards (``reward=``): expert data, the reward models' training, the wrapper, run identity, validation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from llmrl_bench import results
from llmrl_bench.envs import maze_solver
from llmrl_bench.envs.base import TRAIN
from llmrl_bench.envs.maze import HELD_OUT, MazeSuite, maze_layouts, shortest_solution
from llmrl_bench.errors import ConfigError
from llmrl_bench.representations.vector import MiniGridVector, VectorRepresentation
from llmrl_bench.rewards import build_reward
from llmrl_bench.rewards.base import IndirectRewardVecEnv, pearson, progress_auc
from llmrl_bench.rewards.constant import ConstantConfig, ConstantReward
from llmrl_bench.rewards.learned_irl import Discriminator, LearnedIRLConfig, LearnedIRLReward, expert_transitions
from llmrl_bench.rewards.llm_judge import LLMJudgeConfig, LLMJudgeReward
from llmrl_bench.run_envs import RunEnvs
from llmrl_bench.validation import check_config

SUITE = MazeSuite(num_train_layouts=8)
#: Small mazes, so that random walks reach goals within a short test.
SMALL = MazeSuite(train_sizes=[3], held_out_sizes=[3], num_train_layouts=2, num_held_out_layouts=1)


def irl_reward(seed: int = 0, suite: MazeSuite = SMALL, **fields) -> LearnedIRLReward:
    return LearnedIRLReward(LearnedIRLConfig(**fields), suite, seed)


def rollout(envs: RunEnvs, steps: int, num_envs: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(observations, rewards, valid)`` of ``steps`` seeded random steps of ``envs.make_vec(num_envs)``;
    ``valid`` is false on autoreset steps (the step after a done only resets that env)."""
    vec = envs.make_vec(num_envs)
    rng = np.random.default_rng(seed)
    observation, _ = vec.reset(seed=seed)
    observations, rewards, valid, autoreset = [observation], [], [], np.zeros(num_envs, bool)
    for _ in range(steps):
        observation, reward, terminated, truncated, _ = vec.step(rng.integers(0, 3, num_envs))
        observations.append(observation)
        rewards.append(reward)
        valid.append(~autoreset)
        autoreset = np.logical_or(terminated, truncated)
    vec.close()
    return np.array(observations), np.array(rewards), np.array(valid)


def random_transitions(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features and actions of a seeded random walk on the training layouts."""
    env, rng = MiniGridVector(SUITE.make(TRAIN)), np.random.default_rng(seed)
    observation, _ = env.reset(seed=seed)
    features, actions = [], []
    for _ in range(count):
        action = int(rng.integers(0, 3))
        features.append(observation)
        actions.append(action)
        observation, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            observation, _ = env.reset()
    return np.stack(features), np.array(actions)


# -- expert data and the ground-truth progress signal ---------------------------------------------

def test_expert_demonstrations_are_shortest_paths_on_training_layouts_only():
    training = {layout.maze_key for layout in SUITE.layouts(TRAIN)}
    held_out = {layout.maze_key for layout in maze_layouts(7, HELD_OUT, 8, 16)}
    demonstrations = SUITE.expert_demonstrations()
    assert [index for index, _ in demonstrations] == list(range(8))
    for index, actions in demonstrations:
        layout = SUITE.layouts(TRAIN)[index]
        assert layout.maze_key in training and layout.maze_key not in held_out
        assert len(actions) == len(shortest_solution(layout)) == maze_solver.distances_to_goal(layout)[(*layout.start, layout.start_dir)]
    features, actions = expert_transitions(SUITE)  # raises unless every path reaches its goal
    assert len(actions) == sum(len(a) for _, a in demonstrations) and features.shape == (len(actions), 153)


def test_distances_to_goal_fall_by_one_along_a_shortest_path():
    layout = SUITE.layouts(TRAIN)[0]
    distances = maze_solver.distances_to_goal(layout)
    state = (*layout.start, layout.start_dir)
    for action in shortest_solution(layout):
        following = maze_solver.step_state(layout.wall_grid, state, action, "navigation")
        assert distances[following] == distances[state] - 1
        state = following
    assert state[:2] == layout.goal


def test_agreement_numbers_on_hand_built_arrays():
    progress = np.array([True, False, True, False])
    assert progress_auc(np.array([2.0, 0.0, 3.0, 1.0]), progress) == 1.0
    assert progress_auc(np.array([0.0, 2.0, 1.0, 3.0]), progress) == 0.0
    assert progress_auc(np.array([1.0, 1.0, 1.0, 1.0]), progress) == 0.5
    assert progress_auc(np.array([1.0, 2.0]), np.array([True, True])) is None
    assert pearson(np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 0.0])) is None
    assert pearson(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])) == pytest.approx(1.0)


# -- reward models ----------------------------------------------------------------------------------

def test_discriminator_training_reduces_its_loss_on_a_fixed_dataset():
    expert = tuple(torch.from_numpy(x) for x in expert_transitions(SUITE))
    agent = tuple(torch.from_numpy(x) for x in random_transitions(len(expert[1])))
    discriminator = Discriminator(153, 3, LearnedIRLConfig(learning_rate=1e-3), seed=0)
    before = float(discriminator.loss(expert, agent).detach())
    for _ in range(300):
        discriminator.train_step(expert, agent)
    after = float(discriminator.loss(expert, agent).detach())
    assert after < 0.5 * before, (before, after)


def test_online_updates_run_every_update_every_steps_and_are_seeded():
    rewards = [rollout(RunEnvs(SMALL, VectorRepresentation(), irl_reward(update_every=32, updates=2)), 40)[1] for _ in range(2)]
    np.testing.assert_array_equal(rewards[0], rewards[1])
    other_seed = rollout(RunEnvs(SMALL, VectorRepresentation(), irl_reward(seed=1, update_every=32, updates=2)), 40)[1]
    assert not np.array_equal(rewards[0], other_seed)


def test_llm_judge_is_memoised_deterministic_and_bounded():
    judge = LLMJudgeReward(LLMJudgeConfig(llm=OmegaConf.create({"model": "tiny-random", "device": "cpu"})), SUITE, 0)
    before, after = ["a wall ahead", "the goal ahead"], ["the goal ahead", "a wall ahead"]
    first = judge.rewards(before, np.array([2, 0]), after)
    misses = judge.misses
    again = judge.rewards(before, np.array([2, 0]), after)
    np.testing.assert_array_equal(first, again)
    assert judge.misses == misses == 2 and judge.hits == 2
    assert np.all(np.abs(first) < 0.5) and first[0] != first[1]
    fresh = LLMJudgeReward(judge.config, SUITE, 0)
    np.testing.assert_allclose(fresh.rewards(before, np.array([2, 0]), after), first, atol=1e-6)


# -- the wrapper: training envs only ----------------------------------------------------------------

def test_indirect_reward_replaces_training_rewards_and_leaves_observations_and_evaluation_alone():
    direct_obs, direct_rewards, valid = rollout(RunEnvs(SMALL, VectorRepresentation()), 80)
    envs = RunEnvs(SMALL, VectorRepresentation(), irl_reward(update_every=10_000))  # no update: the initial discriminator
    learned_obs, learned_rewards, _ = rollout(envs, 80)
    np.testing.assert_array_equal(direct_obs, learned_obs)  # the representation on top sees the same envs
    assert direct_rewards.any() and not valid.all(), "the rollout should reach a goal at least once"
    agreement = envs.reward_envs[-1].agreement
    np.testing.assert_array_equal(np.concatenate(agreement.env_reward), direct_rewards[valid])
    np.testing.assert_allclose(learned_rewards[valid], np.concatenate(agreement.learned))
    assert not np.allclose(learned_rewards[valid], direct_rewards[valid]) and np.all(learned_rewards[~valid] == 0)
    evaluation_env = envs.make(TRAIN)  # what Evaluator steps: the env's own reward
    assert not any(isinstance(layer, IndirectRewardVecEnv) for layer in _layers(evaluation_env))
    evaluation_env.reset(options={"layout_index": 0})
    layout = SMALL.layouts(TRAIN)[0]
    step_rewards = [evaluation_env.step(action)[1] for action in shortest_solution(layout)]
    assert step_rewards[-1] == SMALL.optimal_returns()[0] and not any(step_rewards[:-1])


def _layers(env: gym.Env) -> list:
    layers = [env]
    while hasattr(layers[-1], "env"):
        layers.append(layers[-1].env)
    return layers


def test_add_mode_adds_coef_times_the_learned_reward_to_the_env_reward():
    _, direct_rewards, _ = rollout(RunEnvs(SMALL, VectorRepresentation()), 80)
    replaced = rollout(RunEnvs(SMALL, VectorRepresentation(), irl_reward(update_every=10_000)), 80)[1]
    added = rollout(RunEnvs(SMALL, VectorRepresentation(), irl_reward(update_every=10_000, mode="add", coef=0.5)), 80)[1]
    np.testing.assert_allclose(added, direct_rewards + 0.5 * replaced, atol=1e-6)


def test_constant_reward_pays_its_value_on_every_training_step_and_agrees_with_nothing():
    _, direct_rewards, valid = rollout(RunEnvs(SMALL, VectorRepresentation()), 80)
    envs = RunEnvs(SMALL, VectorRepresentation(), ConstantReward(ConstantConfig(value=-0.29, coef=2.0), SMALL, 0))
    _, rewards, _ = rollout(envs, 80)
    assert direct_rewards.any() and not valid.all(), "the rollout should reach a goal at least once"
    np.testing.assert_allclose(rewards[valid], -0.58)  # coef * value, the env's goal reward replaced
    assert np.all(rewards[~valid] == 0)
    provenance = envs.reward_envs[-1].provenance()
    assert provenance["reward"] == "constant" and provenance["reward_learned_mean"] == pytest.approx(-0.29)
    assert provenance["reward_pearson_env"] is None and provenance["reward_progress_auc"] == 0.5


# -- run identity and validation --------------------------------------------------------------------

def test_run_id_is_unchanged_by_reward_direct_and_changed_by_an_indirect_reward(make_config):
    config = OmegaConf.to_container(make_config("env=maze", "seed=3"), resolve=True)
    assert config["reward"]["name"] == "direct"
    without_reward = {key: value for key, value in config.items() if key != "reward"}
    assert results.run_id(config) == results.run_id(without_reward)
    irl = OmegaConf.to_container(make_config("env=maze", "seed=3", "reward=learned_irl"), resolve=True)
    irl_coef = OmegaConf.to_container(make_config("env=maze", "seed=3", "reward=learned_irl", "reward.coef=0.5"), resolve=True)
    judge = OmegaConf.to_container(make_config("env=maze", "seed=3", "reward=llm_judge"), resolve=True)
    assert len({results.run_id(c) for c in (config, irl, irl_coef, judge)}) == 4


@pytest.mark.parametrize("overrides,message", [
    (("reward=learned_irl", "agent=dqn"), "reward=learned_irl supports agent=ppo, llm_pg; got agent=dqn"),
    (("reward=llm_judge", "agent=q_learning"), "reward=llm_judge supports agent=ppo, llm_pg; got agent=q_learning"),
    (("reward=learned_irl", "env=cartpole"), "reward=learned_irl needs expert demonstrations: env=maze only; got env=cartpole"),
    (("reward=learned_irl", "env=maze", "env.num_train_layouts=inf"), "needs fixed training layouts"),
    (("reward=llm_judge", "env=cartpole"), "reward=llm_judge needs MiniGrid text observations"),
    (("reward=learned_irl", "reward.update_every=0"), "reward.update_every=0 must be a positive integer"),
    (("reward=learned_irl", "reward.coef=nan"), "reward.coef=nan must be a finite number"),
    (("reward=constant", "reward.value=inf"), "reward.value=inf must be a finite number"),
    (("reward=constant", "agent=dqn"), "reward=constant supports agent=ppo, llm_pg; got agent=dqn"),
])
def test_bad_reward_combinations_fail_in_one_line(make_config, overrides, message):
    with pytest.raises(ConfigError, match=None) as error:
        check_config(make_config(*overrides))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_build_reward_of_a_config_stored_before_rewards_existed_is_direct():
    assert build_reward(None, SUITE, 0).is_direct


# -- the paper's table ------------------------------------------------------------------------------

def _run(reward: str, seed: int, train: float, held_out: float, auc: float | None) -> results.RunResult:
    config = {"budget": {"env_steps": 1000}, **({"reward": {"name": reward}} if reward != "direct" else {})}
    return results.RunResult(run_id=f"{seed:016x}", agent="ppo", env="maze", repr="vector", seed=seed, config=config,
                             metrics={}, curve=[{"step": 1000, "train_return": train, "held_out_return": held_out}],
                             provenance={"reward_progress_auc_final": auc, "reward_pearson_env_final": None})


def test_rewards_table_has_one_row_per_reward_with_returns_and_agreement():
    from paper.tables import rewards_table

    runs = [_run("direct", s, 0.5, 0.25, None) for s in range(3)] + [_run("learned_irl", s, 0.75, 0.5, 0.625) for s in range(3)]
    runs.append(_run("direct", 0, 0.0, 0.0, None).__class__(**{**_run("direct", 0, 0.0, 0.0, None).__dict__, "env": "cartpole"}))
    table = rewards_table(runs, n_resamples=100)
    assert [row[3] for row in table.rows] == ["direct", "learned_irl"]  # cartpole ran no indirect reward: left out
    direct, learned = table.rows
    assert direct[6].startswith("0.5") and direct[7].startswith("0.25") and direct[9] == "–"
    assert learned[6].startswith("0.75") and learned[9].startswith("0.625") and learned[8] == "–"


# -- checkpoints: refused for indirect rewards ------------------------------------------------------

@pytest.mark.parametrize("reward,checkpointed", [("direct", True), ("learned_irl", False)])
def test_only_direct_reward_runs_are_checkpointed(make_config, tmp_path, monkeypatch, caplog, reward, checkpointed):
    from llmrl_bench import runner

    made = []
    monkeypatch.setattr(runner.checkpoint, "Checkpointer", lambda *args, **kwargs: made.append(1) or None)
    cfg = make_config("env=maze", f"reward={reward}", "debug=smoke", f"results_dir={tmp_path}", "env.num_train_layouts=2",
                      "agent.n_envs=2", "agent.n_steps=64", "agent.n_epochs=1")
    runner.run(cfg)
    assert bool(made) == checkpointed
    assert ("are not checkpointed" in caplog.text) == (not checkpointed)
