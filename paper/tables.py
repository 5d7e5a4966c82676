"""The paper's tables, each a :class:`paper.formatting.Table` built from the selected cells."""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from llmrl_bench import metrics, stats
from llmrl_bench.metrics import HEADLINE_METRICS, METRICS
from llmrl_bench.results import TRAIN_SPLIT, RunResult
from paper import equal_budget, reproductions
from paper.formatting import Table, fmt, fmt_estimate, fmt_published, fmt_seeds
from paper.select import Cell, ScoreMatrices
from paper.settings import AGGREGATES, CONFIDENCE, IQM_IS_MEAN, MIN_DEFINED_FRACTION, RANDOM_STATE

CI = f"{CONFIDENCE:.0%} stratified-bootstrap CI"
UNDEFINED = (f"n/a: undefined for more than {1 - MIN_DEFINED_FRACTION:.0%} of the runs; a run never learned when its "
             f"curve range (95th percentile minus first evaluation) is below {metrics.MIN_CURVE_RANGE} of the "
             "env's score range (docs/metrics.md)")


def arrow(name: str) -> str:
    """``↑`` or ``↓`` after a column title, by the registry's direction."""
    return {True: " ↑", False: " ↓", None: ""}[METRICS[name].higher_is_better]


def never_learned(cell: Cell) -> int:
    """How many of the cell's runs never learned (:func:`llmrl_bench.metrics.learned`)."""
    _, curves = cell.curves("train_return")
    return int(np.sum(~metrics.learned(curves, cell.score_range)))


def estimate_text(cell: Cell, metric: str, n_resamples: int) -> str:
    """IQM [CI] over the runs that define ``metric``, with how many did not; ``n/a (…)`` if too few do."""
    values = cell.reported(metric)
    undefined = int(np.sum(~np.isfinite(cell.metric(metric))))
    never = never_learned(cell) if METRICS[metric].nullable and metric != "steps_to_threshold" else 0
    reason = f"{never} of {len(cell.runs)} never learned" if never else f"{undefined} of {len(cell.runs)} undefined"
    if not values.size:
        return f"n/a ({reason})" if undefined else "–"
    text = fmt_estimate(stats.iqm_across_seeds(values, CONFIDENCE, n_resamples, RANDOM_STATE))
    return f"{text} ({reason})" if undefined else text


def _cell_columns(cell: Cell) -> tuple[str, ...]:
    return (cell.env, cell.agent, cell.repr, str(len(cell.runs)), str(cell.budget.get("env_steps", "–")))


CELL_HEADER = ("env", "agent", "repr", "seeds", "env steps")


def metrics_table(cells: Sequence[Cell], n_resamples: int) -> Table:
    header = (*CELL_HEADER, *(METRICS[m].title.split(" (")[0].lower() + arrow(m) for m in HEADLINE_METRICS),
              "return / exact optimum ↑", "optimality gap ↓")
    rows = [(*_cell_columns(cell), *(estimate_text(cell, m, n_resamples) for m in HEADLINE_METRICS),
             *_optimum_columns(cell, n_resamples)) for cell in cells]
    caption = (f"The four metrics per agent × representation × env: IQM over seeds [{CI}] ({IQM_IS_MEAN}). "
               "Units: return (cumulative reward, generalization); fraction of the run's curve range (policy "
               "stability: long-term risk, the CVaR of the drawdown, lower is more stable); normalized area under "
               f"the curve (learning speed). {UNDEFINED}. Return / exact optimum: the final evaluation return on the training "
               "split over the mean exact best return of the episodes evaluated (env_info.optimal_return); the optimality "
               "gap is 1 minus it (0 = optimal); – for runs recorded before ceilings were.")
    return Table("metrics", caption, header, tuple(rows), "lllrr" + "r" * 6)


