"""Hand-written policies on the maze's text observation: what a memoryless text policy can reach.

The LLM agents see only ``repr=text`` (the nearest wall straight ahead, left and right, and
visible objects). These rules read the same text, so their returns bound from below what a
policy of that observation can do, and show how much a deterministic memoryless policy
loses to loops:

- ``rules``: head for a visible goal; else go forward unless a wall is 1 step ahead; else
  turn to the side whose wall is farther. Memoryless and deterministic, like an argmax.
- ``rules_sampled``: the same rules, but each step a uniformly random action with
  probability 0.2 (a stochastic memoryless policy; seeded).
- ``wall_follower``: the left-hand rule, which needs one step of memory (the last action).

Every policy plays each of the 32 training layouts and the held-out layouts once
(``reset(options={"layout_index": k})``). Prints how many states share a text, then one
table row per policy and split.

    python experiments/maze_text_rules.py
"""

from __future__ import annotations

import re

import numpy as np

from llmrl_bench.envs import MazeSuite
from llmrl_bench.envs.base import TRAIN
from llmrl_bench.representations.text import describe_minigrid

TURN_LEFT, TURN_RIGHT, FORWARD = 0, 1, 2


def wall_distance(text: str, side: str) -> int:
    """Steps to the nearest wall ``side`` (ahead, left, right); 99 when none is described."""
    match = re.search(rf"[Aa] wall (\d+) steps? {side}", text)
    return int(match.group(1)) if match else 99


def goal_place(text: str) -> str | None:
    """Where the goal is (``"1 step left and 2 steps ahead"``), if seen; the mission is not searched."""
    match = re.search(r"the green goal ([^;.]*)", text.split("Mission:")[0])
    return match.group(1) if match else None


def rules(text: str) -> int:
    goal = goal_place(text)
    ahead_open = wall_distance(text, "ahead") > 1
    if goal is not None:
        if "ahead" not in goal:
            return TURN_LEFT if "left" in goal else TURN_RIGHT
        if ahead_open:
            return FORWARD
        return TURN_LEFT if "left" in goal else TURN_RIGHT
    if ahead_open:
        return FORWARD
    return TURN_LEFT if wall_distance(text, "left") >= wall_distance(text, "right") else TURN_RIGHT


def wall_follower(text: str, last_action: int | None) -> int:
    if goal_place(text) is not None:
        return rules(text)
    ahead_open = wall_distance(text, "ahead") > 1
    if last_action == TURN_LEFT and ahead_open:
        return FORWARD
    if wall_distance(text, "left") > 1:
        return TURN_LEFT
    return FORWARD if ahead_open else TURN_RIGHT


def play(env, layout_index: int, policy: str, rng: np.random.Generator) -> float:
    observation, _ = env.reset(options={"layout_index": layout_index})
    total, last_action = 0.0, None
    while True:
        text = describe_minigrid(observation)
        if policy == "wall_follower":
            action = wall_follower(text, last_action)
        elif policy == "rules_sampled" and rng.random() < 0.2:
            action = int(rng.integers(3))
        else:
            action = rules(text)
        observation, reward, terminated, truncated, _ = env.step(action)
        total, last_action = total + float(reward), action
        if terminated or truncated:
            return total


def count_texts(suite: MazeSuite) -> tuple[int, int]:
    """(states, distinct texts) of the training layouts: every open cell but the goal, every heading."""
    env = suite.make()
    base, texts, states = env.unwrapped, set(), 0
    for k in range(len(suite.layouts())):
        env.reset(options={"layout_index": k})
        for x in range(base.width):
            for y in range(base.height):
                cell = base.grid.get(x, y)
                if cell is not None and cell.type in ("wall", "goal"):
                    continue
                for direction in range(4):
                    base.agent_pos, base.agent_dir = (x, y), direction
                    texts.add(describe_minigrid(base.gen_obs()))
                    states += 1
    env.close()
    return states, len(texts)


def main() -> None:
    suite = MazeSuite()
    states, texts = count_texts(suite)
    print(f"training layouts: {states} (cell, heading) states, {texts} distinct text observations\n")
    print("| policy | split | layouts | success rate | mean return |")
    print("| --- | --- | --- | --- | --- |")
    for policy in ("rules", "rules_sampled", "wall_follower"):
        for context in (TRAIN, *suite.held_out_contexts):
            env = suite.make(context)
            rng = np.random.default_rng(0)
            returns = np.array([play(env, k, policy, rng) for k in range(len(suite.layouts(context)))])
            print(f"| {policy} | {context} | {len(returns)} | {np.mean(returns > 0):.3f} | {returns.mean():.3f} |")
            env.close()


if __name__ == "__main__":
    main()
