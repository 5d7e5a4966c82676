"""Every number the leaderboard shows, recomputed from per-run data.

Per run, the metrics come from its evaluation curve and this checkout's env spec (score
range, reward threshold), never from the submitted ``metrics``. ``result.json`` keeps only
the curve's means, not the final per-episode returns; that is enough, because
``cumulative_reward`` is the final curve point's ``train_return`` and ``generalization``
its ``held_out_return`` (the same float64 means the runner takes).

Per submission: the IQM across seeds with a 95 % stratified-bootstrap CI
(``llmrl_bench.stats``, ``random_state=0``) for each env, and the IQM across seeds × envs
of the normalized metrics (rliable's aggregate over tasks) for the ranking.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from llmrl_bench.leaderboard.tracks import EnvSpec
from llmrl_bench.metrics import HEADLINE_METRICS, METRICS, run_metrics_from_curve
from llmrl_bench.stats import iqm, iqm_across_seeds, stratified_bootstrap_ci

SUMMARY_VERSION = 1
#: Submitted and recomputed numbers come from the same float64 arithmetic; this slack
#: only absorbs a JSON writer that prints fewer digits.
RECOMPUTE_RTOL = 1e-9
RECOMPUTE_ATOL = 1e-12
#: Per env, raw units (docs/metrics.md).
ENV_METRICS = (*HEADLINE_METRICS, "generalization_gap")
#: Across envs: normalized by each env's score range, so envs can be pooled.
OVERALL_METRICS = tuple(METRICS[name].pooled for name in ("cumulative_reward", "generalization", "learning_speed", "policy_stability"))
#: The ranking metric of the leaderboard (higher is better).
RANKING_METRIC = "cumulative_reward_normalized"


def recompute_run_metrics(curve: Sequence[dict[str, Any]], spec: EnvSpec) -> dict[str, Any]:
    """The run's metrics from its curve ``(num_points,)`` and the env's spec."""
    return run_metrics_from_curve(curve, spec.score_range, spec.reward_threshold)


def _estimate(point: float, low: float, high: float) -> dict[str, float]:
    return {"iqm": float(point), "ci_low": float(low), "ci_high": float(high)}


#: An aggregate over runs of which one or more has an undefined value (e.g. the stability of
#: a run that never learns): undefined too, shown "n/a" and ranked last, never a number.
UNDEFINED = {"iqm": None, "ci_low": None, "ci_high": None}


def _defined(values: list[Any]) -> bool:
    return all(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) for value in values)


def summarize(track: str, runs: Sequence[tuple[str, int, dict[str, Any]]]) -> dict[str, Any]:
    """The aggregates of a submission from ``(env, seed, recomputed metrics)`` per run.

    Every env must hold the same seeds (validation checks it first). An aggregate over a
    missing or undefined (``None``) value is :data:`UNDEFINED`. Returns the content
    of ``summary.json``: ``envs.<env>.<metric>`` and ``overall.<metric>``, each
    ``{iqm, ci_low, ci_high}``.
    """
    by_env: dict[str, dict[int, dict[str, Any]]] = {}
    for env, seed, run_metrics in runs:
        by_env.setdefault(env, {})[seed] = run_metrics
    envs = sorted(by_env)
    seeds = sorted(by_env[envs[0]]) if envs else []
    if any(sorted(by_env[env]) != seeds for env in envs):
        raise ValueError("every env must hold the same seeds")
    summary: dict[str, Any] = {"schema_version": SUMMARY_VERSION, "track": track, "num_runs": len(runs), "seeds": seeds, "envs": {}, "overall": {}}
    for env in envs:
        summary["envs"][env] = {}
        for metric in ENV_METRICS:
            values = [by_env[env][seed].get(metric) for seed in seeds]
            summary["envs"][env][metric] = _estimate(*iqm_across_seeds(np.array(values, dtype=np.float64))) if _defined(values) else dict(UNDEFINED)
    for metric in OVERALL_METRICS:
        rows = [[by_env[env][seed].get(metric) for env in envs] for seed in seeds]
        if not _defined([value for row in rows for value in row]):
            summary["overall"][metric] = dict(UNDEFINED)
            continue
        scores = np.array(rows, dtype=np.float64)  # (num_runs, num_tasks)
        summary["overall"][metric] = _estimate(*stratified_bootstrap_ci(scores, iqm, random_state=0))
    return summary


def close(submitted: Any, recomputed: Any) -> bool:
    """Numbers within the recompute tolerance; anything else exactly equal (``None`` is not 0)."""
    numbers = (int, float)
    if isinstance(submitted, bool) or isinstance(recomputed, bool):
        return submitted is recomputed
    if isinstance(submitted, numbers) and isinstance(recomputed, numbers):
        if math.isnan(submitted) or math.isnan(recomputed):
            return math.isnan(submitted) and math.isnan(recomputed)
        return math.isclose(submitted, recomputed, rel_tol=RECOMPUTE_RTOL, abs_tol=RECOMPUTE_ATOL)
    return submitted == recomputed


def differences(submitted: Any, recomputed: Any, where: str = "") -> list[str]:
    """One line per value of ``submitted`` that is missing, extra or not ``close`` to ``recomputed``."""
    if isinstance(recomputed, dict):
        if not isinstance(submitted, dict):
            return [f"{where or '(top level)'} is {_short(submitted)}, expected an object"]
        lines = []
        for key in sorted(set(submitted) | set(recomputed), key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in submitted:
                lines.append(f"{path} is missing")
            elif key not in recomputed:
                lines.append(f"{path} is not a recomputed value")
            else:
                lines.extend(differences(submitted[key], recomputed[key], path))
        return lines
    if isinstance(recomputed, list) and isinstance(submitted, list) and len(submitted) == len(recomputed):
        return [line for i, (s, r) in enumerate(zip(submitted, recomputed)) for line in differences(s, r, f"{where}[{i}]")]
    if close(submitted, recomputed):
        return []
    return [f"{where} is {_short(submitted)} but the runs give {_short(recomputed)}"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
