"""Where a model spec's checkpoint lives on disk, found without touching the network.

``hf:MODEL_ID`` names either a directory saved with ``save_pretrained`` or a
Hugging Face Hub id (``Qwen/Qwen2-VL-7B-Instruct``) that must already be in the
local Hugging Face cache. The harness never downloads a model: that is the
user's decision (disk, licence, bandwidth), taken beforehand with
``huggingface-cli download`` (``hf download`` in newer huggingface_hub).

Nothing here imports torch or transformers, so a missing checkpoint is reported
before any heavy import, when the run is set up.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

PIP_HINT = "pip install 'anomaly-harness[hf]'"

#: A Hub repository id: ``name`` or ``owner/name``.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint found on disk.

    ``source`` is what ``from_pretrained`` is given (the model id as the user
    wrote it, or the directory); ``directory`` is the folder holding its
    files; ``revision`` is the Hub commit of a cached model (None for a plain
    directory).
    """

    source: str
    directory: Path
    revision: str | None = None


def files_fingerprint(directory: Path) -> str:
    """A hash of the name, size and modification time (ns) of every file under ``directory``, without reading them.

    Two checkpoints saved under the same name (a directory overwritten by a new
    fine-tune, a Hub snapshot re-downloaded) then never share cached answers.
    Files are followed through symbolic links, as the Hub cache's snapshots are.
    """
    entries = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            try:
                stat = path.stat()
            except OSError:  # a dangling link: what from_pretrained would fail on, named by its absence
                entries.append([path.relative_to(directory).as_posix(), None, None])
                continue
            entries.append([path.relative_to(directory).as_posix(), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def require_backend() -> None:
    """Raise a `HarnessError` with a pip hint when torch or transformers is not installed."""
    missing = [name for name in ("torch", "transformers") if importlib.util.find_spec(name) is None]
    if missing:
        raise HarnessError(
            f"the hf plugin needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
            f"installed; install them with: {PIP_HINT}"
        )


def _looks_like_path(model_id: str) -> bool:
    return model_id.startswith(("/", "./", "../", "~", "\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", model_id)) \
        or model_id in (".", "..") or model_id.count("/") > 1


def resolve_checkpoint(model_id: str) -> Checkpoint:
    """The on-disk checkpoint for ``model_id``, or a `HarnessError` that says how to get it."""
    path = Path(model_id).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise HarnessError(
                f"{path} is not a saved Hugging Face model: it has no config.json. Point hf:PATH at the "
                "directory that save_pretrained wrote (or that huggingface-cli download filled)."
            )
        return Checkpoint(source=str(path), directory=path.resolve())
    if _looks_like_path(model_id) or path.exists():
        raise HarnessError(
            f"no model directory at {path}. Give hf:PATH a directory holding a saved model, or hf:OWNER/NAME "
            "for a model already in the Hugging Face cache."
        )
    if not _HUB_ID.match(model_id):
        raise HarnessError(
            f"{model_id!r} is neither a model directory nor a Hugging Face model id (OWNER/NAME)"
        )
    return _cached_hub_model(model_id)


def _cached_hub_model(repo_id: str) -> Checkpoint:
    try:
        from huggingface_hub import constants, try_to_load_from_cache
    except ImportError:
        raise HarnessError(f"the hf plugin needs huggingface_hub (it comes with transformers): {PIP_HINT}") from None
    found = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(found, str):
        raise HarnessError(
            f"model {repo_id!r} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}), and the harness "
            f"never downloads models. Download it beforehand, e.g. `huggingface-cli download {repo_id}` "
            f"(or `hf download {repo_id}`), on a machine that can reach the Hub, or pass a local directory: "
            "hf:/path/to/model."
        )
    directory = Path(found).parent
    # Cache layout: .../models--OWNER--NAME/snapshots/<commit>/config.json
    revision = directory.name if directory.parent.name == "snapshots" else None
    return Checkpoint(source=repo_id, directory=directory, revision=revision)
