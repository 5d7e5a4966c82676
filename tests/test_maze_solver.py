"""The maze solver against brute force on the real Gymnasium env, and tabular Q-learning against its Q*.

Brute force here never uses the solver's model of the maze: it copies the real env and steps it.
"""

from __future__ import annotations

import copy
from collections import deque

import numpy as np
import pytest
from hydra.utils import instantiate

from llmrl_bench.envs import TRAIN, MazeEnv, MazeSuite, MiniGridSuite, generate_maze_layout
from llmrl_bench.envs.maze_solver import NUM_ACTIONS, episode_return, optimal_q_values, optimal_return, search, shortest_actions
from llmrl_bench.runner import RunEnvs, build_agent

ACTION_SETS = ("navigation", "all", "cardinal")
REWARDS = ("default", "step_penalty")
GAMMA = 0.9


def place(env, state) -> None:
    """Put the raw maze env's agent in ``state`` = (x, y, heading)."""
    raw = env.unwrapped
    raw.agent_pos, raw.agent_dir = (state[0], state[1]), state[2]


def clone(env):
    """A deep copy of ``env`` sharing what moving never changes here (the grid of walls and goal, the layout tables)."""
    raw = env.unwrapped
    shared = [raw.grid, getattr(raw, "layouts", None), getattr(raw, "_wall_cells", None)]
    return copy.deepcopy(env, {id(thing): thing for thing in shared if thing is not None})


def best_return_by_exhaustive_search(env, depth: int) -> float | None:
    """The best return over every action sequence of at most ``depth`` steps, each played on a copy of the real env."""
    best = None

    def explore(node, total: float, steps_left: int) -> None:
        nonlocal best
        for action in range(env.action_space.n):
            child = clone(node)
            _, reward, terminated, truncated, _ = child.step(action)
            if terminated:
                best = total + reward if best is None else max(best, total + reward)
            elif steps_left > 1 and not truncated:
                explore(child, total + reward, steps_left - 1)

    explore(env, 0.0, depth)
    return best


def best_return_by_simulated_breadth_first_search(env) -> float:
    """Breadth-first search whose transitions are steps of copies of the real env (states: agent cell and heading)."""
    frontier = deque([(env, 0.0)])
    seen = {(tuple(env.unwrapped.agent_pos), env.unwrapped.agent_dir)}
    while frontier:
        node, total = frontier.popleft()
        for action in range(env.action_space.n):
            child = clone(node)
            _, reward, terminated, truncated, _ = child.step(action)
            if terminated:
                return total + reward  # breadth first: the first goal is a shortest path
            state = (tuple(child.unwrapped.agent_pos), child.unwrapped.agent_dir)
            if not truncated and state not in seen:
                seen.add(state)
                frontier.append((child, total + reward))
    return total


@pytest.mark.parametrize("actions,reward", [("navigation", "default"), ("cardinal", "step_penalty"), ("cardinal", "default")])
def test_optimal_return_equals_exhaustive_search_on_3x3_mazes(actions, reward):
    suite = MazeSuite(train_sizes=[3], held_out_sizes=[3], num_train_layouts=2, num_held_out_layouts=2, actions=actions, reward=reward)
    for seed in range(2):
        env = suite.make(TRAIN)
        env.reset(seed=seed)
        length = len(shortest_actions(env.unwrapped.layout, actions))
        assert best_return_by_exhaustive_search(env, length - 1) is None  # nothing shorter reaches the goal
        assert best_return_by_exhaustive_search(env, length) == suite.optimal_return(TRAIN, seed)  # longer paths earn less


@pytest.mark.parametrize("actions", ACTION_SETS)
@pytest.mark.parametrize("reward", REWARDS)
def test_optimal_return_equals_simulated_search_of_the_gym_env(actions, reward):
    suite = MazeSuite(train_sizes=[5, 7], held_out_sizes=[9], actions=actions, reward=reward)
    for context, seeds in ((TRAIN, range(4)), ("held_out_9x9", range(2))):
        for seed in seeds:
            env = suite.make(context)
            env.reset(seed=seed)
            assert best_return_by_simulated_breadth_first_search(env) == suite.optimal_return(context, seed)


@pytest.mark.parametrize("reward", REWARDS)
def test_optimal_return_respects_the_time_limit(reward):
    env = MazeEnv(sizes=(7,), reward=reward)
    env.reset(seed=0)
    layout = env.unwrapped.layout
    solution = shortest_actions(layout)
    env.max_steps = len(solution) - 1  # one step too few
    total, truncated = 0.0, False
    for action in solution[: env.max_steps]:
        _, reward_, _, truncated, _ = env.step(action)
        total += reward_
    assert truncated and total == optimal_return(layout, "navigation", reward, env.max_steps)
    assert optimal_return(layout, "navigation", reward, len(solution)) == episode_return(len(solution), reward, len(solution)) > total