def _optimum_columns(cell: Cell, n_resamples: int) -> tuple[str, str]:
    """IQM [CI] of the final return over the exact optimum, and of 1 minus it; ``–`` without recorded ceilings."""
    ceilings = [(run.env_info.get("optimal_return") or {}).get(TRAIN_SPLIT) for run in cell.runs]
    if not all(ceilings):
        return "–", "–"
    normalized = np.array([run.curve[-1]["train_return"] / ceiling for run, ceiling in zip(cell.runs, ceilings)])
    return tuple(fmt_estimate(stats.iqm_across_seeds(values, CONFIDENCE, n_resamples, RANDOM_STATE))
                 for values in (normalized, 1.0 - normalized))


RELIABILITY_RUN = ("dispersion_across_time", "short_term_risk", "policy_stability")


def reliability_table(cells: Sequence[Cell], n_resamples: int) -> Table:
    """Chan et al.'s five reliability metrics per cell: three per run (IQM over seeds), two across seeds."""
    header = (*CELL_HEADER, "learned", *(METRICS[m].title.split(" (")[0].lower() + arrow(m) for m in RELIABILITY_RUN),
              *(METRICS[m].title.lower() + arrow(m) for m in metrics.ACROSS_RUN_METRICS))
    rows = []
    for cell in cells:
        steps, curves = cell.curves("train_return")
        across = metrics.compute_across_run_metrics(steps, curves, cell.score_range)
        rows.append((*_cell_columns(cell), f"{len(cell.runs) - never_learned(cell)} of {len(cell.runs)}",
                     *(estimate_text(cell, m, n_resamples) for m in RELIABILITY_RUN),
                     *(fmt(across[m]) for m in metrics.ACROSS_RUN_METRICS)))
    caption = (f"Reliability (Chan et al. 2020) per agent × representation × env. Within runs, IQM over seeds [{CI}] "
               f"({IQM_IS_MEAN}): dispersion across time (IQR of the step rates in sliding windows) and short-term "
               "risk (CVaR of the step rates), in curve ranges per env step; long-term risk (= policy stability), "
               "in curve ranges. Across seeds, one value per cell: dispersion across runs (IQR across seeds) and "
               "risk across runs (CVaR of the final return), in the seeds' median curve range; undefined (–) with "
               f"one seed or when the median run never learned. {UNDEFINED}; dispersion across time also needs "
               f"at least two evaluation gaps per {metrics.WINDOW_FRACTION:.0%} window.")
    return Table("reliability", caption, header, tuple(rows), "lllrrr" + "r" * 5)


def aggregates_table(aggregates: dict[str, dict[str, dict[str, stats.IntervalEstimate]]],
                     matrices: dict[str, ScoreMatrices], tasks: Sequence[str]) -> Table:
    header = ("metric", "algorithm", "runs per task", "defined", "IQM", "mean", "median", "optimality gap")
    rows = []
    for metric, by_algorithm in aggregates.items():
        pooled, matrix = METRICS[metric].pooled, matrices[metric]
        for algorithm in sorted(matrix.defined):
            defined, total = matrix.defined[algorithm]
            if algorithm in matrix.left_out:
                rows.append((pooled, algorithm, "–", f"{defined} of {total}",
                             f"n/a ({total - defined} of {total} never learned)", "", "", ""))
                continue
            rows.append((pooled, algorithm, str(matrix.runs[algorithm]), f"{defined} of {total}",
                         *(fmt_estimate(by_algorithm[algorithm].get(name)) for name in AGGREGATES)))
    caption = (f"Aggregates of the pooled metrics over runs × tasks, tasks: {', '.join(tasks) or '–'} [{CI}]. "
               f"{IQM_IS_MEAN} runs × tasks; with one task the median equals the mean. \"defined\": runs whose "
               "metric is defined; an algorithm is compared on a metric only where at least half its runs define "
               "it. The optimality gap is not defined where lower is better.")
    return Table("aggregates", caption, header, tuple(rows), "llrr" + "r" * 4)


