"""The common runner: train one agent, evaluate it on fixed checkpoints, score it, record it.

``run(cfg)`` is the whole job of one ``agent × repr × env × seed``:

1. check the config and skip the run if ``results/`` already holds it;
2. train the agent through its own loop, evaluating greedily at ``budget.num_evals + 1``
   evenly spaced steps on the training split and every held-out context; resumable
   agents checkpoint on the way and resume from ``checkpoint.pt`` (``llmrl_bench.checkpoint``);
3. compute the four metrics (``llmrl_bench.metrics``) from the evaluation curve;
4. write ``results/runs/<run_id>/`` atomically, then report to W&B.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import logging
import math
import platform
import random
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from llmrl_bench import checkpoint
from llmrl_bench import metrics as metric_fns
from llmrl_bench import results
from llmrl_bench.envs.base import TRAIN, EnvSuite
from llmrl_bench.evaluation import Evaluator
from llmrl_bench.progress import RunProgress
from llmrl_bench.representations.base import Representation
from llmrl_bench.tracking import make_tracker

log = logging.getLogger(__name__)

PROVENANCE_PACKAGES = ("llmrl_bench", "torch", "numpy", "gymnasium", "minigrid", "hydra-core", "wandb", "transformers")


class ConfigError(ValueError):
    """A config that cannot run; its message is one line naming the bad value."""


def check_config(cfg: DictConfig) -> None:
    """Reject configs that would fail or mislead, before anything is trained or written."""
    budget = cfg.budget
    for key in ("env_steps", "num_evals", "eval_episodes", "held_out_episodes"):
        if budget[key] <= 0:
            raise ConfigError(f"budget.{key}={budget[key]} must be a positive integer")
    agent_class = get_class(cfg.agent._target_)
    repr_name = cfg.repr.get("name") or get_class(cfg.repr._target_).name
    allowed = tuple(agent_class.supported_reprs)
    if repr_name not in allowed:
        raise ConfigError(
            f"repr={repr_name} is not supported by agent={agent_class.name}; allowed: {', '.join(allowed)}"
        )
    if cfg.checkpoint.every_steps <= 0:
        raise ConfigError(f"checkpoint.every_steps={cfg.checkpoint.every_steps} must be a positive integer")
    for component in (agent_class, get_class(cfg.repr._target_)):  # component-specific checks, one line each
        validate = getattr(component, "check_config", None)
        if validate is not None:
            validate(cfg)


def experiment_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain data (what ``result.json`` and W&B store)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def evaluation_steps(env_steps: int, num_evals: int) -> list[int]:
    """``num_evals + 1`` evenly spaced evaluation steps from 0 to ``env_steps``."""
    return [round(i * env_steps / num_evals) for i in range(num_evals + 1)]


class RunEnvs:
    """The :class:`~llmrl_bench.agents.base.EnvFactory` of one run: training split, in the run's representation."""

    def __init__(self, suite: EnvSuite, representation: Representation):
        self.suite = suite
        self.representation = representation
        probe = self.make()
        self.observation_space = probe.observation_space
        self.action_space = probe.action_space
        probe.close()

    def make(self):
        return self.representation.wrap(self.suite.make(TRAIN), self.suite)

    def make_vec(self, num_envs: int):
        return self.suite.make_vec(num_envs, self.representation)


