"""The common runner: orchestrate one run of ``agent × repr × env × seed``.

``run(cfg)`` is the whole job:

1. check the config (``llmrl_bench.validation``) and skip the run if ``results/`` already holds it;
2. train the agent through its own loop, which calls the run's hooks (``llmrl_bench.hooks``):
   they evaluate the evaluation policy at ``budget.num_evals + 1`` evenly spaced steps on the
   training split and every held-out context; resumable agents checkpoint on the way and
   resume from ``checkpoint.pt`` (``llmrl_bench.checkpoint``);
3. compute the four metrics (``llmrl_bench.metrics``) from the evaluation curve;
4. write ``results/runs/<run_id>/`` atomically, then report to W&B.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from llmrl_bench import checkpoint, registry, results
from llmrl_bench import metrics as metric_fns
from llmrl_bench.envs.base import TRAIN, EnvSuite
from llmrl_bench.evaluation import mean_optimal_return
from llmrl_bench.errors import ConfigError, RunFailed
from llmrl_bench.hooks import RunHooks
from llmrl_bench.locking import run_lock
from llmrl_bench.progress import RunProgress, SweepPosition
from llmrl_bench.provenance import reset_peak_memory, run_provenance, start_provenance
from llmrl_bench.representations.base import Representation
from llmrl_bench.rewards import build_reward
from llmrl_bench.run_envs import RunEnvs
from llmrl_bench.tracking import make_tracker
from llmrl_bench.validation import check_config

log = logging.getLogger(__name__)

__all__ = ["ConfigError", "RunFailed", "RunEnvs", "run", "run_with_status", "seed_everything"]


def experiment_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain data (what ``result.json`` and W&B store).

    An infinite setting (``env.num_train_layouts=inf``) is stored as the string ``"inf"``: JSON
    has no infinity, and the null a result file would otherwise hold could not be run again.
    """
    return _infinities_as_text(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))