def runtime_table(cells: Sequence[Cell]) -> Table:
    header = (*CELL_HEADER, "wall s (median)", "wall s (total)", "env steps/s (median)", "peak memory MB (max)",
              "LLM FLOPs (median)", "LLM tokens (median)")
    rows = []
    total = 0.0
    for cell in cells:
        wall = cell.provenance("wall_seconds")
        total += float(np.nansum(wall))
        flops, tokens = cell.provenance("llm_flops"), cell.provenance("llm_tokens")
        rows.append((
            *_cell_columns(cell), fmt(float(np.nanmedian(wall))), fmt(float(np.nansum(wall))),
            fmt(float(np.nanmedian(cell.provenance("env_steps_per_second")))),
            fmt(float(np.nanmax(cell.provenance("peak_memory_mb")))),
            f"{np.nanmedian(flops):.3g}" if np.isfinite(flops).any() else "–",
            f"{np.nanmedian(tokens):.3g}" if np.isfinite(tokens).any() else "–",
        ))
    rows.append(("all", "", "", str(sum(len(cell.runs) for cell in cells)), "", "", fmt(total), "", "", "", ""))
    caption = ("Runtime and compute per run (one process, one torch thread): wall-clock seconds of training "
               "with its evaluations, training env steps per wall-clock second, peak resident memory of the "
               "worker process (which may have run earlier jobs), and LLM FLOPs and tokens where the agent "
               "uses a language model.")
    return Table("runtime", caption, header, tuple(rows), "lllrr" + "r" * 6)


def evaluation_policy(run: RunResult) -> str:
    """``argmax``, or ``sampled (T=…)`` for an LLM agent run with ``llm.eval_sampling``."""
    llm = run.config.get("agent", {}).get("llm") or {}
    return f"sampled (T={llm.get('temperature')})" if llm.get("eval_sampling") else "argmax"


DIRTY = "+dirty"


def code_version(cell: Cell) -> str:
    """The runs' git commits (7 digits), ``(dirty)`` where a run was made from a modified tree."""
    commits = sorted({str(run.provenance.get("git_commit") or "unknown") for run in cell.runs})
    dirty = sum(str(run.provenance.get("git_commit") or "").endswith(DIRTY) for run in cell.runs)
    names = [c.removesuffix(DIRTY)[:7] + (" (dirty)" if c.endswith(DIRTY) else "") for c in commits]
    text = ", ".join(names) if len(names) <= 2 else f"{len(names)} commits"
    return text + (f"; {dirty} of {len(cell.runs)} dirty" if dirty and len(names) > 2 else "")


def protocol_table(cells: Sequence[Cell]) -> Table:
    header = ("env", "agent", "repr", "sweep", "seeds", "env steps", "evaluations", "evaluation policy",
              "eval episodes", "held-out episodes × contexts", "code (git commit)")
    rows = []
    for cell in cells:
        budget = cell.budget
        contexts = cell.runs[0].env_info.get("held_out_contexts")
        rows.append((
            cell.env, cell.agent, cell.repr, ", ".join(cell.sweeps), fmt_seeds(cell.seeds),
            str(budget.get("env_steps", "–")), str(budget.get("num_evals", 0) + 1),
            evaluation_policy(cell.runs[0]), str(budget.get("eval_episodes", "–")),
            f"{budget.get('held_out_episodes', '–')} × {len(contexts) if contexts is not None else '–'}",
            code_version(cell),
        ))
    caption = ("Protocol per agent × representation × env: the sweep that made the runs, the seeds, the training "
               "budget, the number of evaluations (evenly spaced from step 0), the evaluation policy (the "
               "argmax action, or for LLM agents with llm.eval_sampling a sample of their softmax at "
               "temperature T), the episodes per evaluation on the training split, the episodes per "
               "held-out context, and the git commit the runs were made at; (dirty): made from a working tree "
               "with uncommitted changes, so the commit alone does not reproduce them.")
    return Table("protocol", caption, header, tuple(rows), "llllrrrlrrl")


