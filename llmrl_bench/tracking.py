"""Reporting to Weights & Biases. ``results/`` is the source of truth; W&B is a view of it.

Every W&B call is guarded: a failing W&B logs one warning, turns the tracker off and
never stops training or the writing of ``results/``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class NullTracker:
    """``logger=none``: records nothing."""

    run_dir: str | None = None

    def log(self, step: int, values: dict[str, Any]) -> None:
        pass

    def summary(self, values: dict[str, Any]) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


class WandbTracker(NullTracker):
    """One W&B run per benchmark run; offline unless ``WANDB_MODE``/``logger.mode`` say online."""

    def __init__(
        self,
        project: str,
        entity: str | None,
        mode: str,
        directory: Path,
        name: str,
        group: str,
        tags: list[str],
        config: dict[str, Any],
        job_type: str,
    ):
        self._run = None
        try:
            import wandb

            directory.mkdir(parents=True, exist_ok=True)
            self._run = wandb.init(
                project=project,
                entity=entity,
                mode=os.environ.get("WANDB_MODE", mode),
                dir=str(directory),
                name=name,
                group=group,
                job_type=job_type,
                tags=tags,
                config=config,
                reinit="create_new",
                settings=wandb.Settings(
                    silent=True,
                    console="off",
                    x_disable_stats=True,  # no system-metrics sampler (and no cloud-metadata probes)
                    x_disable_machine_info=True,
                    disable_git=True,
                    disable_code=True,
                    disable_job_creation=True,
                ),
            )
            self._run.define_metric("charts/*", step_metric="global_step")
            self._run.define_metric("losses/*", step_metric="global_step")
            self._run.define_metric("eval/*", step_metric="global_step")
            self.run_dir = str(Path(self._run.dir).parent)
        except Exception as error:  # noqa: BLE001 - W&B must never stop a run
            self._disable("init", error)

    def _disable(self, where: str, error: Exception) -> None:
        log.warning("W&B %s failed (%s: %s); continuing without W&B", where, type(error).__name__, error)
        self._run = None

    def log(self, step: int, values: dict[str, Any]) -> None:
        if self._run is None:
            return
        try:
            self._run.log({"global_step": step, **values})
        except Exception as error:  # noqa: BLE001
            self._disable("log", error)

    def summary(self, values: dict[str, Any]) -> None:
        if self._run is None:
            return
        try:
            for key, value in values.items():
                self._run.summary[key] = value
        except Exception as error:  # noqa: BLE001
            self._disable("summary", error)

    def finish(self, exit_code: int = 0) -> None:
        if self._run is None:
            return
        try:
            self._run.finish(exit_code=exit_code)
        except Exception as error:  # noqa: BLE001
            self._disable("finish", error)


def make_tracker(logger_cfg: Any, results_dir: Path, name: str, group: str, tags: list[str], config: dict[str, Any], job_type: str) -> NullTracker:
    """The tracker ``logger_cfg.kind`` asks for (``wandb`` or ``none``)."""
    if logger_cfg.kind == "none" or logger_cfg.mode == "disabled":
        return NullTracker()
    return WandbTracker(
        project=logger_cfg.project,
        entity=logger_cfg.entity,
        mode=getattr(logger_cfg.mode, "value", logger_cfg.mode),
        directory=results_dir,
        name=name,
        group=group,
        tags=tags,
        config=config,
        job_type=job_type,
    )
