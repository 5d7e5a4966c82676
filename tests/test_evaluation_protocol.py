"""The evaluation protocol's two modes: the argmax and samples of every agent's action distribution."""

from __future__ import annotations

import numpy as np
import pytest
from hydra.utils import instantiate

from conftest import build_agent
from llmrl_bench.agents.base import epsilon_greedy_probabilities
from llmrl_bench.envs.base import TRAIN
from llmrl_bench.evaluation import EVAL_MODES, evaluate_together, has_action_distribution, plays_together, records_modes
from llmrl_bench.run_envs import RunEnvs


@pytest.fixture
def maze_envs(make_config):
    cfg = make_config("env=maze", "env.num_train_layouts=4")
    return RunEnvs(instantiate(cfg.env), instantiate(cfg.repr))


class FixedDistribution:
    """An agent whose every action distribution is ``probabilities``."""

    def __init__(self, probabilities):
        self.probabilities = np.asarray(probabilities, np.float64)

    def action_probabilities(self, observations):
        return np.tile(self.probabilities, (len(observations), 1))

    def act(self, observations, greedy=True):
        return np.full(len(observations), int(self.probabilities.argmax()))


@pytest.mark.parametrize("agent_name", ["ppo", "reinforce", "q_learning", "dqn"])
def test_greedy_mode_is_the_agents_argmax_and_sampling_leaves_training_rngs_alone(maze_envs, agent_name):
    agent = build_agent(agent_name, maze_envs, seed=3)
    assert has_action_distribution(agent)
    observations = np.stack([maze_envs.make().reset(seed=s)[0] for s in range(6)])
    probabilities = agent.action_probabilities(observations)
    assert probabilities.shape == (6, maze_envs.action_space.n) and np.allclose(probabilities.sum(-1), 1.0)
    assert (probabilities.argmax(-1) == agent.act(observations, greedy=True)).all()

    evaluator = maze_envs.evaluator(TRAIN, 4)
    before = agent.state_dict() if hasattr(agent, "state_dict") else None
    assert (evaluator.evaluate_mode(agent, "greedy") == evaluator.evaluate(agent)).all()
    sampled = evaluator.evaluate_mode(agent, "sampled")
    assert (evaluator.evaluate_mode(agent, "sampled") == sampled).all()  # the same draws at every evaluation
    if before is not None:
        after = agent.state_dict()
        for key in ("rng", "torch_rng"):
            if key in before:
                assert str(before[key]) == str(after[key]), key


def test_sampled_mode_draws_from_the_distribution_per_episode(maze_envs):
    evaluator = maze_envs.evaluator(TRAIN, 8)
    forward_only = evaluator.evaluate_mode(FixedDistribution([0.0, 0.0, 1.0]), "sampled")
    turning_only = evaluator.evaluate_mode(FixedDistribution([0.5, 0.5, 0.0]), "sampled")
    assert (turning_only == 0).all()  # never moves, never reaches the goal
    mixed = evaluator.evaluate_mode(FixedDistribution([0.2, 0.2, 0.6]), "sampled")
    assert mixed.shape == forward_only.shape == (8,)
    with pytest.raises(ValueError, match="'argmax' is not one of"):
        evaluator.evaluate_mode(FixedDistribution([1.0, 0.0, 0.0]), "argmax")


class GeneratingPolicy:
    """An agent without an explicit distribution (as generate mode): plays the modes itself, turning left
    and right at random from one generator, and records the size of every batch it is asked about."""

    explicit_action_distribution = False

    def __init__(self):
        self.rng = np.random.default_rng(0)
        self.batches = []

    def act_in_mode(self, observations, mode):
        self.batches.append(len(observations))
        return self.rng.choice([0, 1, 2], size=len(observations), p=[0.3, 0.3, 0.4])

    def act(self, observations, greedy=True):
        return self.act_in_mode(observations, "sampled")


