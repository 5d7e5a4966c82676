"""``make paper``: every figure and table of the paper, rebuilt from a results folder alone.

    python -m paper.build [--results results/reference] [--out paper] [--allow-invalid] [--resamples N]

The build is strict (:mod:`paper.checks`): it stops with exit code 1, printing one line per
problem, when a result file is invalid, when stored metrics disagree with the metrics
recomputed from the run's curve, or when two run folders hold the same run. With
``--allow-invalid`` it leaves the named runs out instead and lists them. Writes

- ``<out>/figures/<name>.png`` and ``.pdf``: learning curves per env, aggregate interval
  estimates per metric, performance profiles, probability of improvement,
  training vs held-out return, return against LLM compute, and on the maze equal budgets and
  return against compute (:mod:`paper.figures`, :mod:`paper.equal_budget`);
- ``<out>/tables/<name>.md`` and ``.tex``: the four metrics, reliability, aggregates,
  runtime, protocol, reproductions (:mod:`paper.tables`);
- ``<out>/README.md`` and ``<out>/main.tex``, which include them (:mod:`paper.documents`).

The output is a function of the results: inputs are sorted, every bootstrap uses
``random_state=0``, and no date enters a file's metadata, so two builds give
byte-identical files.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from paper import checks, documents, equal_budget, figures, reproductions, sweeps, tables
from paper.sb3_maze import sb3_maze_table
from paper.select import DIRECT_REWARD, Cell, comparison_tasks, select_cells, training_reward
from paper.settings import N_RESAMPLES, RANDOM_STATE

#: The env whose agents the equal-budget table and figure compare under the evaluation protocol.
PROTOCOL_ENV = "maze"
#: Sweeps that vary the task itself (here the number of training layouts): their runs feed only their own
#: figure and table (:mod:`paper.sweeps`), never the pooled cells of an env.
STUDY_SWEEPS = (sweeps.MAZE_LEVELS,)


@dataclass
class BuildReport:
    """What one build read, reported and wrote."""

    results_dir: str
    num_results: int
    problems: list[checks.Problem]
    cells: list[Cell]
    notes: list[str]
    tasks: list[str]
    algorithms: list[str]
    reproduction_tables: list[str]
    n_resamples: int
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def _clear(directory: Path, suffixes: Iterable[str]) -> None:
    """Remove a previous build's outputs, so a vanished env leaves no stale figure behind."""
    directory.mkdir(parents=True, exist_ok=True)
    for suffix in suffixes:
        for path in directory.glob(f"*.{suffix}"):
            path.unlink()


def _tables(report: BuildReport, usable, aggregates, matrices, n_resamples: int) -> dict[str, tables.Table]:
    published = reproductions.load_published()
    out = {
        "metrics": tables.metrics_table(report.cells, n_resamples),
        "reliability": tables.reliability_table(report.cells, n_resamples),
        "aggregates": tables.aggregates_table(aggregates, matrices, report.tasks),
        "runtime": tables.runtime_table(report.cells),
        "protocol": tables.protocol_table(report.cells),
    }
    direct = [run for run in usable if training_reward(run) == DIRECT_REWARD]
    for table in published.tables:
        rows = reproductions.reproduce(direct, table, n_resamples, RANDOM_STATE)
        out[table.name] = tables.reproduction_table(table, rows, published.source)
    if len(direct) < len(usable):
        out["rewards"] = tables.rewards_table(usable, n_resamples)
    if tables.has_action_mode_runs(usable):
        out[tables.ACTION_MODES_TABLE] = tables.action_modes_table(usable, n_resamples)
    for table in (sweeps.levels_table(usable, n_resamples),
                  equal_budget.equal_budget_table(report.cells, PROTOCOL_ENV, n_resamples),
                  equal_budget.compute_table(report.cells, PROTOCOL_ENV, n_resamples),
                  sb3_maze_table(usable, Path(report.results_dir), n_resamples)):
        if table is not None:
            out[table.name] = table
    return out


def _sweep_figures(usable, cells: Sequence[Cell], colors: dict[str, str], n_resamples: int) -> list[figures.PaperFigure]:
    """The figures of single experiments and of the evaluation protocol, where their runs are in the results."""
    made = (
        (f"equal_budget_{PROTOCOL_ENV}", equal_budget.equal_budget_figure(cells, PROTOCOL_ENV, colors, n_resamples),
         f"Every agent on {PROTOCOL_ENV} under one evaluation protocol: normalized training-split return (return / "
         "exact optimum) against env steps on a log axis, greedy (solid) and sampled (dashed) modes, IQM over "
         "seeds with 95% bootstrap CIs; dotted lines mark the budgets the agents are compared at."),
        (f"compute_{PROTOCOL_ENV}", figures.protocol_compute_figure(cells, PROTOCOL_ENV, colors, n_resamples),
         f"Final normalized return (training split, return / exact optimum) of every agent on {PROTOCOL_ENV} under "
         "the evaluation protocol against its recorded compute: the run's LLM FLOPs (left; classic agents record "
         "none and appear on the right only) and its wall-clock seconds of training with evaluations (right). "
         f"Filled: the headline mode ({equal_budget.HEADLINE_MODE}); open: the other mode; IQM over seeds with "
         "95% bootstrap CIs (vertical), compute: median over seeds, with the seeds' min–max (horizontal); the two "
         "modes are drawn 4 points either side of it so their bars stay apart. Cells recorded before the protocol are "
         "named in the title and in the compute table."),
        (sweeps.MAZE_LEVELS, sweeps.levels_figure(usable, n_resamples),
         "Generalization against the number of training layouts (experiment maze_levels, as Cobbe et al. 2019): "
         "PPO's final greedy return divided by the exact optimum, on its training layouts and on held-out "
         "layouts of each size, IQM over seeds with 95% bootstrap CIs."),
    )
    return [figures.PaperFigure(name, figure, caption) for name, figure, caption in made if figure is not None]


