"""Exact optima of grid navigation tasks: the maze's layouts, and MiniGrid grids of walls and a goal.

A task is a wall grid, a start cell and heading, and a goal cell (:class:`GridTask`; a
``MazeLayout`` is one). The agent's state is ``(x, y, heading)``, headings numbered as MiniGrid
does (0 east, 1 south, 2 west, 3 north; x grows east, y south). Action sets:

- ``navigation``: 0 turn left, 1 turn right, 2 forward (MiniGrid's first three actions);
- ``all``: MiniGrid's seven; 3-6 (pick up, drop, toggle, done) change nothing in a grid of walls;
- ``cardinal``: 0 up, 1 down, 2 left, 3 right: face that compass direction (north, south,
  west, east), then step forward if no wall is in the way.

Every step costs one step whatever it does, so the best return of an episode is that of a
shortest path: :func:`optimal_return` is exact (breadth-first search over states, with the
env's time limit). :func:`optimal_q_values` is the exact discounted ``Q*`` of a per-step
reward (value iteration; the time limit is ignored, as tabular Q-learning's bootstrapping does).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

#: Heading number -> (dx, dy): east, south, west, north.
HEADING_VECTORS = ((1, 0), (0, 1), (-1, 0), (0, -1))

#: Cardinal action -> heading it faces: up (north), down (south), left (west), right (east).
CARDINAL_HEADINGS = (3, 1, 2, 0)
CARDINAL_ACTION_NAMES = ("move up", "move down", "move left", "move right")

NUM_ACTIONS = {"navigation": 3, "all": 7, "cardinal": 4}
_TURN_LEFT, _TURN_RIGHT, _FORWARD = 0, 1, 2

State = tuple[int, int, int]


class GridTask(Protocol):
    """What the solver reads from a task: walls (bool ``[y, x]``), start cell, start heading, goal cell."""

    @property
    def wall_grid(self) -> np.ndarray: ...

    start: tuple[int, int]
    start_dir: int
    goal: tuple[int, int]


@dataclass(frozen=True)
class WallsAndGoal:
    """A :class:`GridTask` given by its arrays (e.g. read off a MiniGrid grid)."""

    wall_grid: np.ndarray = field(repr=False, compare=False)
    start: tuple[int, int]
    start_dir: int
    goal: tuple[int, int]


def step_state(walls: np.ndarray, state: State, action: int, actions: str) -> State:
    """The state after ``action`` in ``state``, as the maze env moves (walls block, the goal does not)."""
    x, y, heading = state
    if actions == "cardinal":
        heading = CARDINAL_HEADINGS[action]
    elif action == _TURN_LEFT:
        return x, y, (heading - 1) % 4
    elif action == _TURN_RIGHT:
        return x, y, (heading + 1) % 4
    elif action != _FORWARD:
        return state  # pick up, drop, toggle, done
    dx, dy = HEADING_VECTORS[heading]
    if walls[y + dy, x + dx]:
        return x, y, heading
    return x + dx, y + dy, heading


def search(task: GridTask, actions: str = "navigation") -> dict[State, tuple[State, int] | None]:
    """Breadth-first search from the start: every reachable state -> (parent state, action), in order of discovery.

    States on the goal cell are terminal: recorded, never expanded. The start maps to ``None``.
    """
    walls, goal = task.wall_grid, tuple(task.goal)
    start = (*task.start, task.start_dir)
    parents: dict[State, tuple[State, int] | None] = {start: None}
    frontier = deque([start])
    while frontier:
        state = frontier.popleft()
        if state[:2] == goal:
            continue
        for action in range(NUM_ACTIONS[actions]):
            successor = step_state(walls, state, action, actions)
            if successor not in parents:
                parents[successor] = (state, action)
                frontier.append(successor)
    return parents


def shortest_actions(task: GridTask, actions: str = "navigation") -> list[int] | None:
    """A shortest action sequence from the start to the goal (``None`` if the goal is unreachable)."""
    parents = search(task, actions)
    goal = tuple(task.goal)
    state = next((state for state in parents if state[:2] == goal), None)  # discovery order: the nearest first
    if state is None:
        return None
    sequence = []
    while parents[state] is not None:
        state, action = parents[state]
        sequence.append(action)
    return sequence[::-1]


def episode_return(goal_step: int | None, reward: str, max_steps: int) -> float:
    """The return of an episode that reaches the goal on step ``goal_step`` (``None``: never).

    ``reward="default"``: MiniGrid's ``1 - 0.9 * (step_count / max_steps)`` (the same float
    expression), 0 without the goal. ``"step_penalty"``: +1 at the goal, -1 on every other step.
    A goal after ``max_steps`` is never reached (the episode is truncated first).
    """
    reached = goal_step is not None and goal_step <= max_steps
    if reward == "step_penalty":
        return 2.0 - goal_step if reached else -float(max_steps)
    if reward == "default":
        return 1 - 0.9 * (goal_step / max_steps) if reached else 0.0
    raise ValueError(f"unknown reward {reward!r}; allowed: default, step_penalty")


def optimal_return(task: GridTask, actions: str, reward: str, max_steps: int) -> float:
    """The best return any policy earns from the start of ``task``: that of a shortest path, within ``max_steps``."""
    solution = shortest_actions(task, actions)
    return episode_return(None if solution is None else len(solution), reward, max_steps)


def optimal_q_values(
    task: GridTask,
    actions: str,
    gamma: float,
    goal_reward: float = 1.0,
    step_reward: float = -1.0,
    tolerance: float = 1e-12,
) -> dict[State, np.ndarray]:
    """``Q*`` by value iteration: every non-goal ``(x, y, heading)`` on an open cell -> one value per action.

    The reward is ``goal_reward`` on the step that reaches the goal (terminal) and ``step_reward``
    on every other step (the defaults are ``reward="step_penalty"``); no time limit. Iterates
    until no value moves by more than ``tolerance`` (then each is within ``tolerance * gamma / (1 - gamma)`` of ``Q*``).
    """
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma={gamma} must be in [0, 1)")
    walls, goal = task.wall_grid, tuple(task.goal)
    states = [(int(x), int(y), heading) for y, x in zip(*np.nonzero(~walls)) for heading in range(4) if (x, y) != goal]
    index = {state: i for i, state in enumerate(states)}
    num_actions = NUM_ACTIONS[actions]
    successors = np.zeros((len(states), num_actions), dtype=np.int64)
    rewards = np.full((len(states), num_actions), float(step_reward))
    continues = np.ones((len(states), num_actions))
    for i, state in enumerate(states):
        for action in range(num_actions):
            successor = step_state(walls, state, action, actions)
            if successor[:2] == goal:
                rewards[i, action], continues[i, action] = goal_reward, 0.0
            else:
                successors[i, action] = index[successor]
    values = np.zeros((len(states), num_actions))
    while True:
        updated = rewards + gamma * continues * values.max(axis=1)[successors]
        change = float(np.abs(updated - values).max())
        values = updated
        if change <= tolerance:
            return {state: values[i] for i, state in enumerate(states)}


def distances_to_goal(task: GridTask, actions: str = "navigation") -> dict[State, int]:
    """Fewest actions from each state ``(x, y, heading)`` on an open cell to the goal (0 on the goal cell).

    Breadth-first search backwards from the goal's states over the env's moves; states that
    cannot reach the goal are left out.
    """
    walls, goal = task.wall_grid, tuple(task.goal)
    states = [(int(x), int(y), heading) for y, x in zip(*np.nonzero(~walls)) for heading in range(4)]
    predecessors: dict[State, list[State]] = {state: [] for state in states}
    for state in states:
        if state[:2] == goal:
            continue  # terminal
        for action in range(NUM_ACTIONS[actions]):
            predecessors[step_state(walls, state, action, actions)].append(state)
    distances = {state: 0 for state in states if state[:2] == goal}
    frontier = deque(distances)
    while frontier:
        state = frontier.popleft()
        for previous in predecessors[state]:
            if previous not in distances:
                distances[previous] = distances[state] + 1
                frontier.append(previous)
    return distances