class RunnerHooks:
    """Evaluation, logging and progress, driven by the agent's own training loop."""

    def __init__(self, agent, suite: EnvSuite, representation: Representation, cfg: DictConfig, tracker, progress: RunProgress):
        budget = cfg.budget
        self.agent = agent
        self.tracker = tracker
        self.progress = progress
        self.log_every = cfg.logger.log_every_steps
        self.eval_steps = evaluation_steps(budget.env_steps, budget.num_evals)
        self.next_eval = 0
        self.global_step = 0
        self.curve: list[dict[str, Any]] = []
        self.episodes: dict[str, list[float]] = {"step": [], "return": [], "length": []}
        self.last_logged = -self.log_every
        self.last_train_returns = np.zeros(0)
        self.last_held_out_returns = np.zeros((0, 0))
        wrap = lambda context: (lambda: representation.wrap(suite.make(context), suite))  # noqa: E731
        self.train_evaluator = Evaluator(wrap(TRAIN), budget.eval_episodes, representation.is_text)
        self.held_out_evaluators = {
            context: Evaluator(wrap(context), budget.held_out_episodes, representation.is_text)
            for context in suite.held_out_contexts
        }
        self.checkpointer: checkpoint.Checkpointer | None = None
        self.policy_path: Path | None = None
        """Where the last evaluation saves the policy it evaluated (the run's final policy)."""

    # -- TrainingHooks -------------------------------------------------------
    def on_step(self, global_step: int) -> None:
        self.global_step = global_step
        while self.next_eval < len(self.eval_steps) and global_step >= self.eval_steps[self.next_eval]:
            self.evaluate(self.eval_steps[self.next_eval])
        self.progress.update(global_step)

    def on_episode(self, global_step: int, episodic_return: float, episodic_length: int) -> None:
        self.episodes["step"].append(global_step)
        self.episodes["return"].append(float(episodic_return))
        self.episodes["length"].append(int(episodic_length))
        if global_step - self.last_logged >= self.log_every:
            self.last_logged = global_step
            self.tracker.log(global_step, {"charts/episodic_return": float(episodic_return), "charts/episodic_length": int(episodic_length)})

    def log(self, global_step: int, values: dict[str, Any]) -> None:
        check_finite(values, global_step)
        self.tracker.log(global_step, values)

    def checkpoint_point(self, global_step: int) -> None:
        if self.checkpointer is not None:
            self.checkpointer.point(global_step)

    # -- checkpoint state ----------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The run so far: curve, episodes, evaluation cursor (what a resumed run continues)."""
        return {
            "global_step": self.global_step, "next_eval": self.next_eval, "curve": list(self.curve),
            "episodes": {key: list(values) for key, values in self.episodes.items()},
            "last_logged": self.last_logged,
            "last_train_returns": self.last_train_returns, "last_held_out_returns": self.last_held_out_returns,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_step, self.next_eval = int(state["global_step"]), int(state["next_eval"])
        self.curve, self.episodes = list(state["curve"]), {k: list(v) for k, v in state["episodes"].items()}
        self.last_logged = state["last_logged"]
        self.last_train_returns, self.last_held_out_returns = state["last_train_returns"], state["last_held_out_returns"]
        self.progress.update(self.global_step)

    # -- evaluation ----------------------------------------------------------
    def evaluate(self, step: int) -> None:
        """Evaluate the current greedy policy and record the curve point for ``step``."""
        self.last_train_returns = self.train_evaluator.evaluate(self.agent)
        held_out = {context: evaluator.evaluate(self.agent) for context, evaluator in self.held_out_evaluators.items()}
        self.last_held_out_returns = np.stack(list(held_out.values()))
        point = {
            "step": int(step),
            "train_return": float(self.last_train_returns.mean()),
            "held_out_return": float(self.last_held_out_returns.mean()),
            "held_out": {context: float(returns.mean()) for context, returns in held_out.items()},
        }
        self.curve.append(point)
        self.next_eval += 1
        if self.next_eval == len(self.eval_steps) and self.policy_path is not None:
            self.agent.save(self.policy_path)  # the policy of the last curve point, not of later updates
        self.progress.set_eval(point["train_return"])
        self.tracker.log(step, {
            "eval/train_return": point["train_return"],
            "eval/held_out_return": point["held_out_return"],
            **{f"eval/held_out/{context}": value for context, value in point["held_out"].items()},
        })

    def close(self) -> None:
        self.train_evaluator.close()
        for evaluator in self.held_out_evaluators.values():
            evaluator.close()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> str | None:
    """The checkout's commit, with ``+dirty`` when tracked files differ from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def peak_memory_mb() -> float:
    """Peak resident memory of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RunFailed(RuntimeError):
    """A run crashed; its ``failed`` record is in ``results/``."""


@contextmanager
def run_lock(results_dir: Path, run_id: str) -> Iterator[bool]:
    """An exclusive, non-blocking lock on one run_id; yields whether this process holds it.

    Two sweeps sharing a results dir never run the same run_id at once. The OS drops
    the lock when the process dies, so a killed sweep leaves nothing to clean up.
    """
    path = results.run_dir(results_dir, run_id) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_finite(values: dict[str, Any], step: int) -> None:
    """Fail fast on a diverged loss instead of training on NaNs."""
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value) and key.startswith("losses/"):
            raise FloatingPointError(f"{key} is {value} at step {step}")


def run(cfg: DictConfig) -> dict[str, Any] | None:
    """Train, evaluate and record one run; returns its metrics (see :func:`run_with_status`)."""
    return run_with_status(cfg)[1]


