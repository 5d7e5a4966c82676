"""Procedurally generated perfect mazes on MiniGrid (``env=maze``), with disjoint held-out layouts.

A maze of *size* ``n`` (odd, >= 3) has an ``n x n`` interior of corridor cells and internal
walls, surrounded by the outer wall, so its MiniGrid grid is ``(n + 2) x (n + 2)``. Corridor
cells sit at odd grid coordinates, so a 7x7 maze has 4x4 corridor cells, a 9x9 maze 5x5 and an
11x11 maze 6x6. Each layout (walls, start cell, start direction, goal cell) is a pure function
of ``(size, layout_seed)``; training layouts come from seeds 0, 1, 2, ... and held-out layouts
from seeds ``HELD_OUT_LAYOUT_SEED_BASE`` on, skipping any whose walls equal a training maze.
With ``num_train_layouts=inf`` every training episode draws a fresh layout from seeds below
``HELD_OUT_LAYOUT_SEED_BASE``, rejecting any whose walls equal a held-out maze.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property, lru_cache
from typing import Any, ClassVar, Sequence

import gymnasium as gym
import numpy as np
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Goal, Wall
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX
from minigrid.minigrid_env import MiniGridEnv
from minigrid.wrappers import FullyObsWrapper

import llmrl_bench.envs.maze_solver as maze_solver
from llmrl_bench.envs.base import TRAIN, EnvSuite
from llmrl_bench.envs.maze_solver import CARDINAL_HEADINGS, HEADING_VECTORS
from llmrl_bench.errors import ConfigError
from llmrl_bench.registry import register

#: Candidate seeds of training layouts are 0, 1, 2, ...; held-out candidates start here.
HELD_OUT_LAYOUT_SEED_BASE = 1_000_000

#: A split gives up after this many candidates per requested layout (only tiny mazes run out).
MAX_CANDIDATES_PER_LAYOUT = 100


class MazeReward(str, Enum):
    """Reward modes of the maze (an Enum so a typo fails when the config is composed)."""

    default = "default"
    step_penalty = "step_penalty"


class MazeActions(str, Enum):
    """Action spaces of the maze: MiniGrid's 3 moves (default), all 7 (4 of them no-ops here) or 4 compass moves."""

    navigation = "navigation"
    all = "all"
    cardinal = "cardinal"


class MazeView(str, Enum):
    """What the agent sees: MiniGrid's 7x7 egocentric view (default) or the whole maze (a Markov observation)."""

    egocentric = "egocentric"
    full = "full"


class FullMazeView(FullyObsWrapper, gym.utils.RecordConstructorArgs):
    """MiniGrid's ``FullyObsWrapper`` (the whole grid from above; the agent's cell holds the agent and its
    direction), padded with walls to ``width x width`` cells so that mazes of every size share one shape."""

    def __init__(self, env: gym.Env, width: int):
        gym.utils.RecordConstructorArgs.__init__(self, width=width)
        FullyObsWrapper.__init__(self, env)
        self.width = int(width)
        cell_high = np.array([max(OBJECT_TO_IDX.values()), max(COLOR_TO_IDX.values()), max(max(STATE_TO_IDX.values()), 3)], np.uint8)
        high = np.broadcast_to(cell_high, (self.width, self.width, 3)).copy()  # state channel: up to direction 3
        image = gym.spaces.Box(low=np.zeros_like(high), high=high, dtype=np.uint8)
        self.observation_space = gym.spaces.Dict({**self.observation_space.spaces, "image": image})

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        grid = super().observation(observation)["image"]
        image = np.empty((self.width, self.width, 3), np.uint8)
        image[:] = _WALL_CELL
        image[: grid.shape[0], : grid.shape[1]] = grid
        return {**observation, "image": image}


_WALL_CELL = np.array([OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0], np.uint8)


#: Discount under which the ``step_penalty`` reward reproduces the classic maze example.
RECOMMENDED_GAMMA = 0.9

MAZE_MISSION = "get to the green goal square"

#: Mixed-size training env of the default suite (7x7 and 9x9 training layouts).
MAZE_TRAIN_ID = "LLMRL-Maze-v0"

#: Sizes that have registered single-size ids (training and held-out layouts).
REGISTERED_MAZE_SIZES = (7, 9, 11)

HELD_OUT = "held_out"

#: Smallest maze size (an interior of 2x2 corridor cells).
MIN_MAZE_SIZE = 3

