"""Settings every part of the paper build shares: the bootstrap and how estimates are labelled."""

from __future__ import annotations

from llmrl_bench.stats import N_RESAMPLES  # noqa: F401  (rliable's 50,000; tests pass fewer)

CONFIDENCE = 0.95
RANDOM_STATE = 0
AGGREGATES = ("iqm", "mean", "median", "optimality_gap")
#: With fewer values the 25% trimmed mean trims nothing: IQM is the mean.
MIN_VALUES_FOR_IQM = 4
IQM_IS_MEAN = "IQM = mean at n < 4"
#: A cell reports a nullable metric only if at least this fraction of its runs define it.
MIN_DEFINED_FRACTION = 0.5


def iqm_label(n: int) -> str:
    """``n=…``, with the reminder that the IQM of fewer than 4 values is their mean."""
    return f"n={n}" + (", IQM = mean" if n < MIN_VALUES_FOR_IQM else "")
