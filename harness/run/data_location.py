"""Where a finished run's images are: the recorded data root, or the benchmark's own place for them.

Without a recorded root (the demo, generated into the cache) a reader asks the benchmark again, so a
published demo run opens anywhere and nothing is written outside the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.errors import HarnessError
from harness.types import BenchmarkData


def recorded_data_root(run: Mapping[str, Any]) -> Path | None:
    """The data root run.json records, or None when the benchmark located its own data."""
    recorded = (run.get("benchmark") or {}).get("data_root")
    return Path(recorded) if recorded else None


def load_run_benchmark(run: Mapping[str, Any], data_root: Path | None = None,
                       categories: Sequence[str] | None = None) -> BenchmarkData:
    """Load the run's benchmark from ``data_root``, else the recorded root, else where the benchmark keeps it."""
    from harness.plugins import get_registry

    name = (run.get("benchmark") or {}).get("name")
    if not name:
        raise HarnessError(f"run {run.get('run_id')!r}: run.json names no benchmark")
    benchmark = get_registry().get("benchmarks", name).obj
    root = data_root if data_root is not None else recorded_data_root(run)
    if root is None and getattr(benchmark, "requires_data_root", True):
        raise HarnessError(f"run {run.get('run_id')!r} records no data root and benchmark {name!r} needs one: "
                           "pass the data root")
    if root is not None and not root.exists():
        # Checked here, not left to the benchmark: loading the demo from a missing folder would
        # generate it there, and reading a finished run must never write outside the cache.
        raise HarnessError(f"{root} does not exist (the run's data root)")
    return benchmark.load(root, categories)
