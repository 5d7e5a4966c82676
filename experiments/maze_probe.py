"""Train one classic agent on ``env=maze`` and watch its greedy policy fail or succeed, layout by layout.

Every ``EVERY`` env steps the greedy policy plays each of the 32 training layouts once. The line
printed gives its return as a share of the optimal return (``greedy_norm``), the layouts solved,
and how the others fail: ``stuck`` (the same cell and heading on two consecutive steps: walking
into a wall) or ``loop`` (a longer cycle, e.g. turning back and forth). ``train_norm`` is the
mean return of the last 200 training episodes, same scale. This is how the issue-15 diagnoses
and the settings in ``conf/hparams/<agent>_maze.yaml`` were found (docs/agents.md).

    python experiments/maze_probe.py AGENT STEPS EVERY SEED [agent.option=value ...]
    python experiments/maze_probe.py q_learning 2000000 500000 0 n_step=20 learning_rate=0.05

Options are parsed as YAML and applied over ``conf/hparams/<agent>_maze.yaml``; an ``env.`` prefix sets a
``MazeSuite`` option instead (``env.view=full``: the whole maze in view, a Markov observation).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
import yaml
from omegaconf import OmegaConf

from llmrl_bench import registry
from llmrl_bench.agents.base import NullHooks
from llmrl_bench.config import CONFIG_DIR
from llmrl_bench.envs.maze import MazeSuite, maze_layouts, maze_max_steps, shortest_solution
from llmrl_bench.representations.vector import VectorRepresentation
from llmrl_bench.runner import RunEnvs, build_agent

MAZE_SIZE = 7


def optimal_returns(layouts) -> np.ndarray:
    """MiniGrid's ``1 - 0.9 * steps / max_steps`` of each layout's shortest solution."""
    max_steps = maze_max_steps(MAZE_SIZE)
    return np.array([1 - 0.9 * len(shortest_solution(layout)) / max_steps for layout in layouts])


def greedy_rollouts(agent, env, num_layouts: int) -> tuple[np.ndarray, int, int]:
    """Returns ``(num_layouts,)`` of the greedy policy, and how many failures were stuck or looping."""
    returns, stuck, looping = np.zeros(num_layouts), 0, 0
    for index in range(num_layouts):
        obs, _ = env.reset(options={"layout_index": index})
        base, visited, failure = env.unwrapped, {}, None
        for t in range(env.unwrapped.max_steps):
            state = (tuple(base.agent_pos), base.agent_dir)
            if state in visited and failure is None:
                failure = "stuck" if visited[state] == t - 1 else "loop"
            visited[state] = t
            obs, reward, terminated, truncated, _ = env.step(int(agent.act(obs[None], greedy=True)[0]))
            returns[index] += reward
            if terminated or truncated:
                break
        stuck += returns[index] == 0 and failure == "stuck"
        looping += returns[index] == 0 and failure == "loop"
    return returns, stuck, looping


class ProbeHooks(NullHooks):
    """Prints one line per ``every`` env steps: greedy and training returns, failures, last logged values."""

    def __init__(self, agent, env, every: int, optimal: np.ndarray):
        self.agent, self.env, self.every, self.optimal = agent, env, every, optimal
        self.episode_returns: list[float] = []
        self.logged: dict = {}
        self.started = time.perf_counter()
        self.last_probe = 0

    def on_episode(self, global_step: int, episodic_return: float, episodic_length: int) -> None:
        self.episode_returns.append(episodic_return)

    def log(self, global_step: int, values: dict) -> None:
        self.logged = values

    def on_step(self, global_step: int) -> None:
        if global_step // self.every == self.last_probe // self.every:  # agents step by a vector env's live envs
            return
        self.last_probe = global_step
        returns, stuck, looping = greedy_rollouts(self.agent, self.env, len(self.optimal))
        recent = np.mean(self.episode_returns[-200:]) if self.episode_returns else 0.0
        logged = " ".join(f"{key.split('/')[-1]}={value:.3g}" for key, value in self.logged.items() if key != "charts/SPS")
        print(
            f"{global_step:>8} greedy_norm={returns.mean() / self.optimal.mean():.3f} solved={int((returns > 0).sum())}/"
            f"{len(returns)} stuck={stuck} loop={looping} train_norm={recent / self.optimal.mean():.3f} {logged} "
            f"t={time.perf_counter() - self.started:.0f}s",
            flush=True,
        )


def main(argv: list[str]) -> None:
    agent_name, steps, every, seed = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    options = {key: yaml.safe_load(value) for key, value in (arg.split("=", 1) for arg in argv[4:])}
    env_options = {key.removeprefix("env."): value for key, value in options.items() if key.startswith("env.")}
    overrides = {key: value for key, value in options.items() if not key.startswith("env.")}
    hparams = OmegaConf.load(CONFIG_DIR / "hparams" / f"{agent_name}_maze.yaml").get("agent", {})
    cfg = OmegaConf.merge(OmegaConf.structured(registry.schemas("agent")[agent_name]), hparams, overrides)
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    envs = RunEnvs(MazeSuite(train_sizes=(MAZE_SIZE,), **env_options), VectorRepresentation())
    agent = build_agent(cfg, envs, seed)
    optimal = optimal_returns(maze_layouts(MAZE_SIZE, "train", 32, 16))
    agent.learn(envs, steps, ProbeHooks(agent, envs.make(), every, optimal))


if __name__ == "__main__":
    main(sys.argv[1:])