def reproduction_table(table: reproductions.PublishedTable, rows: Sequence[reproductions.ReproductionRow],
                       source: dict[str, str]) -> Table:
    header = ("env", "agent", "settings", "env steps", "RL Zoo: mean ± std (1 agent)", "RL Zoo eval episodes",
              "ours: mean", "ours: IQM [95% CI]", "seeds reaching RL Zoo − tolerance", "ours: eval episodes",
              "seeds", "sweep")
    out = []
    for row in rows:
        published = row.published
        ours: tuple[str, ...] = ("not run", "–", "0", "–", "0", "–")
        if row.estimate is not None:
            ours = (fmt(row.mean), fmt_estimate(row.estimate),
                    f"{row.reached} of {len(row.seeds)} (≥ {fmt(published.mean - published.tolerance)})",
                    f"{row.eval_episodes} per seed", fmt_seeds(row.seeds), ", ".join(row.sweeps))
        out.append((published.gym_id, published.agent, published.settings, str(published.env_steps),
                    fmt_published(published.mean, published.std), str(published.eval_episodes), *ours))
    caption = (f"Reproduction, {table.title} (experiment {table.name}): final return of our runs (mean over seeds; "
               f"IQM over seeds with a {CI}, which with 10 seeds trims the 2 lowest; how many seeds end within the "
               f"published std of the published mean), next to {source['name']} ({source['url']}), whose ± is the "
               "std over its evaluation episodes of a single trained agent. Settings: \"RL Zoo's settings\" rows hold "
               "exactly the hyperparameters of RL Zoo's hyperparams/<algo>.yml (quoted in conf/hparams/); \"tuned "
               "here\" rows the suite's changes to them, named." + (f" {table.note}" if table.note else ""))
    return Table(table.name, caption, header, tuple(out), "lllrrr" + "r" * 4 + "ll")


#: Agreement of the learned reward with the truth, from each run's provenance (docs/rewards.md), over its last 20% of training.
REWARD_AGREEMENT = (("reward_pearson_env_final", "Pearson with env reward"), ("reward_progress_auc_final", "progress AUC"))


def _iqm_text(values: Sequence[float | None], n_resamples: int) -> str:
    """IQM [CI] of the defined values, with how many runs left it undefined."""
    defined = np.array([v for v in values if v is not None and np.isfinite(v)], float)
    if not defined.size:
        return "–"
    text = fmt_estimate(stats.iqm_across_seeds(defined, CONFIDENCE, n_resamples, RANDOM_STATE))
    return text if len(defined) == len(values) else f"{text} ({len(values) - len(defined)} undefined)"


def rewards_table(runs: Sequence[RunResult], n_resamples: int) -> Table:
    """Direct against indirect training reward, per env × agent × repr × reward × budget: the final env return
    (training and held-out layouts) and the learned reward's agreement with the truth."""
    from paper.select import training_reward  # one definition of a run's reward

    groups: dict[tuple, list[RunResult]] = {}
    for run in runs:  # the same agent, env, representation and budget (evaluation included), one row per reward
        settings = json.dumps({key: run.config.get(key) for key in ("agent", "env", "repr", "budget")}, sort_keys=True, default=str)
        groups.setdefault((run.env, run.agent, run.repr, run.config.get("budget", {}).get("env_steps"), training_reward(run), settings), []).append(run)
    compared = {key[:4] + key[5:] for key in groups if key[4] != "direct"}  # only settings that ran an indirect reward
    rows = []
    for key in sorted(k for k in groups if k[:4] + k[5:] in compared):
        cell = sorted(groups[key], key=lambda run: run.seed)
        final = [run.curve[-1] for run in cell]
        rows.append((key[0], key[1], key[2], key[4], fmt_seeds([run.seed for run in cell]), str(key[3]),
                     _iqm_text([point["train_return"] for point in final], n_resamples),
                     _iqm_text([point["held_out_return"] for point in final], n_resamples),
                     *(("–" if key[4] == "direct" else _iqm_text([run.provenance.get(name) for run in cell], n_resamples))
                       for name, _ in REWARD_AGREEMENT)))
    header = ("env", "agent", "repr", "reward", "seeds", "env steps", "final train return ↑", "final held-out return ↑",
              *(title for _, title in REWARD_AGREEMENT))
    caption = (f"Training reward: the env's own (direct) against indirect rewards (docs/rewards.md), at equal env steps. "
               f"Returns are the env's own reward at the last evaluation, IQM over seeds [{CI}]. Agreement of the learned "
               "reward over the last 20% of training steps: Pearson correlation per step with the env's reward, and the "
               "AUC of the learned reward as a detector of steps that cut the exact shortest-path distance to the goal "
               "(0.5 is chance). The constant reward is a control: the same value on every step (docs/rewards.md).")
    return Table("rewards", caption, header, tuple(rows), "llll" + "r" * 6)



