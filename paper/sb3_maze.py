"""The ``sb3_maze`` table: our PPO, DQN and REINFORCE next to Stable-Baselines3's PPO, DQN and A2C on the maze.

SB3's runs are the JSON records ``experiments/sb3_maze.py`` writes to ``<results>/sb3_maze/``; each
names the ``run_id`` of our run at the same settings, found in ``<results>/runs/`` or, for runs made
only for this comparison (``experiment=sb3_maze_dqn``), in ``<results>/sb3_maze/ours/runs/``. Both sides
are read the same way: the final curve point's return in each evaluation mode divided by the mean exact
optimum of the episodes evaluated, on the training split and averaged over the held-out contexts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from llmrl_bench import stats
from llmrl_bench.results import TRAIN_SPLIT, RunResult, reject_non_finite
from paper import checks
from paper.formatting import Table, fmt_estimate
from paper.settings import CONFIDENCE, RANDOM_STATE

SB3_DIR = "sb3_maze"
OURS_DIR = "ours"
HELD_OUT = "held_out"
MODES = ("greedy", "sampled")
#: Table columns after the labels: (split, mode) pairs.
COLUMNS = tuple((split, mode) for split in (TRAIN_SPLIT, HELD_OUT) for mode in MODES)
SB3_NAMES = {"ppo": "PPO", "dqn": "DQN", "a2c": "A2C"}
#: The first column: what each pair of rows compares.
PAIRS = {"ppo": "PPO", "dqn": "DQN", "a2c": "REINFORCE / A2C"}
#: A side *fails* when every seed stays below this share of the optimum on its training layouts in both modes.
FAILED_BELOW = 0.05
RECORD_KEYS = ("algo", "seed", "budget", "settings", "ours", "curve", "optimal_returns")


def normalized_returns(final_modes: dict[str, dict[str, float]], ceilings: dict[str, float]) -> dict[tuple[str, str], float]:
    """``(split, mode) -> return / ceiling`` for ``train`` and ``held_out`` (the mean over held-out contexts).

    ``final_modes`` is a curve point's ``modes`` (mode -> split -> mean return), ``ceilings`` the mean exact
    optimum per split (``train`` and each held-out context).
    """
    held_out = [split for split in ceilings if split != TRAIN_SPLIT]
    out = {}
    for mode in MODES:
        out[(TRAIN_SPLIT, mode)] = final_modes[mode][TRAIN_SPLIT] / ceilings[TRAIN_SPLIT]
        out[(HELD_OUT, mode)] = float(np.mean([final_modes[mode][split] / ceilings[split] for split in held_out]))
    return out


def sb3_normalized(record: dict[str, Any]) -> dict[tuple[str, str], float]:
    """An SB3 record's normalized final returns (its per-episode optima averaged per split)."""
    ceilings = {split: float(np.mean(values)) for split, values in record["optimal_returns"].items()}
    return normalized_returns(record["curve"][-1]["modes"], ceilings)


def ours_normalized(run: RunResult) -> dict[tuple[str, str], float] | None:
    """Our run's normalized final returns; ``None`` when it recorded no modes or no ceilings."""
    ceilings = run.env_info.get("optimal_return") or {}
    modes = run.curve[-1].get("modes")
    if modes is None or any(not ceilings.get(split) for split in modes[MODES[0]]):
        return None
    return normalized_returns(modes, {split: ceilings[split] for split in modes[MODES[0]]})


def load_sb3_records(directory: Path) -> list[dict[str, Any]]:
    """The SB3 records in ``directory`` (``<algo>_seed<N>.json``), sorted by algorithm and seed; ``ValueError`` names a bad file."""
    records = []
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text(), parse_constant=reject_non_finite)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        missing = [key for key in RECORD_KEYS if key not in record]
        if missing or record["algo"] not in SB3_NAMES:
            raise ValueError(f"{path}: not an SB3 maze record (missing {missing}, algo {record.get('algo')!r}; "
                             f"allowed algos: {sorted(SB3_NAMES)})")
        records.append(record)
    return sorted(records, key=lambda record: (list(SB3_NAMES).index(record["algo"]), record["seed"]))


