"""What the response cache holds, per (plugin, model, endpoint), and removing part of it.

The logic of ``harness cache info`` and ``harness cache clear``: which groups a ``--model`` /
``--endpoint`` filter selects, and how an endpoint is shown.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.backend_kit import public_base_url
from harness.run.cache import ResponseCache
from harness.classifiers import parse_model_spec
from harness.errors import HarnessError

#: Endpoint entries that say where answers come from: a server's URL, a local checkpoint's directory.
ADDRESS_KEYS = ("base_url", "checkpoint")
_DIGEST = re.compile(r"[0-9a-f]{32,}")


@dataclass(frozen=True)
class Group:
    """The cached responses of one model spec at one endpoint."""

    plugin: str
    model: str | None
    endpoint: str | None  # the stored JSON (None: written without one, by an older harness)
    entries: int

    @property
    def spec(self) -> str:
        return f"{self.plugin}:{self.model}" if self.model else self.plugin

    @property
    def endpoint_fields(self) -> dict[str, Any]:
        return json.loads(self.endpoint) if self.endpoint else {}

    @property
    def row(self) -> tuple[str, str | None, str | None]:
        """The (plugin, model, endpoint column) that `ResponseCache.delete_groups` takes."""
        return self.plugin, self.model, self.endpoint


@dataclass
class Inventory:
    """``harness cache info``: where the cache is, how big, and what it holds."""

    path: str
    size_bytes: int
    entries: int
    memo_entries: int
    groups: list[Group]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["groups"] = [
            {"spec": g.spec, "plugin": g.plugin, "model": g.model, "endpoint": g.endpoint_fields, "entries": g.entries}
            for g in self.groups
        ]
        return data


def open_existing(path: Path) -> ResponseCache:
    """The cache at ``path``; a `HarnessError` when there is none (a command that only reads must not create one)."""
    if not path.is_file():
        raise HarnessError(
            f"no response cache at {path}: nothing has been cached there yet (runs write it unless --no-cache; "
            "its folder is $HARNESS_CACHE_DIR, else ~/.cache/anomaly-harness)"
        )
    return ResponseCache(path)


def take_inventory(cache: ResponseCache) -> Inventory:
    """What ``cache`` holds; its size counts the database and its write-ahead log."""
    groups = [Group(plugin, model, endpoint, count) for plugin, model, endpoint, count in cache.entry_counts()]
    wal = cache.path.with_name(cache.path.name + "-wal")
    size = cache.path.stat().st_size + (wal.stat().st_size if wal.is_file() else 0)
    return Inventory(str(cache.path), size, sum(g.entries for g in groups), cache.memo_count(), groups)


def endpoint_label(group: Group) -> str:
    """An endpoint for people: its address first, then the rest as ``name=value`` (digests shortened)."""
    if group.endpoint is None:
        return "(not recorded)"
    fields = group.endpoint_fields
    if not fields:
        return "(local)"
    address = next((str(fields[k]) for k in ADDRESS_KEYS if fields.get(k)), None)
    rest = [f"{name}={_short(value)}" for name, value in sorted(fields.items())
            if name not in ADDRESS_KEYS and value is not None]
    return " ".join(([address] if address else []) + rest)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:12] if _DIGEST.fullmatch(text) else text


def select(groups: list[Group], model: str | None, endpoint: str | None) -> list[Group]:
    """The groups that match every given filter: a model spec, an endpoint address (URL or checkpoint directory)."""
    wanted_spec = parse_model_spec(model) if model is not None else None
    wanted_address = _address(endpoint) if endpoint is not None else None
    chosen = []
    for group in groups:
        if wanted_spec is not None and (group.plugin, group.model) != wanted_spec:
            continue
        if wanted_address is not None and wanted_address not in {group.endpoint_fields.get(k) for k in ADDRESS_KEYS}:
            continue
        chosen.append(group)
    return chosen


def _address(endpoint: str) -> str:
    """``--endpoint`` in the form endpoints store it: a URL normalised like `public_base_url`, a directory resolved."""
    endpoint = endpoint.strip()
    if not endpoint:
        raise HarnessError("--endpoint is empty; give a base URL (http://host:port/v1) or a checkpoint directory")
    if "://" in endpoint:
        return public_base_url(endpoint)
    return str(Path(endpoint).expanduser().resolve())
