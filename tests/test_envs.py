"""Environments: every registered id and every suite context passes check_env and is deterministic;
maze layouts are perfect and held out; CartPole contexts change the physics; configs instantiate."""

from __future__ import annotations

import math
import pickle
from collections import deque
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from llmrl_bench import registry
from llmrl_bench.envs import (
    CARTPOLE_CONTEXTS,
    EVAL_SEED_OFFSET,
    TRAIN,
    CartPolePhysicsEnv,
    CartPoleSuite,
    EnvSuite,
    HeldOutSeeds,
    MazeEnv,
    MazeSuite,
    MiniGridSuite,
    TrainingSeeds,
    generate_maze_layout,
    maze_layouts,
    shortest_solution,
)
from llmrl_bench.envs.maze import (
    DEFAULT_REWARD_THRESHOLD,
    HELD_OUT,
    STEP_PENALTY_REWARD_THRESHOLD,
    MazeLayout,
    held_out_maze_keys,
    layout_optimal_return,
)
from llmrl_bench.envs.maze_solver import CARDINAL_HEADINGS, HEADING_VECTORS, optimal_return
from llmrl_bench.cli import check_command_line
from llmrl_bench.errors import ConfigError
from llmrl_bench.representations.vector import VectorRepresentation
from tests.conftest import run_cli

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
ENV_OPTIONS = sorted(path.stem for path in (CONF_DIR / "env").glob("*.yaml"))
OUR_IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("LLMRL-"))
MAZE_SIZES = (7, 9, 11)

NOT_UNWRAPPED = "ignore:.*different from the unwrapped version"
INFINITE_BOX = "ignore:.*Box observation space (minimum|maximum) value is"  # Gymnasium's own CartPole space


def compose_env(option: str, *overrides: str):
    store = ConfigStore.instance()
    for name, schema in registry.schemas("env").items():
        store.store(group="env", name=f"{name}_schema", node=schema)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(overrides=[f"+env={option}", *overrides]).env


SUITES: dict[str, EnvSuite] = {option: instantiate(compose_env(option)) for option in ENV_OPTIONS}
SUITES["maze_step_penalty"] = MazeSuite(reward="step_penalty")
SUITES["maze_cardinal"] = MazeSuite(actions="cardinal", reward="step_penalty")
SUITES["maze_fresh_layouts"] = MazeSuite(train_sizes=[7, 9], num_train_layouts="inf")
SUITES["maze_full_view"] = MazeSuite(view="full")
SUITE_CONTEXTS = [(name, context) for name, suite in SUITES.items() for context in [TRAIN, *suite.held_out_contexts]]


def rollout(env: gym.Env, seed: int, steps: int) -> list:
    """Observations, rewards and flags of ``steps`` random steps, resetting (unseeded) at episode ends."""
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        trace.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append(obs)
    return trace


def assert_same_trace(first: list, second: list) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert gym.utils.env_checker.data_equivalence(a, b, exact=True), (a, b)


# ---- registered ids -------------------------------------------------------------------------


def test_our_ids_are_registered_on_import():
    expected = {"LLMRL-Maze-v0", "LLMRL-Maze-7x7-v0", "LLMRL-Maze-9x9-v0", "LLMRL-Maze-11x11-v0"}
    expected |= {f"LLMRL-Maze-HeldOut-{n}x{n}-v0" for n in MAZE_SIZES}
    expected |= {env_id for env_id, _ in CARTPOLE_CONTEXTS.values()}
    assert expected <= set(OUR_IDS)