def run_with_status(cfg: DictConfig) -> tuple[str, dict[str, Any] | None]:
    """Train, evaluate and record one run; returns ``(status, metrics)``.

    ``status`` is ``done``, or ``skipped`` when ``results/`` already holds the run (its
    stored metrics are returned) or another process holds its lock (``None``). A crash
    writes a ``failed`` record and raises :class:`RunFailed`.
    """
    check_config(cfg)
    config = experiment_config(cfg)
    run_id = results.run_id(config)
    results_dir = Path(cfg.results_dir)
    agent_class = get_class(cfg.agent._target_)
    suite: EnvSuite = instantiate(cfg.env)
    representation: Representation = instantiate(cfg.repr)
    labels = {"agent": agent_class.name, "env": suite.name, "repr": representation.name, "seed": int(cfg.seed)}
    title = f"{labels['agent']}/{labels['repr']}/{labels['env']}/seed={labels['seed']} [{run_id}]"

    existing = results.completed_result(results_dir, run_id)
    if existing is not None and not cfg.overwrite:
        log.info("skip %s: result exists (overwrite=true re-runs it)", title)
        return "skipped", existing.metrics
    with run_lock(results_dir, run_id) as locked:
        if not locked:
            log.info("skip %s: another process is running it", title)
            return "skipped", None
        existing = results.completed_result(results_dir, run_id)
        if existing is not None and not cfg.overwrite:  # finished by another sweep meanwhile
            log.info("skip %s: result exists (overwrite=true re-runs it)", title)
            return "skipped", existing.metrics
        return "done", _train_and_record(cfg, config, run_id, results_dir, suite, representation, labels, title)


def _failed_record(cfg: DictConfig, config: dict, run_id: str, labels: dict, error: BaseException, hooks: "RunnerHooks | None", wall_seconds: float) -> results.RunResult:
    steps = hooks.global_step if hooks is not None else 0
    return results.RunResult(
        run_id=run_id, sweep=cfg.sweep, config=config, metrics={}, status="failed",
        error=f"{type(error).__name__}: {error}", curve=hooks.curve if hooks is not None else [],
        provenance={
            "packages": package_versions(), "git_commit": git_commit(), "wall_seconds": wall_seconds,
            "env_steps": int(steps), "env_steps_per_second": steps / max(wall_seconds, 1e-9), "peak_memory_mb": peak_memory_mb(),
        },
        **labels,
    )