#: ``num_train_layouts`` values, for error messages.
ALLOWED_LAYOUT_COUNTS = "a positive integer, or inf (a fresh layout every episode)"


def parse_layout_count(value: Any, key: str = "num_train_layouts", unlimited: bool = True) -> int | float:
    """``value`` as a layout count: a positive int, or ``math.inf`` for ``inf`` (float or string) when ``unlimited``.

    Raises ``ValueError`` with one line naming ``key``, the bad value and the allowed ones.
    """
    if unlimited and (value == math.inf or (isinstance(value, str) and value.strip().lower() in ("inf", ".inf", "infinity"))):
        return math.inf
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1:
        return int(value)
    allowed = ALLOWED_LAYOUT_COUNTS if unlimited else "a positive integer"
    raise ValueError(f"{key}={value!r} is not a layout count; allowed: {allowed}")


def maze_id(size: int, split: str = TRAIN) -> str:
    """Registered id of the single-size maze env, e.g. ``LLMRL-Maze-7x7-v0`` or ``LLMRL-Maze-HeldOut-7x7-v0``."""
    infix = "HeldOut-" if split == HELD_OUT else ""
    return f"LLMRL-Maze-{infix}{size}x{size}-v0"


def maze_max_steps(size: int, max_steps_factor: int = 4) -> int:
    """Episode step limit of a size-``n`` maze: ``max_steps_factor * n * n`` (196, 324, 484 for 7, 9, 11)."""
    return max_steps_factor * size * size


@dataclass(frozen=True)
class MazeLayout:
    """One maze: walls, start cell, start direction and goal cell, all in MiniGrid grid coordinates.

    ``walls`` is the ``(size + 2) ** 2`` grid flattened row by row (index ``y * width + x``,
    MiniGrid's own order), one byte per cell, 1 for a wall.
    """

    size: int
    layout_seed: int
    walls: bytes = field(repr=False)
    start: tuple[int, int]
    start_dir: int
    goal: tuple[int, int]

    @property
    def width(self) -> int:
        return self.size + 2

    @property
    def wall_grid(self) -> np.ndarray:
        """Walls as a bool array indexed ``[y, x]``."""
        return np.frombuffer(self.walls, dtype=np.uint8).reshape(self.width, self.width).astype(bool)

    @cached_property
    def maze_key(self) -> str:
        """Hash of the size and walls only: two layouts with one key are the same maze."""
        return hashlib.sha256(f"{self.size}:".encode() + self.walls).hexdigest()


def _open_neighbours(walls: np.ndarray, x: int, y: int):
    for dx, dy in HEADING_VECTORS:
        if not walls[y + dy, x + dx]:
            yield x + dx, y + dy


