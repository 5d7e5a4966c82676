"""Tables rendered to Markdown and LaTeX, and the number formats every table shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from llmrl_bench import stats


@dataclass(frozen=True)
class Table:
    """A table rendered identically to Markdown and LaTeX (booktabs)."""

    name: str
    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str  # LaTeX column spec, one letter per column

    def markdown(self) -> str:
        marks = {"l": "---", "r": "---:", "c": ":---:"}
        lines = [
            f"**{self.caption}**",
            "",
            "| " + " | ".join(self.header) + " |",
            "| " + " | ".join(marks[a] for a in self.align) + " |",
            *("| " + " | ".join(row) + " |" for row in self.rows),
        ]
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        lines = [
            r"\begin{table}[htbp]",
            r"\centering",
            r"\small",
            rf"\caption{{{latex_escape(self.caption)}}}",
            rf"\label{{tab:{self.name.replace('_', '-')}}}",
            r"\resizebox{\linewidth}{!}{%",
            rf"\begin{{tabular}}{{{self.align}}}",
            r"\toprule",
            " & ".join(latex_escape(cell) for cell in self.header) + r" \\",
            r"\midrule",
            *(" & ".join(latex_escape(cell) for cell in row) + r" \\" for row in self.rows),
            r"\bottomrule",
            r"\end{tabular}}",
            r"\end{table}",
        ]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path) -> list[Path]:
        """``<name>.md`` and ``<name>.tex`` in ``directory``."""
        paths = []
        for suffix, text in (("md", self.markdown()), ("tex", self.latex())):
            path = directory / f"{self.name}.{suffix}"
            path.write_text(text)
            paths.append(path)
        return paths


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {
    "±": r"$\pm$", "×": r"$\times$", "–": "--", "—": "---",
    "↓": r"$\downarrow$", "↑": r"$\uparrow$", "≥": r"$\geq$", "τ": r"$\tau$", "≈": r"$\approx$",
}


def latex_escape(text: str) -> str:
    """``text`` as LaTeX: specials escaped, the few Unicode symbols the tables use as math."""
    out = "".join(_LATEX_SPECIALS.get(char, char) for char in text)
    for symbol, replacement in _LATEX_SYMBOLS.items():
        out = out.replace(symbol, replacement)
    return out


def _digits(magnitude: float) -> int:
    return 1 if magnitude >= 100 else 2 if magnitude >= 10 else 3


def fmt(value: float | None, digits: int | None = None) -> str:
    """A number with precision by magnitude (500.0, 42.50, 0.964) or ``digits``; ``–`` when missing."""
    if value is None or not np.isfinite(value):
        return "–"
    magnitude = abs(value)
    if magnitude >= 1e5 or (0 < magnitude < 1e-3 and digits is None):
        return f"{value:.3g}"
    return f"{value:.{_digits(magnitude) if digits is None else digits}f}"


def fmt_estimate(estimate: stats.IntervalEstimate | None) -> str:
    """``point [low, high]``, all three at the precision of the largest (3 significant digits below 0.001)."""
    if estimate is None or not np.isfinite(estimate.point):
        return "–"
    values = (estimate.point, estimate.low, estimate.high)
    largest = max(abs(v) for v in values)
    if largest >= 1e5 or 0 < largest < 1e-3:
        return f"{estimate.point:.3g} [{estimate.low:.3g}, {estimate.high:.3g}]"
    digits = _digits(largest)
    return f"{fmt(estimate.point, digits)} [{fmt(estimate.low, digits)}, {fmt(estimate.high, digits)}]"


def fmt_published(mean: float, std: float | None) -> str:
    """A published ``mean ± std`` at the mean's precision."""
    digits = _digits(abs(mean))
    return fmt(mean, digits) + (f" ± {fmt(std, digits)}" if std is not None else "")


def fmt_seeds(seeds: Sequence[int]) -> str:
    """``0–9 (10)`` for a contiguous range, else the list."""
    if not seeds:
        return "–"
    seeds = sorted(seeds)
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}–{seeds[-1]} ({len(seeds)})"
    return f"{', '.join(map(str, seeds))} ({len(seeds)})"