def _infinities_as_text(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {key: _infinities_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_infinities_as_text(item) for item in value]
    return value


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_agent(agent_cfg: DictConfig | dict, envs: RunEnvs, seed: int):
    """The agent of ``cfg.agent``: its registered class (``_target_``) built from its typed config dataclass."""
    config = registry.typed_config(agent_cfg)
    return get_class(config._target_)(config, envs.observation_space, envs.action_space, seed)


@dataclass
class Run:
    """What one run is: its config, identity and components."""

    cfg: DictConfig
    config: dict[str, Any]
    run_id: str
    results_dir: Path
    suite: EnvSuite
    representation: Representation
    labels: dict[str, Any]
    position: SweepPosition | None = None
    """Which job of a sweep this is, for the progress line."""

    @property
    def title(self) -> str:
        labels = self.labels
        return f"{labels['agent']}/{labels['repr']}/{labels['env']}/seed={labels['seed']} [{self.run_id}]"

    @property
    def dir(self) -> Path:
        return results.run_dir(self.results_dir, self.run_id)


def run(cfg: DictConfig) -> dict[str, Any] | None:
    """Train, evaluate and record one run; returns its metrics (see :func:`run_with_status`)."""
    return run_with_status(cfg)[1]


def run_with_status(cfg: DictConfig, position: SweepPosition | None = None) -> tuple[str, dict[str, Any] | None]:
    """Train, evaluate and record one run; returns ``(status, metrics)``.

    ``status`` is ``done``, or ``skipped`` when ``results/`` already holds the run (its
    stored metrics are returned) or another process holds its lock (``None``). A crash
    writes a ``failed`` record and raises :class:`RunFailed`.
    """
    check_config(cfg)
    config = experiment_config(cfg)
    suite: EnvSuite = instantiate(cfg.env)
    representation: Representation = instantiate(cfg.repr)
    labels = {"agent": get_class(cfg.agent._target_).name, "env": suite.name, "repr": representation.name, "seed": int(cfg.seed)}
    this = Run(cfg, config, results.run_id(config), Path(cfg.results_dir), suite, representation, labels, position)
    existing = _existing_metrics(this)
    if existing is not None:
        return "skipped", existing
    with run_lock(this.results_dir, this.run_id) as locked:
        if not locked:
            log.info("skip %s: another process is running it", this.title)
            return "skipped", None
        existing = _existing_metrics(this)  # finished by another sweep meanwhile
        if existing is not None:
            return "skipped", existing
        return "done", _train_and_record(this)


def _existing_metrics(this: Run) -> dict[str, Any] | None:
    """The stored metrics of a finished run that is not to be re-run (``overwrite=false``)."""
    existing = results.completed_result(this.results_dir, this.run_id)
    if existing is None or this.cfg.overwrite:
        return None
    log.info("skip %s: result exists (overwrite=true re-runs it)", this.title)
    # A kill between writing the result and removing the checkpoint leaves a stale one behind.
    (this.dir / checkpoint.CHECKPOINT_FILE).unlink(missing_ok=True)
    return existing.metrics


def _train_and_record(this: Run) -> dict[str, Any]:
    cfg, labels = this.cfg, this.labels
    torch.set_num_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    reset_peak_memory()  # a sweep worker runs job after job: provenance gives this run's own peak
    started_at = start_provenance(torch.get_num_threads())  # the code as it was when the run began
    tracker = make_tracker(
        cfg.logger, this.results_dir, name=f"{labels['agent']}-{labels['repr']}-{labels['env']}-s{labels['seed']}",
        group=cfg.sweep, tags=[f"agent:{labels['agent']}", f"env:{labels['env']}", f"repr:{labels['repr']}", f"sweep:{cfg.sweep}"],
        config={**this.config, "run_id": this.run_id}, job_type=labels["agent"],
    )
    log.info("run %s", this.title)
    clock = RunClock()
    hooks = None
    progress = RunProgress(this.title, cfg.budget.env_steps, enabled=cfg.progress, position=this.position)
    signals = checkpoint.PreemptionSignals()
    try:
        envs = RunEnvs(this.suite, this.representation, build_reward(cfg.get("reward"), this.suite, cfg.seed), tracker.log)
        agent = build_agent(cfg.agent, envs, cfg.seed)
        hooks = RunHooks(agent, envs, cfg.budget, cfg.logger.log_every_steps, tracker, progress)
        hooks.policy_path = this.dir / results.POLICY_FILE
        resumable = _resumable(this, agent, envs)
        saved = _resume(this, agent, hooks, clock) if resumable else None
        if saved is not None:
            started_at = saved["provenance"]
        if resumable:
            _install_checkpointer(this, agent, hooks, signals, clock, started_at)
        try:
            if saved is None:
                hooks.on_step(0)  # the step-0 evaluation of the untrained policy
            agent.learn(envs, cfg.budget.env_steps, hooks)
            if hooks.next_eval < len(hooks.eval_steps):
                raise RuntimeError(f"agent {labels['agent']} stopped at step {hooks.global_step}, before the budget of {cfg.budget.env_steps}")
        finally:
            progress.close()
            hooks.close()
        provenance = run_provenance(started_at, clock.seconds(), hooks.global_step,
                                    wandb_run_dir=getattr(tracker, "run_dir", None), **getattr(agent, "provenance", dict)(),
                                    **envs.reward_provenance())
        record = _completed_record(this, hooks, provenance)
        results.write_episodes(this.results_dir, this.run_id, {k: np.array(v) for k, v in hooks.episodes.items()})
        path = results.write_result(record, this.results_dir)
        (this.dir / checkpoint.CHECKPOINT_FILE).unlink(missing_ok=True)
    except (checkpoint.Preempted, KeyboardInterrupt) as stop:  # Ctrl-C, SIGTERM: the checkpoint (if any) is written
        tracker.finish(exit_code=stop.code if isinstance(stop, SystemExit) else 130)
        raise
    except Exception as error:
        signals.restore()
        _record_failure(this, error, hooks, run_provenance(started_at, clock.seconds(), hooks.global_step if hooks else 0))
        tracker.finish(exit_code=1)
        raise RunFailed(f"{this.title}: {type(error).__name__}: {error}") from error
    finally:
        pending = signals.requested
        if not pending:
            signals.restore()
    _report(this, record, tracker, path)
    if pending:  # the signal came after the last checkpoint point; the result is safe, so stop now
        signals.stop()
    return record.metrics


class RunClock:
    """Wall seconds of a run, across resumes: the time before the last checkpoint plus this process's."""

    def __init__(self) -> None:
        self.before = 0.0
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.started


def _resumable(this: Run, agent, envs: RunEnvs) -> bool:
    """Checkpoints on, a resumable agent, and the env's own reward (an indirect reward's model is not saved)."""
    if not (this.cfg.checkpoint.enabled and getattr(agent, "resumable", False)):
        return False
    if envs.reward is not None:
        log.warning("%s: reward=%s runs are not checkpointed (the reward model's state is not saved); "
                    "a stopped run restarts from step 0", this.title, envs.reward.name)
        return False
    return True


def _install_checkpointer(this: Run, agent, hooks: RunHooks, signals, clock: RunClock, started_at: dict) -> None:
    """Periodic and on-signal checkpoints for resumable agents."""
    cfg = this.cfg
    if not signals.install():  # off the main thread (some launchers): periodic checkpoints only
        log.info("%s: no signal handlers off the main thread; checkpoints every %d steps only", this.title, cfg.checkpoint.every_steps)
    hooks.checkpointer = checkpoint.Checkpointer(
        this.dir / checkpoint.CHECKPOINT_FILE, cfg.checkpoint.every_steps, signals, title=this.title,
        state=lambda step: {"run_id": this.run_id, "global_step": step, "agent": agent.state_dict(),
                            "runner": hooks.state_dict(), "rng": checkpoint.rng_state(),
                            "wall_seconds": clock.seconds(), "provenance": started_at},
        start_step=hooks.global_step,
    )


def _resume(this: Run, agent, hooks: RunHooks, clock: RunClock) -> dict[str, Any] | None:
    """Restore the agent, the curve so far, the clock and the global RNGs from the run's checkpoint, if any."""
    saved = checkpoint.load_checkpoint(this.dir / checkpoint.CHECKPOINT_FILE, this.run_id)
    if saved is None:
        return None
    agent.load_state_dict(saved["agent"])
    hooks.load_state_dict(saved["runner"])
    checkpoint.set_rng_state(saved["rng"])
    clock.before = float(saved.get("wall_seconds", 0.0))
    saved.setdefault("provenance", start_provenance(torch.get_num_threads()))
    log.info("resume %s from step %d", this.title, saved["global_step"])
    return saved


def _record_failure(this: Run, error: BaseException, hooks: RunHooks | None, provenance: dict[str, Any]) -> None:
    log.error("failed %s: %s: %s", this.title, type(error).__name__, error)
    record = results.RunResult(
        run_id=this.run_id, sweep=this.cfg.sweep, config=this.config, metrics={}, status="failed",
        error=f"{type(error).__name__}: {error}", curve=hooks.curve if hooks is not None else [],
        provenance=provenance, **this.labels,
    )
    try:
        results.write_result(record, this.results_dir)
    except Exception as write_error:  # noqa: BLE001 - e.g. the disk is full; the log line above remains
        log.error("could not record the failure of %s: %s", this.title, write_error)


def _completed_record(this: Run, hooks: RunHooks, provenance: dict[str, Any]) -> results.RunResult:
    curve, suite = hooks.curve, this.suite
    run_metrics = metric_fns.compute_run_metrics(
        steps=np.array([p["step"] for p in curve]),
        train_curve=np.array([p["train_return"] for p in curve]),
        held_out_curve=np.array([p["held_out_return"] for p in curve]),
        final_train_returns=hooks.last_train_returns,
        final_held_out_returns=hooks.last_held_out_returns,
        score_range=tuple(suite.score_range),
        reward_threshold=suite.reward_threshold,
    )
    return results.RunResult(
        run_id=this.run_id, sweep=this.cfg.sweep, config=this.config, metrics=run_metrics, curve=curve, provenance=provenance,
        env_info={
            "gym_id": suite.gym_id,
            "score_range": list(suite.score_range),
            "reward_threshold": suite.reward_threshold,
            "held_out_contexts": list(suite.held_out_contexts),
            "optimal_return": _optimal_returns(suite, this.cfg.budget),
        },
        **this.labels,
    )


def _optimal_returns(suite, budget) -> dict[str, float | None]:
    """Per split, the mean best possible return of the episodes the run was evaluated on (normalized returns divide by it)."""
    contexts = {TRAIN: budget.eval_episodes} | {context: budget.held_out_episodes for context in suite.held_out_contexts}
    return {context: mean_optimal_return(suite, context, episodes) for context, episodes in contexts.items()}


def _report(this: Run, record: results.RunResult, tracker, path: Path) -> None:
    """The run's summary to W&B and one log line."""
    provenance = record.provenance
    tracker.summary({**{k: v for k, v in record.metrics.items() if v is not None}, "run_id": this.run_id,
                     "provenance/env_steps_per_second": provenance["env_steps_per_second"],
                     **{f"provenance/{k}": v for k, v in provenance.items() if k.startswith(("llm_", "reward_"))}})
    tracker.finish()
    log.info("done %s (%.1fs, %.0f steps/s) -> %s", this.title, provenance["wall_seconds"], provenance["env_steps_per_second"], path)