def path_distances(layout: MazeLayout, source: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Breadth-first grid distances (forward moves, ignoring turns) from ``source`` to every open cell."""
    walls = layout.wall_grid
    distances = {source: 0}
    frontier = deque([source])
    while frontier:
        cell = frontier.popleft()
        for neighbour in _open_neighbours(walls, *cell):
            if neighbour not in distances:
                distances[neighbour] = distances[cell] + 1
                frontier.append(neighbour)
    return distances


def shortest_solution(layout: MazeLayout, actions: str = "navigation") -> list[int]:
    """A shortest action sequence from the start to the goal (navigation: 0 turn left, 1 turn right, 2 forward)."""
    solution = maze_solver.shortest_actions(layout, actions)
    if solution is None:
        raise ValueError(f"goal unreachable in maze {layout}")
    return solution


def generate_maze_layout(size: int, layout_seed: int) -> MazeLayout:
    """The layout drawn from ``(size, layout_seed)``.

    Walls: randomized depth-first search (recursive backtracker) over the corridor cells from a
    random root, which carves a perfect maze (a spanning tree: exactly one path between any two
    cells). Start cell and direction: uniform. Goal cell: uniform among the cells whose path
    distance from the start is at least half the largest such distance, so episodes are never trivial.
    """
    if size < MIN_MAZE_SIZE or size % 2 == 0:
        raise ValueError(f"maze size must be odd and >= {MIN_MAZE_SIZE}, got {size}")
    rng = np.random.default_rng([size, layout_seed])
    cells = (size + 1) // 2
    width = size + 2
    walls = np.ones((width, width), dtype=np.uint8)
    visited = np.zeros((cells, cells), dtype=bool)

    root = (int(rng.integers(cells)), int(rng.integers(cells)))
    visited[root[1], root[0]] = True
    walls[1 + 2 * root[1], 1 + 2 * root[0]] = 0
    stack = [root]
    while stack:
        cx, cy = stack[-1]
        unvisited = [
            (cx + dx, cy + dy)
            for dx, dy in HEADING_VECTORS
            if 0 <= cx + dx < cells and 0 <= cy + dy < cells and not visited[cy + dy, cx + dx]
        ]
        if not unvisited:
            stack.pop()
            continue
        nx, ny = unvisited[int(rng.integers(len(unvisited)))]
        walls[1 + cy + ny, 1 + cx + nx] = 0  # the wall cell between the two corridor cells
        walls[1 + 2 * ny, 1 + 2 * nx] = 0
        visited[ny, nx] = True
        stack.append((nx, ny))

    start_cell = int(rng.integers(cells * cells))
    start = (1 + 2 * (start_cell % cells), 1 + 2 * (start_cell // cells))
    start_dir = int(rng.integers(4))
    layout = MazeLayout(size, layout_seed, walls.tobytes(), start, start_dir, start)
    distances = path_distances(layout, start)
    farthest = max(distances.values())
    goals = sorted(
        cell
        for cell, distance in distances.items()
        if cell[0] % 2 == 1 and cell[1] % 2 == 1 and 2 * distance >= farthest and cell != start
    )
    goal = goals[int(rng.integers(len(goals)))]
    return MazeLayout(size, layout_seed, walls.tobytes(), start, start_dir, goal)


def _distinct_layouts(size: int, seed_base: int, count: int, excluded: frozenset[str]) -> tuple[MazeLayout, ...]:
    layouts: list[MazeLayout] = []
    seen = set(excluded)
    for layout_seed in range(seed_base, seed_base + MAX_CANDIDATES_PER_LAYOUT * max(count, 1)):
        if len(layouts) == count:
            break
        layout = generate_maze_layout(size, layout_seed)
        if layout.maze_key in seen:  # skip repeats within the split and mazes of the excluded split
            continue
        seen.add(layout.maze_key)
        layouts.append(layout)
    if len(layouts) < count:
        raise ValueError(f"only {len(layouts)} distinct {size}x{size} mazes found, {count} requested")
    return tuple(layouts)


@lru_cache(maxsize=None)
def maze_layouts(
    size: int, split: str, num_train_layouts: int | float = 32, num_held_out_layouts: int = 16
) -> tuple[MazeLayout, ...]:
    """The layouts of one size and split, in a fixed order.

    Training: the first ``num_train_layouts`` distinct mazes from layout seeds 0, 1, 2, ...
    Held-out: the first ``num_held_out_layouts`` distinct mazes from layout seeds
    ``HELD_OUT_LAYOUT_SEED_BASE``, ... whose walls differ from every training maze of that size
    (the training set of ``num_train_layouts``), so no held-out maze is ever trained on.
    With ``num_train_layouts=inf`` the training split has no fixed list (a ``ValueError``)
    and nothing is skipped: the training env rejects held-out mazes instead (:func:`fresh_training_layout`).
    """
    if split not in (TRAIN, HELD_OUT):
        raise ValueError(f"split must be {TRAIN!r} or {HELD_OUT!r}, got {split!r}")
    if num_train_layouts == math.inf:
        if split == TRAIN:
            raise ValueError("num_train_layouts=inf has no fixed training layouts: each episode draws a fresh one")
        return _distinct_layouts(size, HELD_OUT_LAYOUT_SEED_BASE, num_held_out_layouts, frozenset())
    train = _distinct_layouts(size, 0, num_train_layouts, frozenset())
    if split == TRAIN:
        return train
    excluded = frozenset(layout.maze_key for layout in train)
    return _distinct_layouts(size, HELD_OUT_LAYOUT_SEED_BASE, num_held_out_layouts, excluded)


@lru_cache(maxsize=None)
def held_out_maze_keys(size: int, num_held_out_layouts: int) -> frozenset[str]:
    """Maze keys of the held-out layouts of ``size`` under ``num_train_layouts=inf``, which training rejects."""
    return frozenset(layout.maze_key for layout in maze_layouts(size, HELD_OUT, math.inf, num_held_out_layouts))


def fresh_training_layout(rng: np.random.Generator, sizes: Sequence[int], num_held_out_layouts: int) -> MazeLayout:
    """A training layout drawn with ``rng`` for ``num_train_layouts=inf``: uniform size, then a uniform
    layout seed in ``[0, HELD_OUT_LAYOUT_SEED_BASE)``, redrawn while its walls equal a held-out maze."""
    size = int(sizes[int(rng.integers(0, len(sizes)))])
    excluded = held_out_maze_keys(size, num_held_out_layouts)
    while True:
        layout = generate_maze_layout(size, int(rng.integers(0, HELD_OUT_LAYOUT_SEED_BASE)))
        if layout.maze_key not in excluded:
            return layout


def interleaved_layouts(
    sizes: Sequence[int], split: str, num_train_layouts: int | float, num_held_out_layouts: int
) -> tuple[MazeLayout, ...]:
    """The layouts of an env of ``sizes`` in layout-index order: sizes interleaved (first of each size, then second, ...)."""
    per_size = [maze_layouts(size, split, num_train_layouts, num_held_out_layouts) for size in sizes]
    return tuple(layout for group in zip(*per_size) for layout in group)


def _maze_mission() -> str:
    return MAZE_MISSION


#: Observation images by (size, layout seed, x, y, heading, view size, see-through): at most 11x11 cells x 4 headings per layout.
_OBSERVATION_CACHE: dict[tuple, np.ndarray] = {}
_OBSERVATION_CACHE_MAX = 2_000_000


class MazeEnv(MiniGridEnv):
    """
    ## Description

    A perfect maze (one path between any two cells, carved by randomized depth-first search)
    with a green goal cell. Each reset loads one layout of a fixed set: the training layouts or
    the held-out layouts of the configured sizes; with ``num_train_layouts=inf`` the training
    split instead draws a fresh layout every episode, never a held-out maze. A maze of size
    ``n`` has an ``n x n`` interior (corridor cells at odd coordinates, internal walls between
    them) inside the outer wall, so the grid is ``(n + 2) x (n + 2)`` and a 7x7 maze has 4x4
    corridor cells. The agent sees the standard 7x7 egocentric view; walls block its sight
    (``see_through_walls=False``).

    Layout choice: ``reset(seed=s)`` loads layout ``s mod L`` (``L`` layouts, sizes interleaved:
    index 0 is the first layout of the first size, index 1 the first of the second size, ...),
    so consecutive evaluation seeds cover every layout once before repeating; ``reset()`` draws
    the layout with the env's RNG; ``reset(options={"layout_index": k})`` loads layout ``k``.
    With ``num_train_layouts=inf`` every reset draws a fresh layout with the env's RNG
    (``reset(seed=s)`` reseeds it first, so a seed still fixes the layout).

    ## Mission Space

    "get to the green goal square"

    ## Action Space

    | Num | Name         | Action       |
    |-----|--------------|--------------|
    | 0   | left         | Turn left    |
    | 1   | right        | Turn right   |
    | 2   | forward      | Move forward |
    | 3   | pickup       | Unused       |
    | 4   | drop         | Unused       |
    | 5   | toggle       | Unused       |
    | 6   | done         | Unused       |

    ``actions="navigation"`` (default) keeps only actions 0-2, ``Discrete(3)``: a maze has
    nothing to pick up or toggle, and the 4 no-op actions would make a random walk more than
    twice as slow to explore. ``actions="all"`` keeps MiniGrid's ``Discrete(7)``.
    ``actions="cardinal"`` is ``Discrete(4)``, the classic maze example's moves: 0 up, 1 down,
    2 left, 3 right. The agent first faces that compass direction (north, south, west, east),
    then steps one cell forward unless a wall is there, so the egocentric view looks the way
    it last moved; one action is one step.

    ## Observation

    MiniGrid's dict: ``image`` (7x7x3 egocentric view of object, colour, state indices),
    ``direction`` (0 east, 1 south, 2 west, 3 north) and ``mission``. The reset info holds
    ``layout_index`` (-1 for a fresh layout), ``layout_seed`` and ``maze_size``.

    ## Rewards

    - ``reward="default"``: MiniGrid's ``1 - 0.9 * (step_count / max_steps)`` on reaching the
      goal, 0 otherwise. Returns lie in [0, 1].
    - ``reward="step_penalty"``: +1 on the step that reaches the goal, -1 on every other step,
      as in the classic maze example; its intended discount is ``recommended_gamma = 0.9``.
      Returns lie in [-max_steps, 1].

    ## Termination

    The episode ends if any one of the following conditions is met:

    1. The agent reaches the goal (terminated).
    2. Timeout: ``max_steps = max_steps_factor * n * n`` steps (truncated; 196, 324, 484 for
       7x7, 9x9, 11x11 with the default factor 4).

    ## Registered Configurations

    - `LLMRL-Maze-v0`: training layouts of 7x7 and 9x9 (32 each), the default suite's training env
    - `LLMRL-Maze-7x7-v0`, `LLMRL-Maze-9x9-v0`, `LLMRL-Maze-11x11-v0`: the 32 training layouts of one size
    - `LLMRL-Maze-HeldOut-7x7-v0`, `LLMRL-Maze-HeldOut-9x9-v0`, `LLMRL-Maze-HeldOut-11x11-v0`:
      the 16 held-out layouts of one size
    """

    recommended_gamma = RECOMMENDED_GAMMA

    def __init__(
        self,
        sizes: Sequence[int] = (7,),
        split: str = TRAIN,
        num_train_layouts: int | float | str = 32,
        num_held_out_layouts: int = 16,
        reward: str = "default",
        max_steps_factor: int = 4,
        actions: str = "navigation",
        cache_observations: bool = True,
        see_through_walls: bool = False,
        **kwargs: Any,
    ):
        self.actions_mode = MazeActions(actions).value
        self.cache_observations = bool(cache_observations)
        self.sizes = tuple(int(size) for size in sizes)
        self.split = split
        self.reward_mode = MazeReward(reward).value
        self.max_steps_factor = int(max_steps_factor)
        self.num_held_out_layouts = parse_layout_count(num_held_out_layouts, "num_held_out_layouts", unlimited=False)
        num_train_layouts = parse_layout_count(num_train_layouts)
        #: Fresh layouts every episode (``num_train_layouts=inf`` on the training split); ``layouts`` is then empty.
        self.fresh_layouts = split == TRAIN and num_train_layouts == math.inf
        self.layouts: tuple[MazeLayout, ...] = (
            () if self.fresh_layouts else interleaved_layouts(self.sizes, split, num_train_layouts, self.num_held_out_layouts)
        )
        # One shared Wall: MiniGrid only reads walls, and rebuilding ~50 objects per reset is the reset's main cost.
        self._wall = Wall()
        self._wall_cells = [self._wall_row(layout) for layout in self.layouts]
        # Fresh layouts rarely recur: memoise their observations for the current episode only.
        self._episode_observations: dict[tuple, np.ndarray] | None = {} if self.fresh_layouts else None
        self._requested_layout: int | None = None
        self.layout_index = 0
        self._layout: MazeLayout | None = None
        largest = max(self.sizes)
        super().__init__(
            mission_space=MissionSpace(mission_func=_maze_mission),
            grid_size=largest + 2,
            max_steps=maze_max_steps(largest, self.max_steps_factor),
            see_through_walls=see_through_walls,
            **kwargs,
        )
        if self.actions_mode != MazeActions.all.value:  # MiniGrid.step reads actions by number: 0-2 are the moves
            self.action_space = gym.spaces.Discrete(maze_solver.NUM_ACTIONS[self.actions_mode])

    def _wall_row(self, layout: MazeLayout) -> list[Wall | None]:
        return [self._wall if wall else None for wall in layout.walls]

    @property
    def layout(self) -> MazeLayout:
        """The layout of the current episode."""
        return self._layout if self._layout is not None else self.layouts[self.layout_index]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if options and "layout_index" in options:
            if self.fresh_layouts:
                raise ValueError("num_train_layouts=inf has no layout indices: reset with a seed instead")
            self._requested_layout = int(options["layout_index"]) % len(self.layouts)
        elif seed is not None and not self.fresh_layouts:
            self._requested_layout = seed % len(self.layouts)
        else:
            self._requested_layout = None
        obs, info = super().reset(seed=seed)
        info = {**info, "layout_index": self.layout_index, "layout_seed": self.layout.layout_seed, "maze_size": self.layout.size}
        return obs, info

    def _gen_grid(self, width: int, height: int) -> None:
        if self.fresh_layouts:
            self.layout_index = -1
            self._layout = fresh_training_layout(self.np_random, self.sizes, self.num_held_out_layouts)
            wall_cells = self._wall_row(self._layout)
            self._episode_observations.clear()
        else:
            if self._requested_layout is None:
                self.layout_index = int(self._rand_int(0, len(self.layouts)))
            else:
                self.layout_index = self._requested_layout
            wall_cells = list(self._wall_cells[self.layout_index])
        layout = self.layout
        self.width = self.height = layout.width
        self.max_steps = maze_max_steps(layout.size, self.max_steps_factor)
        self.grid = Grid(layout.width, layout.width)
        self.grid.grid = wall_cells
        self.put_obj(Goal(), *layout.goal)
        self.agent_pos = layout.start
        self.agent_dir = layout.start_dir
        self.mission = MAZE_MISSION

    def gen_obs(self) -> dict[str, Any]:
        """MiniGrid's observation, memoised: in a maze the view depends only on layout, cell and heading.

        Rendering the egocentric view (slice, rotations, visibility) is most of a MiniGrid
        step; mazes revisit the same (cell, heading) constantly. Every env of the process shares
        the memo (fresh layouts: a memo per env and episode); each call returns a fresh copy
        (Gymnasium's rule: callers keep observations).
        """
        if not self.cache_observations or self.carrying is not None:
            return super().gen_obs()
        cache = _OBSERVATION_CACHE if self._episode_observations is None else self._episode_observations
        layout = self.layout  # a pure function of (size, layout_seed)
        key = (layout.size, layout.layout_seed, self.agent_pos[0], self.agent_pos[1], self.agent_dir, self.agent_view_size, self.see_through_walls)
        image = cache.get(key)
        if image is None:
            image = super().gen_obs()["image"]
            image.setflags(write=False)
            if len(cache) < _OBSERVATION_CACHE_MAX:
                cache[key] = image
        return {"image": image.copy(), "direction": self.agent_dir, "mission": self.mission}

    def _reward(self) -> float:
        if self.reward_mode == "step_penalty":
            return 1.0
        return super()._reward()

    def step(self, action):
        if self.actions_mode == MazeActions.cardinal.value:  # face the compass direction, then go forward
            self.agent_dir = CARDINAL_HEADINGS[int(action)]
            action = self.actions.forward
        obs, reward, terminated, truncated, info = super().step(action)
        if self.reward_mode == "step_penalty" and not terminated:
            reward = -1.0
        return obs, float(reward), terminated, truncated, info


#: Default-reward threshold: 0.8 is reached by paths up to 2/9 of max_steps (43 moves in a 7x7
#: maze, 72 in a 9x9), about twice the mean optimal path (tests/test_envs.py checks the margin).
DEFAULT_REWARD_THRESHOLD = 0.8
#: Step-penalty threshold: return -40 means reaching the goal within 42 steps.
STEP_PENALTY_REWARD_THRESHOLD = -40.0


def check_maze_settings(
    train_sizes: Sequence[int], held_out_sizes: Sequence[int], num_train_layouts: Any, num_held_out_layouts: Any, max_steps_factor: Any
) -> None:
    """Raise ``ValueError`` (one line: the key, the bad value, the allowed ones) for maze settings that cannot be built."""
    for key, sizes in (("train_sizes", train_sizes), ("held_out_sizes", held_out_sizes)):
        sizes = list(sizes)
        if not sizes or not all(isinstance(size, int) and size >= MIN_MAZE_SIZE and size % 2 == 1 for size in sizes):
            raise ValueError(f"{key}={sizes} is not a list of maze sizes; allowed: odd integers >= {MIN_MAZE_SIZE}, e.g. [7] or [7, 9]")
    parse_layout_count(num_train_layouts)
    parse_layout_count(num_held_out_layouts, "num_held_out_layouts", unlimited=False)
    if isinstance(max_steps_factor, bool) or not isinstance(max_steps_factor, int) or max_steps_factor < 1:
        raise ValueError(f"max_steps_factor={max_steps_factor!r} is not allowed; allowed: a positive integer")


@lru_cache(maxsize=None)
def layout_optimal_return(layout: MazeLayout, actions: str, reward: str, max_steps_factor: int) -> float:
    """The exact best return of ``layout`` under the maze's actions, reward and time limit (see ``maze_solver``)."""
    return maze_solver.optimal_return(layout, actions, reward, maze_max_steps(layout.size, max_steps_factor))


class MazeSuite(EnvSuite):
    """The maze benchmark: training layouts of ``train_sizes``, one held-out context per held-out size.

    Held-out contexts are ``held_out_7x7``, ``held_out_9x9``, ``held_out_11x11`` (one per entry of
    ``held_out_sizes``): the held-out layouts of that size, never trained on. The train split is
    evaluated by resetting the training env with evaluation seeds (layout ``seed mod L``; with
    ``num_train_layouts=inf``, the fresh layout that seed draws). Ceilings are exact:
    :meth:`optimal_return` solves each layout by breadth-first search (``maze_solver``).
    """

    family = "minigrid"

    def __init__(
        self,
        name: str = "maze",
        train_sizes: Sequence[int] = (7,),
        held_out_sizes: Sequence[int] = (7, 9, 11),
        num_train_layouts: int | float | str = 32,
        num_held_out_layouts: int = 16,
        reward: str = "default",
        max_steps_factor: int = 4,
        actions: str = "navigation",
        view: str = "egocentric",
    ):
        reward = MazeReward(reward).value  # accepts the config's Enum or a plain string
        self.actions = MazeActions(actions).value
        self.view = MazeView(view).value
        self.name = name
        self.train_sizes = tuple(int(size) for size in train_sizes)
        self.held_out_sizes = tuple(int(size) for size in held_out_sizes)
        check_maze_settings(self.train_sizes, self.held_out_sizes, num_train_layouts, num_held_out_layouts, int(max_steps_factor))
        self.num_train_layouts = parse_layout_count(num_train_layouts)
        self.num_held_out_layouts = int(num_held_out_layouts)
        self.reward = reward
        self.max_steps_factor = int(max_steps_factor)
        self.recommended_gamma = self._recommended_gamma(reward)
        self.max_episode_steps = max(maze_max_steps(size, self.max_steps_factor) for size in self.train_sizes)
        self.held_out_contexts = [f"held_out_{size}x{size}" for size in self.held_out_sizes]
        longest = max(maze_max_steps(size, self.max_steps_factor) for size in self.train_sizes + self.held_out_sizes)
        if reward == "default":
            self.score_range = (0.0, 1.0)
            self.reward_threshold = DEFAULT_REWARD_THRESHOLD
        else:
            self.score_range = (-float(longest), 1.0)
            self.reward_threshold = STEP_PENALTY_REWARD_THRESHOLD
        self.gym_id = self._env_id(self.train_sizes, TRAIN)
        self._full_view_width = max(self.train_sizes + self.held_out_sizes) + 2  # view=full: the largest grid

    @staticmethod
    def _recommended_gamma(reward: str) -> float | None:
        return RECOMMENDED_GAMMA if MazeReward(reward) == MazeReward.step_penalty else None

    @classmethod
    def recommended_gamma_of(cls, env_cfg: Any) -> float | None:
        return cls._recommended_gamma(env_cfg.get("reward", MazeReward.default))

    @staticmethod
    def check_config(cfg: Any) -> None:
        """Raise ``ConfigError`` (one line) for ``env.*`` maze settings that cannot run, layout counts included."""
        env = cfg.env
        try:
            check_maze_settings(env.train_sizes, env.held_out_sizes, env.num_train_layouts, env.num_held_out_layouts, env.max_steps_factor)
        except ValueError as error:
            raise ConfigError(f"env.{error}") from None
        num_train_layouts = parse_layout_count(env.num_train_layouts)
        for size in sorted({*env.train_sizes, *env.held_out_sizes}):  # small sizes have few distinct mazes
            try:
                for split in (TRAIN, HELD_OUT) if num_train_layouts != math.inf else (HELD_OUT,):
                    maze_layouts(int(size), split, num_train_layouts, int(env.num_held_out_layouts))
            except ValueError as error:
                raise ConfigError(
                    f"env.num_train_layouts={env.num_train_layouts} and env.num_held_out_layouts={env.num_held_out_layouts}"
                    f" need more distinct {size}x{size} mazes than exist ({error}); allowed: smaller counts or larger sizes"
                ) from None

    @staticmethod
    def _env_id(sizes: tuple[int, ...], split: str) -> str:
        if split == TRAIN and sizes == (7, 9):
            return MAZE_TRAIN_ID
        if len(sizes) == 1 and sizes[0] in REGISTERED_MAZE_SIZES:
            return maze_id(sizes[0], split)
        return MAZE_TRAIN_ID  # unregistered combinations: the generic id with explicit kwargs

    def _context(self, context: str) -> tuple[tuple[int, ...], str]:
        """The sizes and split of ``context``."""
        if context == TRAIN:
            return self.train_sizes, TRAIN
        if context not in self.held_out_contexts:
            raise ValueError(f"unknown maze context {context!r}; expected {TRAIN!r} or one of {self.held_out_contexts}")
        return (self.held_out_sizes[self.held_out_contexts.index(context)],), HELD_OUT

    def make(self, context: str = TRAIN) -> gym.Env:
        sizes, split = self._context(context)
        env = gym.make(
            self._env_id(sizes, split),
            sizes=sizes,
            split=split,
            num_train_layouts=self.num_train_layouts,
            num_held_out_layouts=self.num_held_out_layouts,
            reward=self.reward,
            max_steps_factor=self.max_steps_factor,
            actions=self.actions,
            max_episode_steps=max(maze_max_steps(size, self.max_steps_factor) for size in sizes),
        )
        return FullMazeView(env, self._full_view_width) if self.view == MazeView.full.value else env

    def _fresh(self, context: str) -> bool:
        return context == TRAIN and self.num_train_layouts == math.inf

    def layouts(self, context: str = TRAIN) -> tuple[MazeLayout, ...]:
        """The layouts an env of ``context`` draws from (in its layout-index order); ``()`` for fresh layouts (``num_train_layouts=inf``)."""
        sizes, split = self._context(context)
        return () if self._fresh(context) else interleaved_layouts(sizes, split, self.num_train_layouts, self.num_held_out_layouts)

    def layout_at_reset(self, context: str, seed: int) -> MazeLayout:
        """The layout that ``make(context).reset(seed=seed)`` loads (computed without an env)."""
        if self._fresh(context):
            rng, _ = gym.utils.seeding.np_random(seed)  # what reset(seed=...) seeds the env's RNG with
            return fresh_training_layout(rng, self.train_sizes, self.num_held_out_layouts)
        layouts = self.layouts(context)
        return layouts[seed % len(layouts)]

    def optimal_return(self, context: str, seed: int) -> float:
        """Exact: the return of a shortest path in the layout of ``reset(seed=seed)`` (a turn counts as a step)."""
        return layout_optimal_return(self.layout_at_reset(context, seed), self.actions, self.reward, self.max_steps_factor)

    def expert_demonstrations(self) -> list[tuple[int, list[int]]]:
        """``(layout_index, actions)`` of a shortest path on every training layout (never a held-out one).

        Raises ``ValueError`` with ``num_train_layouts=inf`` (no fixed training layouts).
        """
        if self._fresh(TRAIN):
            raise ValueError("num_train_layouts=inf has no fixed training layouts to demonstrate")
        return [(index, shortest_solution(layout, self.actions)) for index, layout in enumerate(self.layouts(TRAIN))]

    def optimal_returns(self, context: str = TRAIN) -> np.ndarray | None:
        """Exact optimal return of each layout of ``context`` in layout-index order; ``None`` for fresh layouts."""
        if self._fresh(context):
            return None
        return np.array([layout_optimal_return(layout, self.actions, self.reward, self.max_steps_factor) for layout in self.layouts(context)])


@register("env", "maze")
@dataclass
class MazeConfig:
    """Procedurally generated MiniGrid mazes with disjoint training and held-out layouts (``env=maze``)."""

    IDENTITY_NEUTRAL: ClassVar[dict] = {"view": "egocentric"}
    """Options added after results were recorded: at these values they stay out of the run_id."""

    _target_: str = "llmrl_bench.envs.maze.MazeSuite"
    name: str = "maze"
    """Suite name in results."""
    train_sizes: list[int] = field(default_factory=lambda: [7])
    """Interior sizes (odd, >= 3) of the training mazes."""
    held_out_sizes: list[int] = field(default_factory=lambda: [7, 9, 11])
    """Interior sizes of the held-out contexts, one context ``held_out_{n}x{n}`` each."""
    num_train_layouts: Any = 32
    """Training layouts per size: a positive integer, or ``inf`` for a fresh layout every episode (never a held-out one)."""
    num_held_out_layouts: int = 16
    """Held-out layouts per size."""
    reward: MazeReward = MazeReward.default
    """``default`` (MiniGrid's 1 - 0.9 * steps / max_steps) or ``step_penalty`` (+1 at the goal, -1 per other step)."""
    max_steps_factor: int = 4
    """Step limit of a size-n maze is max_steps_factor * n * n."""
    actions: MazeActions = MazeActions.navigation
    """``navigation`` (turn left, turn right, go forward: ``Discrete(3)``), ``all`` (MiniGrid's 7 actions) or
    ``cardinal`` (move up, down, left, right: ``Discrete(4)``)."""
    view: MazeView = MazeView.egocentric
    """``egocentric`` (MiniGrid's 7x7 view; walls block sight; observations of different layouts can be equal) or
    ``full`` (MiniGrid's ``FullyObsWrapper``: the whole grid from above, padded to the largest maze of the suite;
    a Markov observation, for measuring what the aliasing of the default view costs)."""
