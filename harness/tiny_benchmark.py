"""Kept for compatibility: the tiny benchmark now lives in `harness.testing.tiny_benchmark`."""

from harness.testing.tiny_benchmark import (  # noqa: F401 (re-exports)
    CATEGORIES,
    GOOD_PER_CATEGORY,
    PER_DEFECT,
    SIZE,
    TINY_TEMPLATE,
    TRAIN_PER_CATEGORY,
    TinyBenchmark,
    tiny_prompt,
    write_tiny_benchmark,
)

__all__ = [
    "CATEGORIES", "GOOD_PER_CATEGORY", "PER_DEFECT", "SIZE", "TINY_TEMPLATE", "TRAIN_PER_CATEGORY", "TinyBenchmark",
    "tiny_prompt", "write_tiny_benchmark",
]