#: The runs of ``experiment=maze_llm_actions`` (its score-mode runs keep maze_llm's sweep label).
ACTION_MODE_SWEEPS = ("maze_llm", "maze_llm_actions")
ACTION_MODES_TABLE = "maze_llm_actions"


def action_mode(run: RunResult) -> str:
    """``score``, ``generate`` or ``constrained``: how an LLM agent run chose actions (runs from before the option: score)."""
    return (run.config.get("agent", {}).get("llm") or {}).get("action_mode", "score")


def has_action_mode_runs(results: Sequence[RunResult]) -> bool:
    """Whether the action-mode table has something to compare: a run of its sweeps in a mode other than score."""
    return any(r.sweep in ACTION_MODE_SWEEPS and action_mode(r) != "score" for r in results)


def action_modes_table(results: Sequence[RunResult], n_resamples: int) -> Table:
    """LLM agents on the maze, actions by scoring, by generation and by constrained decoding: IQM [CI] over seeds of
    the final training and held-out returns, and of the invalid-action rate (0 by construction unless generating)."""
    groups: dict[tuple[str, str, str], list[RunResult]] = {}
    for run in results:
        if run.sweep in ACTION_MODE_SWEEPS and run.agent.startswith("llm_"):
            groups.setdefault((run.env, run.agent, action_mode(run)), []).append(run)

    def iqm(values: list[float]) -> str:
        return fmt_estimate(stats.iqm_across_seeds(np.asarray(values, float), CONFIDENCE, n_resamples, RANDOM_STATE))

    def protocol(runs: list[RunResult], evaluation_mode: str) -> str:
        if not all(equal_budget.follows_protocol(run) for run in runs):
            return "–"
        return iqm([equal_budget.normalized_curve(run, evaluation_mode)[1][-1] for run in runs])

    rows = []
    for (env, agent, mode), runs in sorted(groups.items()):
        runs = sorted(runs, key=lambda run: run.seed)
        finals = [run.curve_arrays() for run in runs]
        invalid = [float(run.provenance.get("llm_invalid_action_rate", 0.0)) for run in runs]
        evaluation = [run.provenance.get("llm_eval_invalid_action_rate") for run in runs]
        rows.append((env, agent, mode, fmt_seeds([run.seed for run in runs]),
                     str(runs[0].config.get("budget", {}).get("env_steps", "–")),
                     "/".join(sorted({str(len(run.curve)) for run in runs}, key=int)),
                     protocol(runs, "greedy"), protocol(runs, "sampled"),
                     iqm([f["train_return"][-1] for f in finals]), iqm([f["held_out_return"][-1] for f in finals]),
                     *((f"0 ({mode})",) * 2 if mode != "generate" else (iqm(invalid), iqm(evaluation)))))
    header = ("env", "agent", "action mode", "seeds", "env steps", "evaluations", "greedy, normalized ↑", "sampled, normalized ↑",
              "final return ↑", "final held-out return ↑", "invalid actions (all) ↓", "invalid actions (eval) ↓")
    caption = (f"LLM actions by scoring the listed actions (GLAM), by generating one (parsed; an invalid "
               f"output acts llm.invalid_action's fallback) and by decoding constrained to the listed actions: IQM over seeds [{CI}] of the final evaluation "
               "under the protocol in both modes (training split, return / exact optimum; greedy: argmax, sampled: a draw "
               "from the policy; – : a run recorded before the protocol), of the agent's own evaluation policy's raw "
               "return on the training and held-out mazes, and of the fraction of actions whose output named "
               "no listed action, over all steps and over evaluation steps. Evaluations: the evaluation points of "
               "each run, the last at the final env step; the zero-shot agent's weights never change, so its "
               "final evaluation plays the same policy however many came before (docs/llm_agents.md#action-modes).")
    return Table(ACTION_MODES_TABLE, caption, header, tuple(rows), "lll" + "r" * 9)
