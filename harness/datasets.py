"""The benchmark protocol and what the core does with any benchmark.

A benchmark plugin turns a data root into a `BenchmarkData`: categories, each
with training normals, test samples and candidate classes (display names and
descriptions). The core never parses a dataset layout itself.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

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

    def released(self, categories: Sequence[str] | None = None) -> BenchmarkData | None:
        """The test set as published, built from facts without reading any image; None when not known.

        Benchmarks with a fixed released file list (MVTec-AC, MVTec-AD, VisA-AC)
        return samples whose ``relpath`` and label are exactly what a complete
        data root gives, so predictions made elsewhere can be scored
        (`harness score`) under the same manifest hash as a full run.
        """
        return None

    def layout_error(self, root: Path, problem: str) -> DataLayoutError:
        """An error that says what is wrong at ``root`` and which layout was expected."""
        message = problem if str(root) in problem else f"{problem} (data root: {root})"  # name the path once
        if self.layout:
            message += f"\nbenchmark {self.name!r} expects:\n{self.layout}"
        return DataLayoutError(message)


class ReleaseMismatchError(DataLayoutError):
    """A data root whose test files differ from the benchmark's released list.

    The message names the differences. ``partial`` is the benchmark loaded on
    the files present in both (None when there are none), which a run may use
    when the user allows it (``--allow-partial``); ``difference`` is the
    JSON-serialisable account of what differs, recorded in run.json then.
    """

    def __init__(self, message: str, partial: BenchmarkData | None, difference: dict[str, Any]) -> None:
        super().__init__(message)
        self.partial = partial
        self.difference = difference


def manifest_hash(data: BenchmarkData) -> str:
    """A short hash of exactly what is evaluated: every test image path and its label.

    Two runs with the same manifest hash scored the same images with the same
    ground truth, so their figures may be ranked together.
    """
    digest = hashlib.sha256()
    for sample in sorted(data.samples, key=lambda s: (s.category, s.relpath)):
        digest.update(f"{sample.category}\t{sample.relpath}\t{sample.label}\n".encode())
    return digest.hexdigest()[:MANIFEST_HASH_LENGTH]
