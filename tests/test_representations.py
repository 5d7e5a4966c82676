"""Representations: both pass check_env and are deterministic on every env family; the vector
holds the view, direction and position; text matches exact strings for hand-built situations."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from hydra.utils import instantiate
from minigrid.core.world_object import Ball, Box, Door, Key, Lava

from llmrl_bench.envs import EVAL_SEED_OFFSET, TRAIN, CartPoleSuite, MazeSuite, MiniGridSuite
from llmrl_bench.representations import (
    Representation,
    TextRepresentation,
    VectorRepresentation,
    describe_cartpole,
    describe_minigrid,
)
from tests.conftest import load_experiment

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
REPR_OPTIONS = sorted(path.stem for path in (CONF_DIR / "repr").glob("*.yaml"))

SUITES = {
    "maze": MazeSuite(),
    "cartpole": CartPoleSuite(),
    "doorkey": MiniGridSuite("MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-5x5-v0", 0.9, "MiniGrid-DoorKey-6x6-v0"),
    "fourrooms": MiniGridSuite("MiniGrid-FourRooms-v0", "MiniGrid-FourRooms-v0", 0.5),
}
REPRESENTATIONS = {"vector": VectorRepresentation(), "text": TextRepresentation()}
CASES = [
    (suite_name, context, repr_name)
    for suite_name, suite in SUITES.items()
    for context in [TRAIN, suite.held_out_contexts[-1]]
    for repr_name in REPRESENTATIONS
]

IGNORED_WARNINGS = [
    "ignore:.*different from the unwrapped version",
    "ignore:.*Box observation space (minimum|maximum) value is",  # Gymnasium's own CartPole space
]


def make(suite_name: str, context: str, repr_name: str) -> gym.Env:
    suite = SUITES[suite_name]
    return REPRESENTATIONS[repr_name].wrap(suite.make(context), suite)


def rollout(env: gym.Env, seed: int, steps: int) -> list:
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        trace.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            trace.append(env.reset()[0])
    return trace


@pytest.mark.filterwarnings(*IGNORED_WARNINGS)
@pytest.mark.parametrize("suite_name,context,repr_name", CASES)
def test_representation_passes_check_env(suite_name, context, repr_name):
    check_env(make(suite_name, context, repr_name), skip_render_check=True)


@pytest.mark.parametrize("suite_name,context,repr_name", CASES)
def test_representation_is_deterministic_and_picklable(suite_name, context, repr_name):
    first = rollout(make(suite_name, context, repr_name), EVAL_SEED_OFFSET, 200)
    second = rollout(pickle.loads(pickle.dumps(make(suite_name, context, repr_name))), EVAL_SEED_OFFSET, 200)
    assert len(first) == len(second) and all(data_equivalence(a, b, exact=True) for a, b in zip(first, second))
    env = make(suite_name, context, repr_name)
    assert all(env.observation_space.contains(step[0] if isinstance(step, tuple) else step) for step in first)


@pytest.mark.parametrize("option", REPR_OPTIONS)
def test_repr_option_instantiates_representation(make_config, option):
    representation = instantiate(make_config(f"repr={option}").repr)  # the run config: llm_embed reads its top-level llm
    assert isinstance(representation, Representation) and representation.name == option
    assert representation.is_text == (option == "text")
    assert pickle.loads(pickle.dumps(representation)).name == option


# ---- vector -----------------------------------------------------------------------------------


def test_minigrid_vector_holds_view_direction_and_position():
    suite = SUITES["maze"]
    raw = suite.make(TRAIN)
    wrapped = VectorRepresentation().wrap(suite.make(TRAIN), suite)
    assert wrapped.observation_space.shape == (7 * 7 * 3 + 4 + 2,) and wrapped.observation_space.dtype == np.float32
    raw_obs, _ = raw.reset(seed=3)
    vector, _ = wrapped.reset(seed=3)
    positions = set()
    for action in [2, 2, 0, 2, 2, 1, 1, 2, 2, 2, 0, 2, 2] * 4:
        base = raw.unwrapped
        assert (vector[:147] == raw_obs["image"].reshape(-1)).all()
        assert (vector[147:151] == np.eye(4)[raw_obs["direction"]]).all()
        assert vector[151:] == pytest.approx([base.agent_pos[0] / base.width, base.agent_pos[1] / base.height])
        positions.add(tuple(vector[151:]))
        raw_obs, _, terminated, truncated, _ = raw.step(action)
        vector, *_ = wrapped.step(action)
        assert not (terminated or truncated)
    assert len(positions) > 1  # the agent moved and the vector followed


def test_cartpole_vector_is_the_raw_state():
    suite = SUITES["cartpole"]
    env = suite.make(TRAIN)
    assert VectorRepresentation().wrap(env, suite) is env
    envs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="vector_entry_point")
    assert VectorRepresentation().wrap_vec(envs, suite) is envs


@pytest.mark.parametrize("repr_name", list(REPRESENTATIONS))
def test_wrap_vec_matches_wrap_row_by_row(repr_name):
    suite, representation = SUITES["maze"], REPRESENTATIONS[repr_name]
    raw_vec = gym.vector.SyncVectorEnv([suite.make for _ in range(3)], autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    batched = representation.wrap_vec(raw_vec, suite)
    singles = [representation.wrap(suite.make(TRAIN), suite) for _ in range(3)]
    observations, _ = batched.reset(seed=11)
    rows = [env.reset(seed=11 + i)[0] for i, env in enumerate(singles)]
    for step in range(30):
        for i in range(3):
            assert data_equivalence(observations[i], rows[i], exact=True)
        actions = np.array([2, step % 3, 1])
        observations, *_ = batched.step(actions)
        rows = [env.step(int(action))[0] for env, action in zip(singles, actions)]
    assert batched.single_observation_space == singles[0].observation_space


def test_cartpole_text_wrap_vec_describes_each_row():
    suite = SUITES["cartpole"]
    envs = TextRepresentation().wrap_vec(suite.make_native_vec(3), suite)
    texts, _ = envs.reset(seed=0)
    raw, _ = gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="vector_entry_point").reset(seed=0)
    assert texts == tuple(describe_cartpole(row) for row in raw)
    assert len(set(texts)) == 3


# ---- text -------------------------------------------------------------------------------------


def hand_built_minigrid():
    """Empty-8x8 with the agent at (2, 4) facing east, a yellow key south of it and a locked blue door."""
    env = gym.make("MiniGrid-Empty-8x8-v0").unwrapped
    env.reset(seed=0)
    env.agent_pos, env.agent_dir = (2, 4), 0
    env.grid.set(2, 5, Key("yellow"))  # facing east, south is to the right
    env.grid.set(4, 3, Door("blue", is_locked=True))
    return env


def test_minigrid_text_of_a_hand_built_situation():
    env = hand_built_minigrid()
    assert describe_minigrid(env.gen_obs()) == (
        "You face east. A wall 5 steps ahead; a wall 3 steps right; a yellow key 1 step right; "
        "a locked blue door 1 step left and 2 steps ahead; the green goal 2 steps right and 4 steps ahead. "
        "Mission: get to the green goal square"
    )
    env.agent_dir = 3  # north: the key and the goal are now behind, the locked door to the right
    env.carrying = Ball("red")
    env.grid.set(1, 2, Lava())
    env.grid.set(3, 1, Box("purple"))
    env.grid.set(2, 2, Door("grey", is_open=True))
    assert describe_minigrid(env.gen_obs()) == (
        "You face north. A wall 4 steps ahead; a wall 2 steps left; an open grey door 2 steps ahead; "
        "a locked blue door 2 steps right and 1 step ahead; lava 1 step left and 2 steps ahead; "
        "a purple box 1 step right and 3 steps ahead. You carry a red ball. Mission: get to the green goal square"
    )


def test_minigrid_text_stops_at_unseen_cells_and_describes_emptiness():
    image = np.zeros((7, 7, 3), dtype=np.uint8)  # all unseen
    image[3, 6] = (1, 0, 0)  # the agent's own cell, empty
    image[3, 0] = (2, 5, 0)  # a wall beyond unseen cells is not "straight ahead"
    text = describe_minigrid({"image": image, "direction": 2, "mission": "reach the goal"})
    assert text == "You face west. Nothing in sight. Mission: reach the goal"
    image[3, 1:6] = (1, 0, 0)
    text = describe_minigrid({"image": image, "direction": 1, "mission": "reach the goal"})
    assert text == "You face south. A wall 6 steps ahead. Mission: reach the goal"


def test_cartpole_text_of_hand_built_states():
    state = np.array([0.12, 0.45, math.radians(2.3), math.radians(-0.8)], dtype=np.float32)
    assert describe_cartpole(state) == (
        "Cart position 0.12 m, moving right at 0.45 m/s; pole angle 2.3 degrees to the right, rotating left at 0.8 degrees/s."
    )
    assert describe_cartpole([-0.004, -1.236, -0.1, 0.0]) == (
        "Cart position 0.00 m, moving left at 1.24 m/s; pole angle 5.7 degrees to the left, rotating right at 0.0 degrees/s."
    )


def test_maze_text_rules_reach_the_goal():
    """The text observation carries enough to navigate: experiments/maze_text_rules.py's policies solve layouts."""
    module = load_experiment("maze_text_rules")
    text = "You face north. A wall 1 step ahead; a wall 1 step left; a wall 3 steps right. Mission: get to the green goal square"
    assert module.goal_place(text) is None  # the mission's "the green goal" is not a seen goal
    assert module.rules(text) == module.TURN_RIGHT
    assert module.rules("You face east. A wall 2 steps ahead; the green goal 1 step left. Mission: x") == module.TURN_LEFT
    env = MazeSuite().make()
    returns = np.array([module.play(env, k, "wall_follower", np.random.default_rng(0)) for k in range(8)])
    assert (returns > 0).mean() >= 0.5