def _train_and_record(cfg, config, run_id, results_dir, suite, representation, labels, title) -> dict[str, Any]:
    torch.set_num_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    tracker = make_tracker(
        cfg.logger, results_dir, name=f"{labels['agent']}-{labels['repr']}-{labels['env']}-s{labels['seed']}",
        group=cfg.sweep, tags=[f"agent:{labels['agent']}", f"env:{labels['env']}", f"repr:{labels['repr']}", f"sweep:{cfg.sweep}"],
        config={**config, "run_id": run_id}, job_type=labels["agent"],
    )
    log.info("run %s", title)
    started = time.perf_counter()
    hooks = None
    progress = RunProgress(title, cfg.budget.env_steps, enabled=cfg.progress)
    checkpoint_path = results.run_dir(results_dir, run_id) / checkpoint.CHECKPOINT_FILE
    signals = checkpoint.PreemptionSignals()
    try:
        envs = RunEnvs(suite, representation)
        agent = instantiate(cfg.agent, observation_space=envs.observation_space, action_space=envs.action_space, seed=cfg.seed)
        hooks = RunnerHooks(agent, suite, representation, cfg, tracker, progress)
        hooks.policy_path = results.run_dir(results_dir, run_id) / results.POLICY_FILE
        saved = _resume(cfg, agent, hooks, checkpoint_path, run_id, title)
        if cfg.checkpoint.enabled and getattr(agent, "resumable", False):
            if not signals.install():  # off the main thread (some launchers): periodic checkpoints only
                log.info("%s: no signal handlers off the main thread; checkpoints every %d steps only", title, cfg.checkpoint.every_steps)
            hooks.checkpointer = checkpoint.Checkpointer(
                checkpoint_path, cfg.checkpoint.every_steps, signals, title=title,
                state=lambda step: {"run_id": run_id, "global_step": step, "agent": agent.state_dict(),
                                    "runner": hooks.state_dict(), "rng": checkpoint.rng_state()},
                start_step=hooks.global_step,
            )
        try:
            if saved is None:
                hooks.on_step(0)  # the step-0 evaluation of the untrained policy
            agent.learn(envs, cfg.budget.env_steps, hooks)
            if hooks.next_eval < len(hooks.eval_steps):
                raise RuntimeError(
                    f"agent {labels['agent']} stopped at step {hooks.global_step}, before the budget of {cfg.budget.env_steps}"
                )
        finally:
            progress.close()
            hooks.close()
        wall_seconds = time.perf_counter() - started
        record = _completed_record(cfg, config, run_id, suite, agent, hooks, tracker, labels, wall_seconds)
        results.write_episodes(results_dir, run_id, {k: np.array(v) for k, v in hooks.episodes.items()})
        path = results.write_result(record, results_dir)
        checkpoint_path.unlink(missing_ok=True)
    except checkpoint.Preempted:
        tracker.finish(exit_code=1)
        raise
    except Exception as error:
        signals.restore()
        wall_seconds = time.perf_counter() - started
        log.error("failed %s: %s: %s", title, type(error).__name__, error)
        try:
            results.write_result(_failed_record(cfg, config, run_id, labels, error, hooks, wall_seconds), results_dir)
        except Exception as write_error:  # noqa: BLE001 - e.g. the disk is full; the log line above remains
            log.error("could not record the failure of %s: %s", title, write_error)
        tracker.finish(exit_code=1)
        raise RunFailed(f"{title}: {type(error).__name__}: {error}") from error
    finally:
        pending = signals.requested
        if not pending:
            signals.restore()
    run_metrics = record.metrics
    tracker.summary({**{k: v for k, v in run_metrics.items() if v is not None}, "run_id": run_id,
                     "provenance/env_steps_per_second": record.provenance["env_steps_per_second"],
                     **{f"provenance/{k}": v for k, v in record.provenance.items() if k.startswith("llm_")}})
    tracker.finish()
    log.info(
        "done %s: cumulative_reward=%.3f generalization=%.3f (%.1fs, %.0f steps/s) -> %s",
        title, run_metrics["cumulative_reward"], run_metrics["generalization"], wall_seconds,
        record.provenance["env_steps_per_second"], path,
    )
    if pending:  # the signal came after the last checkpoint point; the result is safe, so stop now
        signals.stop()
    return run_metrics


def _resume(cfg, agent, hooks: RunnerHooks, path: Path, run_id: str, title: str) -> dict[str, Any] | None:
    """Restore the agent, the curve so far and the global RNGs from the run's checkpoint, if any."""
    if not (cfg.checkpoint.enabled and getattr(agent, "resumable", False)):
        return None
    saved = checkpoint.load_checkpoint(path, run_id)
    if saved is None:
        return None
    agent.load_state_dict(saved["agent"])
    hooks.load_state_dict(saved["runner"])
    checkpoint.set_rng_state(saved["rng"])
    log.info("resume %s from step %d", title, saved["global_step"])
    return saved


def _completed_record(cfg, config, run_id, suite, agent, hooks, tracker, labels, wall_seconds) -> results.RunResult:
    curve = hooks.curve
    run_metrics = metric_fns.compute_run_metrics(
        steps=np.array([p["step"] for p in curve]),
        train_curve=np.array([p["train_return"] for p in curve]),
        held_out_curve=np.array([p["held_out_return"] for p in curve]),
        final_train_returns=hooks.last_train_returns,
        final_held_out_returns=hooks.last_held_out_returns,
        score_range=tuple(suite.score_range),
        reward_threshold=suite.reward_threshold,
    )
    provenance = {
        "packages": package_versions(),
        "git_commit": git_commit(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "wall_seconds": wall_seconds,
        "env_steps": int(hooks.global_step),
        "env_steps_per_second": hooks.global_step / wall_seconds,
        "peak_memory_mb": peak_memory_mb(),
        "wandb_run_dir": getattr(tracker, "run_dir", None),
        **getattr(agent, "provenance", lambda: {})(),
    }
    return results.RunResult(
        run_id=run_id, sweep=cfg.sweep, config=config, metrics=run_metrics, curve=curve, provenance=provenance,
        env_info={
            "gym_id": suite.gym_id,
            "score_range": list(suite.score_range),
            "reward_threshold": suite.reward_threshold,
            "held_out_contexts": list(suite.held_out_contexts),
        },
        **labels,
    )
