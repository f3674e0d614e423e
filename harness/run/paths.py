"""Where the harness keeps things between runs."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "HARNESS_CACHE_DIR"


def cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR``, else ``~/.cache/anomaly-harness``: generated data, fitted gates, responses."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "anomaly-harness"