@pytest.mark.filterwarnings(INFINITE_BOX)
@pytest.mark.parametrize("env_id", OUR_IDS)
def test_registered_id_passes_check_env(env_id):
    spec = gym.spec(env_id)
    assert spec.max_episode_steps is not None and spec.reward_threshold is not None
    check_env(gym.make(env_id).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", OUR_IDS)
def test_registered_id_is_deterministic(env_id):
    assert_same_trace(rollout(gym.make(env_id), 7, 300), rollout(gym.make(env_id), 7, 300))


# ---- suites and their contexts --------------------------------------------------------------


@pytest.mark.filterwarnings(NOT_UNWRAPPED, INFINITE_BOX)
@pytest.mark.parametrize("name,context", SUITE_CONTEXTS)
def test_suite_context_passes_check_env(name, context):
    check_env(SUITES[name].make(context), skip_render_check=True)


@pytest.mark.parametrize("name,context", SUITE_CONTEXTS)
def test_suite_context_is_deterministic(name, context):
    suite = SUITES[name]
    first = rollout(suite.make(context), EVAL_SEED_OFFSET, 300)
    assert_same_trace(first, rollout(suite.make(context), EVAL_SEED_OFFSET, 300))
    assert_same_trace(first, rollout(pickle.loads(pickle.dumps(suite.make(context))), EVAL_SEED_OFFSET, 300))


@pytest.mark.parametrize("name", list(SUITES))
def test_suite_declares_its_interface(name):
    suite = pickle.loads(pickle.dumps(SUITES[name]))
    low, high = suite.score_range
    assert low < high and low < suite.reward_threshold <= high
    assert suite.family in ("classic_control", "minigrid")
    assert suite.held_out_contexts and TRAIN not in suite.held_out_contexts
    env = suite.make(TRAIN)
    assert suite.max_episode_steps == (env.spec.max_episode_steps or env.unwrapped.max_steps)
    with pytest.raises(ValueError):
        suite.make("no_such_context")


@pytest.mark.parametrize("option", ENV_OPTIONS)
def test_env_option_instantiates_suite_named_after_option(option):
    suite = SUITES[option]
    assert isinstance(suite, EnvSuite) and suite.name == option


def test_env_config_rejects_wrong_values():
    with pytest.raises(ConfigCompositionException):
        compose_env("maze", "env.reward=no_such_reward")
    with pytest.raises(ConfigCompositionException):
        compose_env("maze", "env.no_such_field=1")
    with pytest.raises(ConfigCompositionException):
        compose_env("maze", "env.actions=diagonal")
    with pytest.raises(ConfigCompositionException):
        compose_env("maze", "env.view=panoramic")


@pytest.mark.parametrize("env_class", [MazeEnv, CartPolePhysicsEnv])
def test_env_docstring_follows_minigrid_template(env_class):
    sections = ["## Description", "## Action Space", "## Observation", "## Rewards", "## Termination", "## Registered Configurations"]
    positions = [env_class.__doc__.index(section) for section in sections]
    assert positions == sorted(positions)


# ---- maze generator -------------------------------------------------------------------------


def all_layouts(size: int) -> list[MazeLayout]:
    return [*maze_layouts(size, TRAIN, 32, 16), *maze_layouts(size, HELD_OUT, 32, 16)]


@pytest.mark.parametrize("size", MAZE_SIZES)
def test_held_out_mazes_never_occur_in_training(size):
    train = maze_layouts(size, TRAIN, 32, 16)
    held_out = maze_layouts(size, HELD_OUT, 32, 16)
    assert (len(train), len(held_out)) == (32, 16)
    assert len({layout.maze_key for layout in train}) == 32
    assert len({layout.maze_key for layout in held_out}) == 16
    assert not {layout.maze_key for layout in train} & {layout.maze_key for layout in held_out}
    assert not {layout.walls for layout in train} & {layout.walls for layout in held_out}


def test_generator_skips_held_out_candidates_equal_to_training_mazes():
    # A 3x3 maze has 2x2 cells, hence only 4 distinct mazes: the held-out candidates must collide.
    train = maze_layouts(3, TRAIN, 2, 2)
    held_out = maze_layouts(3, HELD_OUT, 2, 2)
    candidates = [generate_maze_layout(3, seed) for seed in range(1_000_000, 1_000_050)]
    assert any(candidate.maze_key in {layout.maze_key for layout in train} for candidate in candidates)
    assert {layout.maze_key for layout in train + held_out} == {candidate.maze_key for candidate in candidates}
    with pytest.raises(ValueError):
        maze_layouts(3, HELD_OUT, 2, 3)


@pytest.mark.parametrize("size", MAZE_SIZES)
def test_every_maze_is_perfect_with_a_reachable_goal(size):
    cells_per_side = (size + 1) // 2
    for layout in all_layouts(size):
        walls = layout.wall_grid
        assert walls.shape == (size + 2, size + 2)
        assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
        cells = [(x, y) for y in range(1, size + 1, 2) for x in range(1, size + 1, 2)]
        assert len(cells) == cells_per_side**2 and not any(walls[y, x] for x, y in cells)
        open_cells = {(x, y) for y, x in zip(*np.nonzero(~walls))}
        passages = open_cells - set(cells)
        assert len(passages) == len(cells) - 1  # a connected graph with one edge fewer than nodes is a tree
        seen, frontier = {layout.start}, deque([layout.start])
        while frontier:
            x, y = frontier.popleft()
            for neighbour in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if neighbour in open_cells and neighbour not in seen:
                    seen.add(neighbour)
                    frontier.append(neighbour)
        assert seen == open_cells
        assert layout.start in cells and layout.goal in cells and layout.start != layout.goal
        assert 0 <= layout.start_dir < 4


def test_layout_is_a_pure_function_of_size_and_seed():
    assert generate_maze_layout(9, 5) == generate_maze_layout(9, 5)
    assert generate_maze_layout(9, 5).walls != generate_maze_layout(9, 6).walls
    assert generate_maze_layout(7, 5).size == 7
    with pytest.raises(ValueError):
        generate_maze_layout(8, 0)


# ---- maze env -------------------------------------------------------------------------------


def test_maze_reset_builds_the_chosen_layout():
    env = MazeEnv(sizes=(7, 9))
    assert [layout.size for layout in env.layouts[:4]] == [7, 9, 7, 9]  # sizes interleave
    for seed in (0, 5, EVAL_SEED_OFFSET + 3):
        _, info = env.reset(seed=seed)
        layout = env.layouts[seed % len(env.layouts)]
        assert info["layout_index"] == seed % len(env.layouts) and info["maze_size"] == layout.size
        grid_walls = np.array([[cell is not None and cell.type == "wall" for cell in env.grid.grid]]).reshape(layout.wall_grid.shape)
        assert (grid_walls == layout.wall_grid).all()
        assert tuple(env.agent_pos) == layout.start and env.agent_dir == layout.start_dir
        assert env.grid.get(*layout.goal).type == "goal"
        assert env.max_steps == 4 * layout.size**2
    env.reset(options={"layout_index": 9})
    assert env.layout_index == 9


def test_training_env_draws_every_layout_and_eval_seeds_cover_them():
    suite = SUITES["maze"]
    env = suite.make(TRAIN).unwrapped
    env.reset(seed=0)
    count = suite.num_train_layouts * len(suite.train_sizes)
    drawn = {env.reset()[1]["layout_index"] for _ in range(20 * count)}
    assert drawn == set(range(count))
    by_eval_seed = {env.reset(seed=EVAL_SEED_OFFSET + i)[1]["layout_index"] for i in range(count)}
    assert by_eval_seed == set(range(count))


@pytest.mark.parametrize("actions, expected", [("navigation", 3), ("all", 7)])
def test_maze_action_space(actions, expected):
    env = MazeSuite(actions=actions).make(TRAIN)
    assert env.action_space.n == expected
    env.reset(seed=0)
    start = tuple(env.unwrapped.agent_pos), env.unwrapped.agent_dir
    env.step(1)  # turn right: same cell, next heading
    assert (tuple(env.unwrapped.agent_pos), env.unwrapped.agent_dir) == (start[0], (start[1] + 1) % 4)


@pytest.mark.parametrize("context", ["held_out_7x7", "held_out_9x9", "held_out_11x11"])
def test_held_out_context_only_plays_held_out_layouts(context):
    suite = SUITES["maze"]
    size = int(context.split("_")[-1].split("x")[0])
    training_mazes = {layout.maze_key for layout in maze_layouts(size, TRAIN, 32, 16)}
    env = suite.make(context).unwrapped
    played = {env.reset(seed=EVAL_SEED_OFFSET + i)[1]["layout_seed"] for i in range(16)}
    played |= {env.reset()[1]["layout_seed"] for _ in range(50)}
    assert played == {layout.layout_seed for layout in maze_layouts(size, HELD_OUT, 32, 16)}
    assert not {layout.maze_key for layout in suite.layouts(context)} & training_mazes


@pytest.mark.parametrize("reward", ["default", "step_penalty"])
def test_shortest_solution_earns_the_documented_return(reward):
    env = gym.make("LLMRL-Maze-9x9-v0", reward=reward)
    for seed in range(4):
        env.reset(seed=seed)
        actions = shortest_solution(env.unwrapped.layout)
        rewards = [env.step(action)[1] for action in actions]
        assert env.unwrapped.agent_pos == env.unwrapped.layout.goal
        expected = 1 - 0.9 * len(actions) / (4 * 81) if reward == "default" else 1 - (len(actions) - 1)
        assert sum(rewards) == pytest.approx(expected)


def test_maze_timeout_and_score_ranges():
    env = gym.make("LLMRL-Maze-7x7-v0", reward="step_penalty")
    env.reset(seed=0)
    returns, steps, done = 0.0, 0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(0)  # turning in place never reaches the goal
        returns, steps, done = returns + reward, steps + 1, terminated or truncated
    assert (steps, returns, truncated) == (196, -196.0, True)
    assert MazeSuite(reward="step_penalty").score_range == (-484.0, 1.0)
    assert MazeSuite().score_range == (0.0, 1.0)
    assert MazeSuite(reward="step_penalty").recommended_gamma == 0.9 == MazeEnv.recommended_gamma


@pytest.mark.parametrize("reward,threshold", [("default", DEFAULT_REWARD_THRESHOLD), ("step_penalty", STEP_PENALTY_REWARD_THRESHOLD)])
def test_maze_threshold_is_below_the_optimal_training_return(reward, threshold):
    suite = MazeSuite(reward=reward)
    assert suite.reward_threshold == threshold
    optimal = []
    for layout in suite.layouts(TRAIN):
        length = len(shortest_solution(layout))
        optimal.append(1 - 0.9 * length / (4 * layout.size**2) if reward == "default" else 2 - length)
    assert threshold < np.mean(optimal)


# ---- standard MiniGrid ids ------------------------------------------------------------------


class SeedRecorder(gym.Env):
    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(1)

    def __init__(self):
        self.seeds = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seeds.append(seed)
        return 0, {}


def test_training_and_held_out_seed_ranges_are_disjoint():
    train = TrainingSeeds(SeedRecorder())
    train.reset(seed=0)
    for _ in range(200):
        train.reset()
    for i in range(20):
        train.reset(seed=EVAL_SEED_OFFSET + i)
    assert all(0 <= seed < EVAL_SEED_OFFSET for seed in train.unwrapped.seeds)
    assert len(set(train.unwrapped.seeds)) == len(train.unwrapped.seeds)

    held_out = HeldOutSeeds(SeedRecorder())
    for i in range(5):
        held_out.reset(seed=EVAL_SEED_OFFSET + i)
    held_out.reset()
    assert held_out.unwrapped.seeds == [2 * EVAL_SEED_OFFSET + i for i in range(5)] + [2 * EVAL_SEED_OFFSET + 5]


@pytest.mark.parametrize(
    "option,larger_width",
    [("MiniGrid-Empty-5x5-v0", 6), ("MiniGrid-Empty-Random-5x5-v0", 6), ("MiniGrid-DoorKey-5x5-v0", 6), ("MiniGrid-FourRooms-v0", None)],
)
def test_minigrid_contexts(option, larger_width):
    suite = SUITES[option]
    assert isinstance(suite, MiniGridSuite) and suite.gym_id == option
    assert suite.score_range == (0.0, 1.0)
    assert suite.make(TRAIN).unwrapped.width == suite.make("held_out_seeds").unwrapped.width
    if larger_width is None:
        assert suite.held_out_contexts == ["held_out_seeds"]
    else:
        assert suite.make("larger_size").unwrapped.width == larger_width
    assert suite.make(TRAIN).unwrapped.agent_view_size == 7


# ---- CartPole -------------------------------------------------------------------------------


PHYSICS = ("gravity", "masspole", "length", "force_mag")


@pytest.mark.parametrize("context", list(CARTPOLE_CONTEXTS))
def test_cartpole_context_changes_the_physics(context):
    suite = SUITES["cartpole"]
    train, held_out = suite.make(TRAIN).unwrapped, suite.make(context).unwrapped
    changed = {name for name in PHYSICS if getattr(train, name) != getattr(held_out, name)}
    assert changed == set(CARTPOLE_CONTEXTS[context][1]) and changed
    assert held_out.total_mass == pytest.approx(held_out.masspole + held_out.masscart)
    assert held_out.polemass_length == pytest.approx(held_out.masspole * held_out.length)
    # The same state and action lead to a different next state.
    next_states = []
    for env in (train, held_out):
        env.reset(seed=0)
        env.state = np.array([0.0, 0.1, math.radians(5.0), -0.2])
        next_states.append(env.step(1)[0])
    assert not np.allclose(*next_states)


def test_cartpole_train_is_gymnasium_cartpole():
    suite = SUITES["cartpole"]
    assert (suite.gym_id, suite.score_range, suite.reward_threshold, suite.max_episode_steps) == ("CartPole-v1", (0.0, 500.0), 475.0, 500)
    assert suite.make(TRAIN).spec.id == "CartPole-v1"
    assert set(suite.held_out_contexts) >= {"long_pole", "heavy_pole", "high_gravity", "weak_force"}
    with pytest.raises(ValueError):
        CartPoleSuite(held_out_contexts=["no_such_context"])


def test_cartpole_make_vec_is_numpy_vectorised_with_next_step_autoreset():
    envs = SUITES["cartpole"].make_native_vec(4)
    assert type(envs.unwrapped).__name__ == "CartPoleVectorEnv"
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    envs.reset(seed=0)
    done = np.zeros(4, dtype=bool)
    for _ in range(200):
        obs, reward, terminated, truncated, _ = envs.step(np.zeros(4, dtype=np.int64))  # always left: falls fast
        assert (reward[done] == 0).all() and not terminated[done].any()  # the step after an end only resets
        assert (reward[~done] == 1).all()
        done = terminated | truncated
    assert obs.shape == (4, 4)


@pytest.mark.parametrize("sizes, split", [((7,), TRAIN), ((9, 11), HELD_OUT)])
def test_cached_maze_observations_equal_rendered_ones(sizes, split):
    """The observation memo returns exactly what MiniGrid renders, on long random walks."""
    cached = MazeEnv(sizes=sizes, split=split)
    rendered = MazeEnv(sizes=sizes, split=split, cache_observations=False)
    rng = np.random.default_rng(0)
    for episode in range(6):
        obs_cached, _ = cached.reset(seed=episode)
        obs_rendered, _ = rendered.reset(seed=episode)
        for action in rng.integers(0, 3, size=150):
            np.testing.assert_array_equal(obs_cached["image"], obs_rendered["image"])
            assert obs_cached["direction"] == obs_rendered["direction"]
            obs_cached, reward_cached, done_cached, _, _ = cached.step(int(action))
            obs_rendered, reward_rendered, done_rendered, _, _ = rendered.step(int(action))
            assert (reward_cached, done_cached) == (reward_rendered, done_rendered)
            if done_cached:
                break


def distinct_vector_observations(suite: MazeSuite) -> tuple[int, int]:
    """``(states, distinct vector observations)`` over every non-goal (layout, open cell, heading) of the training layouts."""
    env = VectorRepresentation().wrap(suite.make(TRAIN), suite)
    base, seen, states = env.unwrapped, set(), 0
    wrappers, inner = [], env
    while inner is not base:
        wrappers.insert(0, inner) if isinstance(inner, gym.ObservationWrapper) else None
        inner = inner.env
    for index, layout in enumerate(suite.layouts(TRAIN)):
        env.reset(options={"layout_index": index})
        for y in range(base.height):
            for x in range(base.width):
                if base.grid.get(x, y) is not None:  # a wall or the goal
                    continue
                for heading in range(4):
                    base.agent_pos, base.agent_dir = (x, y), heading
                    observation = base.gen_obs()
                    for wrapper in wrappers:  # innermost first
                        observation = wrapper.observation(observation)
                    seen.add(observation.tobytes())
                    states += 1
    return states, len(seen)


def test_full_view_is_markov_where_the_egocentric_view_aliases():
    """env.view=full gives every (layout, cell, heading) its own observation; the default view does not."""
    states, distinct = distinct_vector_observations(MazeSuite(view="full"))
    assert distinct == states
    states, distinct = distinct_vector_observations(MazeSuite())
    assert distinct < 0.75 * states  # the default view aliases across layouts (docs/agents.md: 2,402 of 3,840)


def test_full_view_keeps_one_observation_shape_in_every_context():
    suite = MazeSuite(view="full")
    shapes = {context: suite.make(context).reset(seed=0)[0]["image"].shape for context in [TRAIN, *suite.held_out_contexts]}
    assert set(shapes.values()) == {(13, 13, 3)}, shapes  # the 11x11 maze's grid, smaller ones padded with walls
    vector = VectorRepresentation().wrap(suite.make(TRAIN), suite)
    assert vector.observation_space.contains(vector.reset(seed=0)[0])


# ---- ceilings -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["maze", "maze_step_penalty", "maze_cardinal", "maze_fresh_layouts"])
def test_maze_ceiling_is_the_optimum_of_the_layout_each_seed_loads(name):
    suite = SUITES[name]
    for context in [TRAIN, *suite.held_out_contexts]:
        env = suite.make(context)
        for seed in (0, 5, EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + 7):
            env.reset(seed=seed)
            layout = env.unwrapped.layout
            assert suite.layout_at_reset(context, seed) == layout
            expected = optimal_return(layout, suite.actions, suite.reward, env.unwrapped.max_steps)
            assert suite.optimal_return(context, seed) == expected
        ceilings = suite.optimal_returns(context)
        if context == TRAIN and suite.num_train_layouts == math.inf:
            assert ceilings is None
        else:
            assert list(ceilings) == [suite.optimal_return(context, k) for k in range(len(suite.layouts(context)))]
            assert (suite.score_range[0] < ceilings).all() and (ceilings <= suite.score_range[1]).all()


def test_maze_ceilings_are_those_of_shortest_solutions():
    suite = SUITES["maze"]
    for layout, ceiling in zip(suite.layouts("held_out_9x9"), suite.optimal_returns("held_out_9x9")):
        assert ceiling == 1 - 0.9 * (len(shortest_solution(layout)) / (4 * 81))
    assert layout_optimal_return(layout, "all", "default", 4) == ceiling  # the 4 extra actions never help


def test_other_suites_declare_their_ceilings():
    assert SUITES["cartpole"].optimal_return("long_pole", 3) == 500.0
    assert SUITES["cartpole"].optimal_returns(TRAIN) is None
    with pytest.raises(ValueError):
        SUITES["cartpole"].optimal_return("no_such_context", 0)
    assert SUITES["MiniGrid-Empty-Random-5x5-v0"].optimal_return(TRAIN, 0) < 1.0  # exact: walls and a goal
    assert SUITES["MiniGrid-DoorKey-5x5-v0"].optimal_return(TRAIN, 0) == 1.0  # the documented maximum


# ---- cardinal actions -----------------------------------------------------------------------


def test_cardinal_actions_move_in_compass_directions():
    env = MazeSuite(actions="cardinal").make(TRAIN).unwrapped
    assert env.action_space.n == 4
    rng = np.random.default_rng(0)
    env.reset(seed=2)
    for action in rng.integers(0, 4, size=300):
        before = tuple(env.agent_pos)
        heading = CARDINAL_HEADINGS[action]
        dx, dy = HEADING_VECTORS[heading]
        blocked = env.layout.wall_grid[before[1] + dy, before[0] + dx]
        _, _, terminated, _, _ = env.step(int(action))
        assert env.agent_dir == heading  # the view faces the way it moved
        assert tuple(env.agent_pos) == (before if blocked else (before[0] + dx, before[1] + dy))
        if terminated:
            env.reset()
    assert [HEADING_VECTORS[CARDINAL_HEADINGS[a]] for a in range(4)] == [(0, -1), (0, 1), (-1, 0), (1, 0)]  # up, down, left, right


# ---- number of training layouts -------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 8, 100])
def test_finite_layout_counts_extend_one_sequence(count):
    train = maze_layouts(7, TRAIN, count, 16)
    assert len(train) == count == len({layout.maze_key for layout in train})
    assert train[: min(count, 32)] == maze_layouts(7, TRAIN, 32, 16)[: min(count, 32)]
    held_out = maze_layouts(7, HELD_OUT, count, 16)
    assert not {layout.maze_key for layout in train} & {layout.maze_key for layout in held_out}


def test_fresh_layouts_are_new_every_episode_and_never_held_out():
    suite = SUITES["maze_fresh_layouts"]
    env = suite.make(TRAIN).unwrapped
    env.reset(seed=0)
    played = [env.reset()[1] for _ in range(400)]
    assert {info["maze_size"] for info in played} == {7, 9} and all(info["layout_index"] == -1 for info in played)
    assert len({(info["maze_size"], info["layout_seed"]) for info in played}) >= 395
    held_out = {layout.maze_key for context in suite.held_out_contexts for layout in suite.layouts(context)}
    assert held_out == held_out_maze_keys(7, 16) | held_out_maze_keys(9, 16) | held_out_maze_keys(11, 16)
    assert not {generate_maze_layout(info["maze_size"], info["layout_seed"]).maze_key for info in played} & held_out
    with pytest.raises(ValueError):
        env.reset(options={"layout_index": 0})


def test_fresh_layouts_reject_held_out_mazes_by_construction():
    # 3x3 mazes come in 4 shapes and 2 are held out: about half the draws hit one and must be redrawn.
    suite = MazeSuite(train_sizes=[3], held_out_sizes=[3], num_train_layouts="inf", num_held_out_layouts=2)
    held_out = {layout.maze_key for layout in suite.layouts("held_out_3x3")}
    env = suite.make(TRAIN).unwrapped
    env.reset(seed=0)
    trained = set()
    for _ in range(200):
        env.reset()
        trained.add(env.layout.maze_key)
    assert len(held_out) == 2 and len(trained) == 2 and not trained & held_out


@pytest.mark.parametrize("value", [0, -3, "many", 2.5, True, None])
def test_bad_layout_counts_fail_in_one_line(make_config, value):
    cfg = make_config("env=maze", f"env.num_train_layouts={'null' if value is None else value}")
    with pytest.raises(ConfigError) as error:
        MazeSuite.check_config(cfg)
    message = str(error.value)
    assert "\n" not in message and message.startswith("env.num_train_layouts=") and "allowed: a positive integer, or inf" in message
    with pytest.raises(ValueError, match="^num_train_layouts="):
        MazeSuite(num_train_layouts=value)


@pytest.mark.parametrize(
    "override, key",
    [("env.train_sizes=[8]", "train_sizes"), ("env.held_out_sizes=[]", "held_out_sizes"), ("env.num_held_out_layouts=0", "num_held_out_layouts"),
     ("env.max_steps_factor=0", "max_steps_factor"), ("env.train_sizes=[3]", "num_train_layouts")],
)
def test_bad_maze_settings_fail_in_one_line(make_config, override, key):
    with pytest.raises(ConfigError, match=f"^env.{key}="):
        MazeSuite.check_config(make_config("env=maze", override))


@pytest.mark.parametrize("value, expected", [("1", 1), ("2048", 2048), ("inf", math.inf)])
def test_good_layout_counts_pass(make_config, value, expected):
    cfg = make_config("env=maze", f"env.num_train_layouts={value}")
    MazeSuite.check_config(cfg)
    assert instantiate(cfg.env).num_train_layouts == expected


# ---- recommended discount -------------------------------------------------------------------


@pytest.mark.parametrize("agent", ["q_learning", "dqn", "ppo", "reinforce", "llm_pg"])
def test_step_penalty_sets_the_agents_gamma_unless_the_user_does(make_config, agent):
    default = make_config(f"agent={agent}", "env=maze").agent.gamma
    assert default != 0.9 or agent in ("q_learning", "dqn")  # the maze's Q-learning and DQN are tuned at 0.9 anyway
    assert make_config(f"agent={agent}", "env=maze", "env.reward=step_penalty").agent.gamma == 0.9
    assert make_config(f"agent={agent}", "env=maze", "env.reward=step_penalty", "agent.gamma=0.95").agent.gamma == 0.95
    assert make_config(f"agent={agent}", "env=cartpole").agent.gamma != 0.9


def test_maze_experiments_pass_the_cli_check():
    assert check_command_line(["-m", "experiment=maze_levels"])[1] == 30  # 6 layout counts x 5 seeds
    assert check_command_line(["-m", "experiment=seed_maze"])[1] == 5


def test_cli_rejects_a_bad_maze_view_in_one_line_with_exit_2(tmp_path):
    result = run_cli("env.view=panoramic", f"results_dir={tmp_path}", "logger=none")
    assert result.returncode == 2 and not any(tmp_path.iterdir())
    assert result.stderr.count("\n") == 1 and "panoramic" in result.stderr and "egocentric" in result.stderr


@pytest.mark.parametrize("value", ["0", "many"])
def test_cli_rejects_a_bad_layout_count_in_one_line_with_exit_2(tmp_path, value):
    result = run_cli(f"env.num_train_layouts={value}", f"results_dir={tmp_path}", "logger=none")
    assert result.returncode == 2 and not any(tmp_path.iterdir())
    assert result.stderr.count("\n") == 1 and "env.num_train_layouts=" in result.stderr and "allowed: a positive integer, or inf" in result.stderr