def ours_by_run_id(runs: Sequence[RunResult], results_dir: Path) -> dict[str, RunResult]:
    """Our completed runs by run_id: ``runs`` (the build's usable runs) and the valid runs of ``<results>/sb3_maze/ours``."""
    extra = checks.audit(results_dir / SB3_DIR / OURS_DIR).usable() if (results_dir / SB3_DIR / OURS_DIR).is_dir() else []
    return {run.run_id: run for run in [*extra, *runs]}


def _estimates(values: list[dict[tuple[str, str], float]], n_resamples: int) -> list[str]:
    if not values:
        return ["–"] * len(COLUMNS)
    return [fmt_estimate(stats.iqm_across_seeds(np.array([v[column] for v in values]), CONFIDENCE, n_resamples, RANDOM_STATE))
            for column in COLUMNS]


def fails(values: list[dict[tuple[str, str], float]]) -> bool:
    """Whether every seed's normalized training return is below ``FAILED_BELOW`` in both modes."""
    return bool(values) and all(value[(TRAIN_SPLIT, mode)] < FAILED_BELOW for value in values for mode in MODES)


def _failure_note(values: list[dict[tuple[str, str], float]]) -> str:
    return f"; fails at these settings (every seed < {FAILED_BELOW} of the optimum, both modes)" if fails(values) else ""


def _rows(algo: str, records: list[dict[str, Any]], ours: dict[str, RunResult], n_resamples: int) -> list[tuple[str, ...]]:
    """Our row and SB3's row for one algorithm."""
    budget = f"{records[0]['budget']:,}"
    our_agent = records[0]["ours"]["agent"]
    found = [ours[record["ours"]["run_id"]] for record in records if record["ours"]["run_id"] in ours]
    our_values = [value for value in map(ours_normalized, found) if value is not None]
    missing = len(records) - len(our_values)
    sweeps = ", ".join(sorted({run.sweep for run in found}))
    our_note = f"conf/hparams/{our_agent}_maze.yaml with the overrides of sweep {sweeps}" + _failure_note(our_values) + (
        f"; {missing} of our runs at these settings missing or without the protocol's modes "
        "(python -m llmrl_bench -m experiment=sb3_maze)" if missing else "")
    sb3_values = [sb3_normalized(record) for record in records]
    return [
        (PAIRS[algo], f"ours ({our_agent})", str(len(our_values)), budget, *_estimates(our_values, n_resamples), our_note),
        (PAIRS[algo], f"SB3 {SB3_NAMES[algo]}", str(len(sb3_values)), budget, *_estimates(sb3_values, n_resamples),
         records[0]["settings"]["differences"] + _failure_note(sb3_values)),
    ]


def sb3_maze_table(runs: Sequence[RunResult], results_dir: Path, n_resamples: int) -> Table | None:
    """Ours vs SB3 on the maze, normalized final return IQM [CI] over seeds per split and mode; ``None`` without SB3 records."""
    records = load_sb3_records(results_dir / SB3_DIR) if (results_dir / SB3_DIR).is_dir() else []
    if not records:
        return None
    ours = ours_by_run_id(runs, results_dir)
    rows = []
    for algo in SB3_NAMES:
        of_algo = [record for record in records if record["algo"] == algo]
        if of_algo:
            rows += _rows(algo, of_algo, ours, n_resamples)
    header = ("algorithm", "side", "seeds", "budget", *(f"{split.replace('_', '-')} {mode}" for split, mode in COLUMNS),
              "settings")
    caption = ("Ours vs Stable-Baselines3 on the maze (7x7, 32 training layouts, repr=vector), same observation, "
               "hyperparameters (conf/hparams/<agent>_maze.yaml translated to SB3's arguments; A2C: see settings), budget and evaluation "
               "(the runner's hooks: each training layout and 16 held-out layouts per size once, greedy: argmax of the "
               "action distribution, sampled: a draw from it): final return / exact optimum, held-out averaged over "
               f"7x7, 9x9 and 11x11; IQM over seeds [{CONFIDENCE:.0%} stratified-bootstrap CI]. SB3 runs: "
               "experiments/sb3_maze.py; ours: their run_ids in results/reference (experiment=sb3_maze, maze_rewards).")
    return Table("sb3_maze", caption, header, tuple(rows), "llrr" + "r" * len(COLUMNS) + "l")
