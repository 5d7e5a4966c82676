"""Leaderboard tracks: the envs, seeds, budget and package versions a submission must follow.

Tracks live in ``conf/leaderboard/tracks.yaml`` and are read with OmegaConf; they are not a
run config group. An env of a track is a ``conf/env/`` option pinned to the gym id its
suite registers; :func:`env_spec` composes that option as the CLI would, so the standard
env config, score range, threshold and held-out contexts come from this checkout, never
from a submission.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from llmrl_bench.config import CONFIG_DIR, CONFIG_NAME, register_configs

TRACKS_PATH = CONFIG_DIR / "leaderboard" / "tracks.yaml"
#: The fewest seeds a track may ask for (Agarwal et al. 2021: fewer make CIs meaningless).
MIN_SEEDS = 10
BUDGET_KEYS = ("env_steps", "num_evals", "eval_episodes", "held_out_episodes")


class TrackError(ValueError):
    """A track file that cannot be used; the message is one line naming the bad entry."""


@dataclass(frozen=True)
class EnvSpec:
    """One env of a track as this checkout defines it (``conf/env/<option>.yaml``)."""

    option: str
    name: str
    gym_id: str
    config: dict[str, Any]
    score_range: tuple[float, float]
    reward_threshold: float | None
    held_out_contexts: tuple[str, ...]


@dataclass(frozen=True)
class Track:
    """A leaderboard track: every submission to it runs the same protocol."""

    name: str
    description: str
    num_seeds: int
    budget: dict[str, int]
    envs: dict[str, str]
    """``conf/env/`` option -> the gym id it must register (the pinned env version)."""
    packages: dict[str, str]
    """package -> version specifier (PEP 440), e.g. ``gymnasium: ">=1.0,<2"``."""

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(range(self.num_seeds))

    def env_specs(self) -> dict[str, EnvSpec]:
        """The track's envs keyed by the env name runs record (``result.env``)."""
        specs = {}
        for option, gym_id in self.envs.items():
            spec = env_spec(option)
            if spec.gym_id != gym_id:
                raise TrackError(
                    f"track {self.name}: env {option} is pinned to {gym_id} but conf/env/{option}.yaml makes {spec.gym_id}"
                )
            specs[spec.name] = spec
        return specs

    def protocol(self) -> str:
        """One line: envs, seeds and budget."""
        budget = ", ".join(f"{key}={self.budget[key]}" for key in BUDGET_KEYS)
        return f"envs {', '.join(self.envs.values())}; seeds 0-{self.num_seeds - 1}; budget {budget}"

    def sweep_overrides(self, agent: str = "<agent>") -> list[str]:
        """The CLI overrides of the sweep that makes a complete submission for ``agent``."""
        return [
            f"agent={agent}", f"env={','.join(self.envs)}", f"seed=0-{self.num_seeds - 1}",
            *(f"budget.{key}={self.budget[key]}" for key in BUDGET_KEYS), f"sweep={self.name}", "logger=none",
        ]

    def sweep_command(self, agent: str = "<agent>") -> str:
        return "python -m llmrl_bench -m " + " ".join(self.sweep_overrides(agent))


def load_tracks(path: str | Path | None = None) -> dict[str, Track]:
    """Every track of ``path`` (default ``conf/leaderboard/tracks.yaml``), checked; raises :class:`TrackError`."""
    path = Path(path) if path is not None else TRACKS_PATH
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is one line
        raise TrackError(f"{path}: cannot read the tracks: {error}") from None
    if not isinstance(raw, dict) or not raw:
        raise TrackError(f"{path}: expected a mapping of track name -> track")
    return {str(name): _track(str(name), entry, path) for name, entry in raw.items()}


def _track(name: str, entry: Any, path: Path) -> Track:
    where = f"{path}: track {name}"
    if not isinstance(entry, dict):
        raise TrackError(f"{where}: expected a mapping")
    unknown = set(entry) - {"description", "num_seeds", "budget", "envs", "packages"}
    if unknown:
        raise TrackError(f"{where}: unknown keys {sorted(unknown)}")
    num_seeds = entry.get("num_seeds")
    if not isinstance(num_seeds, int) or num_seeds < MIN_SEEDS:
        raise TrackError(f"{where}: num_seeds={num_seeds!r} must be an integer >= {MIN_SEEDS}")
    budget = entry.get("budget") or {}
    if sorted(budget) != sorted(BUDGET_KEYS) or not all(isinstance(v, int) and v > 0 for v in budget.values()):
        raise TrackError(f"{where}: budget must set {', '.join(BUDGET_KEYS)} to positive integers")
    envs = entry.get("envs") or {}
    if not isinstance(envs, dict) or not envs or not all(isinstance(v, str) for v in envs.values()):
        raise TrackError(f"{where}: envs must map conf/env options to gym ids")
    packages = entry.get("packages") or {}
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    for package, spec in packages.items():
        try:
            SpecifierSet(str(spec))
        except InvalidSpecifier:
            raise TrackError(f"{where}: packages.{package}={spec!r} is not a version specifier") from None
    return Track(
        name=name, description=str(entry.get("description", "")), num_seeds=num_seeds,
        budget={key: int(budget[key]) for key in BUDGET_KEYS},
        envs={str(k): str(v) for k, v in envs.items()}, packages={str(k): str(v) for k, v in packages.items()},
    )


@functools.cache
def env_spec(option: str) -> EnvSpec:
    """Compose ``env=<option>`` as the CLI would and read its suite's ids and score range."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from hydra.utils import instantiate

    if not (CONFIG_DIR / "env" / f"{option}.yaml").is_file():
        raise TrackError(f"env {option!r} is not a conf/env option")
    register_configs()
    backup = get_gh_backup()  # leave a caller's Hydra state as it was
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            cfg = compose(config_name=CONFIG_NAME, overrides=[f"env={option}"])
    finally:
        restore_gh_from_backup(backup)
    suite = instantiate(cfg.env)
    return EnvSpec(
        option=option, name=suite.name, gym_id=suite.gym_id,
        config=OmegaConf.to_container(cfg.env, resolve=True),  # type: ignore[arg-type]
        score_range=(float(suite.score_range[0]), float(suite.score_range[1])),
        reward_threshold=None if suite.reward_threshold is None else float(suite.reward_threshold),
        held_out_contexts=tuple(suite.held_out_contexts),
    )