def test_agents_that_generate_play_every_split_as_one_batch(make_config):
    cfg = make_config("env=maze", "env.num_train_layouts=4", "env.held_out_sizes=[7,9]", "env.num_held_out_layouts=2")
    envs = RunEnvs(instantiate(cfg.env), instantiate(cfg.repr))
    evaluators = [envs.evaluator(TRAIN, 4), *(envs.evaluator(context, 2) for context in envs.suite.held_out_contexts)]
    assert len(evaluators) == 3
    generating = GeneratingPolicy()
    assert plays_together(generating) and not plays_together(FixedDistribution([0.2, 0.2, 0.6]))
    returns = evaluate_together(evaluators, generating, "sampled")
    assert [len(r) for r in returns] == [4, 2, 2]
    # one call per step for all 8 episodes: as many calls as the longest episode, the first with every episode
    assert generating.batches[0] == 8 and len(generating.batches) <= max(e.envs[0].unwrapped.max_steps for e in evaluators)
    assert sum(generating.batches) < 8 * max(e.envs[0].unwrapped.max_steps for e in evaluators)
    separate = GeneratingPolicy()
    for evaluator in evaluators:
        evaluator.evaluate_mode(separate, "sampled")
    assert len(separate.batches) > len(generating.batches)
    # agents with an explicit distribution keep playing split by split: the same returns as each evaluator alone
    fixed = FixedDistribution([0.2, 0.2, 0.6])
    for mode in EVAL_MODES:
        together = evaluate_together(evaluators, fixed, mode)
        for evaluator, values in zip(evaluators, together):
            assert (values == evaluator.evaluate_mode(fixed, mode)).all()


def test_epsilon_greedy_probabilities():
    probabilities = epsilon_greedy_probabilities(np.array([2, 0]), 4, 0.2)
    assert probabilities == pytest.approx(np.array([[0.05, 0.05, 0.85, 0.05], [0.85, 0.05, 0.05, 0.05]]))


def test_a_run_records_both_modes_at_every_evaluation(make_config, tmp_path):
    from llmrl_bench.results import load_results
    from llmrl_bench.runner import run

    cfg = make_config("agent=ppo", "env=maze", "budget.env_steps=2048", "budget.num_evals=2", "budget.eval_episodes=4",
                      "budget.held_out_episodes=2", "logger=none", "progress=false", f"results_dir={tmp_path}")
    run(cfg)
    (result,) = load_results(tmp_path)[0]
    for point in result.curve:
        assert set(point["modes"]) == set(EVAL_MODES)
        for splits in point["modes"].values():
            assert set(splits) == {TRAIN, *result.env_info["held_out_contexts"]}
        assert point["modes"]["greedy"][TRAIN] == point["train_return"]  # PPO's evaluation policy is its argmax


@pytest.mark.parametrize("agent_name,temperature", [("llm_zero_shot", 0.0), ("llm_zero_shot", 0.7), ("llm_pg", 1.0)])
def test_llm_agents_in_score_mode_expose_their_softmax_over_env_actions(agent_name, temperature):
    from llmrl_bench.envs import MazeSuite
    from llmrl_bench.representations.text import TextRepresentation

    envs = RunEnvs(MazeSuite(train_sizes=[7], held_out_sizes=[7], num_train_layouts=2), TextRepresentation())
    llm = {"model": "tiny-random", "temperature": temperature}
    order = {"actions": ["go forward", "turn left", "turn right"], "action_ids": [2, 0, 1]}  # the maze prompt's order
    agent = build_agent(agent_name, envs, 0, llm=llm, **order)
    observations = [envs.make().reset(seed=s)[0] for s in range(3)]
    probabilities = agent.action_probabilities(observations)
    assert probabilities.shape == (3, 3) and np.allclose(probabilities.sum(-1), 1.0)
    assert (probabilities.argmax(-1) == agent.act(observations, greedy=True)).all()
    scores = agent.policy.score(agent.policy.prompts(observations))  # candidate order: forward, left, right
    if temperature == 0:
        assert set(np.unique(probabilities)) == {0.0, 1.0}
    else:
        assert probabilities[:, [2, 0, 1]] == pytest.approx((scores.double() / temperature).softmax(-1).numpy())
    assert has_action_distribution(agent)
    generating = build_agent(agent_name, envs, 0, llm={**llm, "action_mode": "generate"}, **order)
    assert not has_action_distribution(generating) and records_modes(generating)
    evaluator = envs.evaluator(TRAIN, 2)
    greedy = evaluator.evaluate_mode(generating, "greedy")
    assert (evaluator.evaluate_mode(generating, "greedy") == greedy).all()  # greedy decoding repeats
