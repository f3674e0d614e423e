"""The fit cache: a fitted memory bank and its calibration, on disk, keyed by what made them.

The key is a SHA-256 over the plugin version, the cache format, the torch
version, the backbone and its weights file (name, size, modification time),
every option that changes the fit, the resolved device (float16 on a GPU
gives slightly different features) and each training file's path, size and
modification time (in sorted order). Change any of them and the key changes.

An entry is one ``.npz`` file (arrays, plus the metadata as a JSON string;
no pickles), written to a temporary file in the same folder and renamed into
place, so a reader never sees half an entry. An unreadable entry is a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.errors import HarnessError

CACHE_ENV = "HARNESS_CACHE_DIR"
DEFAULT_CACHE_DIR = "~/.cache/anomaly-harness"
#: Bump when what an entry holds, or how it is computed, changes.
CACHE_FORMAT = 3  # 2: the bank covers all training images (calibration bank continued); 3: border ratio floor

log = logging.getLogger(__name__)


def cache_root(configured: str | None) -> Path:
    """The configured folder, else ``$HARNESS_CACHE_DIR/patchcore``, else ``~/.cache/anomaly-harness/patchcore``."""
    if configured:
        return Path(configured).expanduser().absolute()
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser().absolute() / "patchcore"


def training_files_fingerprint(paths: Sequence[Path]) -> list[list[Any]]:
    """[path, size, mtime_ns] of each training file, sorted; a missing file is a `HarnessError` naming it.

    Paths are made absolute with ``..`` resolved (not links): the same data reached as ``../data`` from
    one folder and ``/work/data`` from another is the same fit.
    """
    rows = []
    for path in sorted(Path(os.path.abspath(p)) for p in paths):
        try:
            stat = path.stat()
        except OSError as error:
            raise HarnessError(f"training image {path} cannot be read: {error.strerror or error}") from None
        rows.append([str(path), stat.st_size, stat.st_mtime_ns])
    return rows


def fit_key(parts: dict[str, Any]) -> str:
    """The hex SHA-256 of ``parts`` (JSON-serialisable), with the cache format added."""
    payload = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def entry_path(root: Path, key: str, category: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in category)[:40] or "category"
    return root / f"{safe}-{key[:24]}.npz"


def save(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write an entry atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            np.savez(handle, __meta__=np.array(json.dumps(meta)), **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def load(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """(arrays, meta) of an entry, or None when it is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files if name != "__meta__"}
            meta = json.loads(str(data["__meta__"]))
    except Exception as error:  # a truncated or foreign file: recompute and overwrite it
        log.warning("ignoring unreadable patchcore cache entry %s: %s", path, error)
        return None
    if meta.get("format") != CACHE_FORMAT:
        return None
    return arrays, meta
