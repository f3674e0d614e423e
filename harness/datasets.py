"""The benchmark protocol and what the core does with any benchmark.

A benchmark plugin turns a data root into a `BenchmarkData`: categories, each
with training normals, test samples and candidate classes (display names and
descriptions). The core never parses a dataset layout itself.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence

from harness.errors import DataLayoutError
from harness.types import BenchmarkData

MANIFEST_HASH_LENGTH = 16


class Benchmark(ABC):
    """A dataset layout plus class lists plus a default scoring protocol.

    Subclasses set ``name`` and ``description`` and implement `load`.
    ``layout`` describes the expected folder layout; it is quoted in errors.
    """

    name: str = ""
    description: str = ""
    protocol: str = "velm"
    layout: str = ""
    #: False for benchmarks that bring their own data (the built-in demo).
    requires_data_root: bool = True

    @abstractmethod
    def load(self, root: Path | None, categories: Sequence[str] | None = None) -> BenchmarkData:
        """Read the data root; raise `DataLayoutError` naming the path and the expected layout."""

    def layout_error(self, root: Path, problem: str) -> DataLayoutError:
        """An error that says what is wrong at ``root`` and which layout was expected."""
        message = f"{problem} (data root: {root})"
        if self.layout:
            message += f"\nbenchmark {self.name!r} expects:\n{self.layout}"
        return DataLayoutError(message)


def manifest_hash(data: BenchmarkData) -> str:
    """A short hash of exactly what is evaluated: every test image path and its label.

    Two runs with the same manifest hash scored the same images with the same
    ground truth, so their figures may be ranked together.
    """
    digest = hashlib.sha256()
    for sample in sorted(data.samples, key=lambda s: (s.category, s.relpath)):
        digest.update(f"{sample.category}\t{sample.relpath}\t{sample.label}\n".encode())
    return digest.hexdigest()[:MANIFEST_HASH_LENGTH]
