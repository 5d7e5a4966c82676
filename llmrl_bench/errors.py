"""Errors shared across layers, so that components never import the runner that runs them."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config that cannot run; its message is one line naming the bad value and the allowed ones."""


class RunFailed(RuntimeError):
    """A run crashed; its ``failed`` record is in ``results/``."""
