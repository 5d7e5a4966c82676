"""CartPole-v1 (``env=cartpole``), with held-out physics variants never seen in training."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from llmrl_bench.registry import register
from llmrl_bench.envs.base import TRAIN, EnvSuite


CARTPOLE_ID = "CartPole-v1"

#: Gymnasium's CartPole physics (``length`` is half the pole's length, as in Gymnasium).
DEFAULT_PHYSICS = {"gravity": 9.8, "masspole": 0.1, "length": 0.5, "force_mag": 10.0}

#: Held-out contexts: name -> (registered id, physics overriding ``DEFAULT_PHYSICS``).
CARTPOLE_CONTEXTS: dict[str, tuple[str, dict[str, float]]] = {
    "long_pole": ("LLMRL-CartPole-LongPole-v1", {"length": 1.0}),
    "heavy_pole": ("LLMRL-CartPole-HeavyPole-v1", {"masspole": 0.5}),
    "high_gravity": ("LLMRL-CartPole-HighGravity-v1", {"gravity": 15.0}),
    "weak_force": ("LLMRL-CartPole-WeakForce-v1", {"force_mag": 6.0}),
    "combined": ("LLMRL-CartPole-Combined-v1", {"length": 0.75, "masspole": 0.3, "gravity": 12.0, "force_mag": 8.0}),
}


class CartPolePhysicsEnv(CartPoleEnv):
    """
    ## Description

    Gymnasium's CartPole-v1 with its physics constants as arguments: gravity, pole mass, pole
    (half-)length and force magnitude. Derived constants (total mass, pole mass times length)
    are recomputed. Everything else (dynamics, thresholds, observation) is CartPole-v1's.

    ## Action Space

    ``Discrete(2)``: 0 pushes the cart left, 1 pushes it right, with ``force_mag`` newtons.

    ## Observation

    ``Box(4)``: cart position (m), cart velocity (m/s), pole angle (rad, positive = leaning
    right), pole angular velocity (rad/s, positive = rotating right).

    ## Rewards

    +1 for every step, including the terminating one (returns lie in [0, 500]).

    ## Termination

    1. Pole angle beyond ±12 degrees or cart position beyond ±2.4 m (terminated).
    2. 500 steps (truncated, through ``max_episode_steps``).

    ## Registered Configurations

    - `LLMRL-CartPole-LongPole-v1`: ``length=1.0`` (pole twice as long)
    - `LLMRL-CartPole-HeavyPole-v1`: ``masspole=0.5`` (five times heavier)
    - `LLMRL-CartPole-HighGravity-v1`: ``gravity=15.0``
    - `LLMRL-CartPole-WeakForce-v1`: ``force_mag=6.0``
    - `LLMRL-CartPole-Combined-v1`: ``length=0.75, masspole=0.3, gravity=12.0, force_mag=8.0``
    """

    def __init__(
        self,
        gravity: float = 9.8,
        masspole: float = 0.1,
        length: float = 0.5,
        force_mag: float = 10.0,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        self.gravity = float(gravity)
        self.masspole = float(masspole)
        self.length = float(length)
        self.force_mag = float(force_mag)
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length


class CartPoleSuite(EnvSuite):
    """CartPole-v1 for training; held-out contexts change the physics (see ``CARTPOLE_CONTEXTS``)."""

    gym_id = CARTPOLE_ID
    score_range = (0.0, 500.0)
    reward_threshold = 475.0
    max_episode_steps = 500
    family = "classic_control"

    def __init__(self, name: str = "cartpole", held_out_contexts: Sequence[str] = tuple(CARTPOLE_CONTEXTS)):
        unknown = set(held_out_contexts) - set(CARTPOLE_CONTEXTS)
        if unknown:
            raise ValueError(f"unknown CartPole contexts {sorted(unknown)}; known: {list(CARTPOLE_CONTEXTS)}")
        self.name = name
        self.held_out_contexts = list(held_out_contexts)

    def optimal_return(self, context: str, seed: int) -> float:
        """The documented maximum, 500 (+1 per step, 500-step limit, in every context)."""
        self._check_context(context)
        return float(self.max_episode_steps)

    def _check_context(self, context: str) -> None:
        if context != TRAIN and context not in self.held_out_contexts:
            raise ValueError(f"unknown CartPole context {context!r}; expected {TRAIN!r} or one of {self.held_out_contexts}")

    def make(self, context: str = TRAIN) -> gym.Env:
        self._check_context(context)
        return gym.make(CARTPOLE_ID if context == TRAIN else CARTPOLE_CONTEXTS[context][0])

    def make_native_vec(self, num_envs: int) -> gym.vector.VectorEnv:
        """Gymnasium's numpy-vectorised CartPole (autoreset mode NEXT_STEP, 500-step limit)."""
        envs = gym.make_vec(CARTPOLE_ID, num_envs=num_envs, vectorization_mode="vector_entry_point")
        assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
        return envs


@register("env", "cartpole")
@dataclass
class CartPoleConfig:
    """CartPole-v1 with held-out physics variants (``env=cartpole``)."""

    _target_: str = "llmrl_bench.envs.cartpole.CartPoleSuite"
    name: str = "cartpole"
    """Suite name in results."""
    held_out_contexts: list[str] = field(default_factory=lambda: list(CARTPOLE_CONTEXTS))
    """Held-out physics variants to evaluate (subset of long_pole, heavy_pole, high_gravity, weak_force, combined)."""
