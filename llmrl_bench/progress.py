"""A live progress line per run (steps, steps/s, latest evaluation return), only on a terminal."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class RunProgress:
    """tqdm bar over env steps; silent when stderr is not a terminal or ``enabled`` is false."""

    #: Steps between two bar updates, so the bar costs nothing per env step.
    UPDATE_EVERY = 512

    def __init__(self, title: str, total_steps: int, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty()
        self.shown = 0
        self.bar = tqdm(total=total_steps, desc=title, unit="step", dynamic_ncols=True, leave=True) if self.enabled else None
        self.started = time.perf_counter()

    def update(self, global_step: int) -> None:
        if self.bar is not None and global_step - self.shown >= self.UPDATE_EVERY:
            self.bar.update(global_step - self.shown)
            self.shown = global_step

    def set_eval(self, eval_return: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(eval_return=f"{eval_return:.3g}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
