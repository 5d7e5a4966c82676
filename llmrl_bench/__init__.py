"""llmrl_bench: a reproducible benchmark for reinforcement learning with and without LLMs."""

__version__ = "0.1.0"