def build(results_dir: str | Path = "results/reference", out_dir: str | Path = "paper", n_resamples: int = N_RESAMPLES,
          log: Callable[[str], None] = print, allow_invalid: bool = False) -> BuildReport:
    """Rebuild every figure, table and document of the paper from ``results_dir``.

    Raises :class:`paper.checks.BuildError` on any problem of the results folder unless
    ``allow_invalid``, which leaves the problem runs out and logs each.
    """
    start = time.perf_counter()
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    audit = checks.audit(results_dir)
    if audit.problems and not allow_invalid:
        raise checks.BuildError(audit.problems)
    for problem in audit.problems:
        log(f"left out: {problem.line()}")
    usable = audit.usable()
    # Indirect-reward runs feed the rewards table, task-varying studies (maze_levels) their own figure.
    selection = select_cells([run for run in usable if training_reward(run) == DIRECT_REWARD and run.sweep not in STUDY_SWEEPS])
    for note in selection.notes:
        log(f"left out: {note}")
    tasks, algorithms = comparison_tasks(selection.cells)
    report = BuildReport(
        results_dir=str(results_dir), num_results=len(audit.runs), problems=audit.problems, cells=selection.cells,
        notes=selection.notes, tasks=tasks, algorithms=algorithms, n_resamples=n_resamples,
        reproduction_tables=[table.name for table in reproductions.load_published().tables],
    )
    figures_dir, tables_dir = out_dir / "figures", out_dir / "tables"
    _clear(figures_dir, figures.FIGURE_FORMATS)
    _clear(tables_dir, ("md", "tex"))
    colors = figures.paper_colors(selection.cells)  # the one colour map of every figure
    paper_figures, aggregates, matrices = figures.all_figures(selection.cells, tasks, algorithms, n_resamples, colors)
    paper_figures += _sweep_figures(usable, selection.cells, colors, n_resamples)
    for figure in paper_figures:
        report.files.extend(figure.save(figures_dir))
    paper_tables = _tables(report, usable, aggregates, matrices, n_resamples)
    for table in paper_tables.values():
        report.files.extend(table.write(tables_dir))
    for path, text in ((out_dir / "README.md", documents.readme(report, paper_tables, paper_figures)),
                       (out_dir / "main.tex", documents.main_tex(report, paper_tables, paper_figures))):
        path.write_text(text)
        report.files.append(path)
    report.seconds = time.perf_counter() - start
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paper.build", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/reference", help="results directory to read (default: results/reference)")
    parser.add_argument("--out", default="paper", help="where figures/, tables/, README.md go (default: paper)")
    parser.add_argument("--allow-invalid", action="store_true",
                        help="leave out (and list) invalid files, stale metrics and duplicate runs instead of stopping")
    parser.add_argument("--resamples", type=int, default=N_RESAMPLES, help=f"bootstrap resamples (default: {N_RESAMPLES})")
    args = parser.parse_args(argv)
    if not Path(args.results).is_dir():
        print(f"paper: results directory {args.results!r} not found", file=sys.stderr)
        return 2
    if args.resamples < 1:
        print(f"paper: --resamples must be a positive integer; got {args.resamples}", file=sys.stderr)
        return 2
    try:
        report = build(args.results, args.out, args.resamples, log=lambda line: print(line, file=sys.stderr),
                       allow_invalid=args.allow_invalid)
    except checks.BuildError as error:
        for problem in error.problems:
            print(problem.line(), file=sys.stderr)
        print(f"paper: {len(error.problems)} problem(s) in {args.results}; nothing written. Fix them, or pass "
              "--allow-invalid to leave those runs out.", file=sys.stderr)
        return 1
    png = sum(path.suffix == ".png" for path in report.files)
    md = sum(path.suffix == ".md" and path.parent.name == "tables" for path in report.files)
    print(f"paper: {report.num_results} runs ({len(report.problems)} problems left out), {len(report.cells)} cells -> "
          f"{png} figures, {md} tables in {args.out}/ ({report.seconds:.1f}s, {args.resamples:,} resamples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