def test_minigrid_ceilings_are_exact_for_walls_and_a_goal_and_the_bound_otherwise():
    empty = MiniGridSuite("MiniGrid-Empty-5x5-v0", "MiniGrid-Empty-5x5-v0", 0.9)
    assert empty.optimal_return("held_out_seeds", 0) == pytest.approx(1 - 0.9 * 5 / 100)  # 2 forward, turn, 2 forward
    four_rooms = MiniGridSuite("MiniGrid-FourRooms-v0", "MiniGrid-FourRooms-v0", 0.5)
    for seed in range(2):
        env = four_rooms.make("held_out_seeds")
        env.reset(seed=seed)
        assert four_rooms.optimal_return("held_out_seeds", seed) == best_return_by_simulated_breadth_first_search(env)
    door_key = MiniGridSuite("MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-5x5-v0", 0.9)
    assert door_key.optimal_return(TRAIN, 0) == 1.0


@pytest.mark.parametrize("actions", ACTION_SETS)
def test_value_iteration_satisfies_the_bellman_equation_of_the_gym_env(actions):
    env = MazeEnv(sizes=(7,), reward="step_penalty", actions=actions)
    env.reset(seed=3)
    layout = env.layout
    q_star = optimal_q_values(layout, actions, GAMMA)
    assert set(q_star) >= {state for state in search(layout, actions) if state[:2] != layout.goal}
    for state, values in q_star.items():
        for action in range(NUM_ACTIONS[actions]):
            place(env, state)
            env.step_count = 0
            _, reward, terminated, _, _ = env.step(action)
            successor = (*env.agent_pos, env.agent_dir)
            target = reward + (0.0 if terminated else GAMMA * q_star[successor].max())
            assert values[action] == pytest.approx(target, abs=1e-9)
    # The greedy policy of Q* is a shortest path.
    env.reset(seed=3)
    steps, terminated = 0, False
    while not terminated:
        _, _, terminated, _, _ = env.step(int(np.argmax(q_star[(*env.agent_pos, env.agent_dir)])))
        steps += 1
    assert steps == len(shortest_actions(layout, actions))


def test_shortest_actions_finds_none_when_the_goal_is_walled_in():
    layout = generate_maze_layout(5, 0)
    walls = layout.wall_grid.copy()
    x, y = layout.goal
    walls[y - 1 : y + 2, x - 1 : x + 2] = True
    walls[y, x] = False
    blocked = type("Task", (), {"wall_grid": walls, "start": layout.start, "start_dir": layout.start_dir, "goal": layout.goal})()
    assert shortest_actions(blocked) is None
    assert optimal_return(blocked, "navigation", "step_penalty", 100) == -100.0


class SilentHooks:
    def on_step(self, global_step):
        pass

    def on_episode(self, global_step, episodic_return, episodic_length):
        pass

    def log(self, global_step, values):
        pass

    def checkpoint_point(self, global_step):
        pass


def test_q_learning_converges_to_the_solvers_q_star_on_the_seed_maze(make_config):
    """``experiment=seed_maze`` (cardinal moves, step_penalty, gamma 0.9, one layout): Q-learning's table is Q*."""
    cfg = make_config("experiment=seed_maze")
    assert cfg.agent.gamma == GAMMA  # the env's recommended_gamma, through the config
    suite, representation = instantiate(cfg.env), instantiate(cfg.repr)
    envs = RunEnvs(suite, representation)
    agent = build_agent(cfg.agent, envs, seed=0)
    agent.learn(envs, cfg.budget.env_steps, SilentHooks())

    env = envs.make()
    env.reset(seed=0)
    layout = env.unwrapped.layout
    q_star = optimal_q_values(layout, suite.actions, GAMMA)
    reachable = [state for state in search(layout, suite.actions) if state[:2] != layout.goal]
    errors = []
    for state in reachable:
        place(env, state)
        key = agent.state_key(env.observation(env.unwrapped.gen_obs()))
        errors.append(np.abs(agent.table[key] - q_star[state]).max())
    assert max(errors) <= 1e-3

    observation, _ = env.reset(seed=0)
    total, done = 0.0, False
    while not done:
        observation, reward, terminated, truncated, _ = env.step(int(agent.act(observation[None])[0]))
        total, done = total + reward, terminated or truncated
    assert total == suite.optimal_return(TRAIN, 0) == 2 - len(shortest_actions(layout, "cardinal"))


def test_results_record_the_mean_ceiling_of_the_episodes_each_split_was_evaluated_on():
    from llmrl_bench.envs import CartPoleSuite
    from llmrl_bench.envs.base import EVAL_SEED_OFFSET
    from llmrl_bench.evaluation import mean_optimal_return

    suite = MazeSuite(train_sizes=[5], held_out_sizes=[7], num_train_layouts=4, num_held_out_layouts=3)
    for context, episodes in ((TRAIN, 6), ("held_out_7x7", 5)):
        ceilings = []
        for i in range(episodes):
            env = suite.make(context)
            env.reset(seed=EVAL_SEED_OFFSET + i)
            ceilings.append(best_return_by_simulated_breadth_first_search(env))
        assert mean_optimal_return(suite, context, episodes) == pytest.approx(np.mean(ceilings))
    assert mean_optimal_return(CartPoleSuite(), TRAIN, 3) == 500.0  # every step earns 1, 500 steps at most
