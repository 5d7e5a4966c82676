"""What the runner needs from an environment: a training split, held-out contexts, a score range.

An env config (``conf/env/*.yaml``) instantiates an :class:`EnvSuite` through ``_target_``.
Environments themselves are plain Gymnasium envs registered by id; the suite only says
which ids/contexts form the training distribution and which are held out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import gymnasium as gym

TRAIN = "train"

#: Evaluation episodes are reset with seeds from here on, never used in training.
EVAL_SEED_OFFSET = 1_000_003


class EnvSuite(ABC):
    """One benchmark environment: its training distribution and its held-out variants.

    Attributes:
        name: short name used in results (``cartpole``, ``maze``, ``MiniGrid-Empty-5x5-v0``).
        gym_id: registered id of the training env, citable in a paper.
        score_range: (min, max) return, used to normalise metrics across envs.
        reward_threshold: return at which the env counts as solved (``learning_speed``).
        max_episode_steps: the training env's time limit.
        held_out_contexts: names of the held-out variants, never seen in training.
        family: ``"classic_control"`` or ``"minigrid"``; tells representations how to read observations.
    """

    name: str
    gym_id: str
    score_range: tuple[float, float]
    reward_threshold: float | None
    max_episode_steps: int
    held_out_contexts: list[str]
    family: str

    @abstractmethod
    def make(self, context: str = TRAIN) -> gym.Env:
        """A raw env (no representation wrapper) of the training split or of one held-out context."""

    def make_native_vec(self, num_envs: int) -> gym.vector.VectorEnv | None:
        """``num_envs`` raw training envs in one natively vectorised env (autoreset mode NEXT_STEP),
        or ``None`` when the suite has none (the runner then steps single envs together)."""
        return None
