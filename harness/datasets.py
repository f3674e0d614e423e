"""The benchmark protocol: a plugin turns a data root into a `BenchmarkData` (categories with training
normals, test samples and candidate classes); the core never parses a dataset layout itself.
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
    """A dataset layout plus class lists plus a default scoring protocol: subclasses set ``name``,
    ``description`` and ``layout`` (the expected folders, quoted in errors) and implement `load`."""

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
        """The test set as published, built without reading any image (None: not known), so predictions
        made elsewhere can be scored (`harness score`) under the manifest hash of a complete data root."""
        return None

    def layout_error(self, root: Path, problem: str) -> DataLayoutError:
        """An error that says what is wrong at ``root`` and which layout was expected."""
        message = problem if str(root) in problem else f"{problem} (data root: {root})"  # name the path once
        if self.layout:
            message += f"\nbenchmark {self.name!r} expects:\n{self.layout}"
        return DataLayoutError(message)


class ReleaseMismatchError(DataLayoutError):
    """A data root whose test files differ from the benchmark's released list (the message names how).

    ``partial``: the benchmark on the files in both (None: none), which ``--allow-partial`` runs on;
    ``difference``: the JSON account of what differs, then recorded in run.json.
    """

    def __init__(self, message: str, partial: BenchmarkData | None, difference: dict[str, Any]) -> None:
        super().__init__(message)
        self.partial = partial
        self.difference = difference


def manifest_hash(data: BenchmarkData) -> str:
    """A short hash of every test image path and its label: runs with the same one may be ranked together."""
    digest = hashlib.sha256()
    for sample in sorted(data.samples, key=lambda s: (s.category, s.relpath)):
        digest.update(f"{sample.category}\t{sample.relpath}\t{sample.label}\n".encode())
    return digest.hexdigest()[:MANIFEST_HASH_LENGTH]
