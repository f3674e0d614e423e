"""Prediction files as `harness score` reads them: the ``velm`` and ``jsonl`` formats, checked line by line.

Each prediction becomes an `Entry`; `harness.scoring.imported` (which describes
the formats) matches the entries to a benchmark's samples. Bad input raises
`HarnessError` naming the file, and the line or key, and what was expected.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

FORMATS: tuple[str, ...] = ("velm", "jsonl")


@dataclass(frozen=True)
class Entry:
    """One prediction as read: where it is in the file, what names the image, the predicted text."""

    where: str
    key: str
    text: str | None
    category: str | None = None  # jsonl lines that name the image by category + path



def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, in hex (the run records which prediction file it scored)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_predictions(path: Path, fmt: str) -> list[Entry]:
    """Every prediction in ``path``, or a `HarnessError` naming the file and what was expected."""
    if fmt not in FORMATS:
        raise HarnessError(f"unknown predictions format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise HarnessError(f"{path}: predictions file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise HarnessError(f"{path}: not UTF-8 text ({error})") from None
    return _read_velm(path, text) if fmt == "velm" else _read_jsonl(path, text)


class _Pairs(list):
    """A JSON object read as its (key, value) pairs, so repeated keys are seen, not silently merged."""


def _read_velm(path: Path, text: str) -> list[Entry]:
    expected = "one JSON object mapping <category>_<class>_<NNN> to a predicted class name"
    try:
        pairs = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as error:
        raise HarnessError(f"{path}: not valid JSON ({error}); format velm expects {expected}") from None
    if not isinstance(pairs, _Pairs):
        raise HarnessError(f"{path}: format velm expects {expected}, but the file holds {_kind(pairs)}")
    entries = []
    for key, value in pairs:
        if value is not None and not isinstance(value, str):
            raise HarnessError(
                f"{path}: the prediction for {key!r} is {_kind(value)}; format velm expects a class name string"
            )
        entries.append(Entry(where=f"key {key!r}", key=key, text=value))
    if not entries:
        raise HarnessError(f"{path}: holds no predictions; format velm expects {expected}")
    return entries


def _kind(value: Any) -> str:
    """What a JSON value is, in words, for messages."""
    if isinstance(value, _Pairs):
        return "a JSON object"
    if isinstance(value, bool):
        return "a boolean"
    return {list: "a JSON array", str: "a string", int: "a number", float: "a number", dict: "a JSON object"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _read_jsonl(path: Path, text: str) -> list[Entry]:
    expected = "one JSON object per line with predicted_label and sample_id (or category and image)"
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise HarnessError(f"{where}: not valid JSON ({error}); format jsonl expects {expected}") from None
        if not isinstance(obj, dict):
            raise HarnessError(f"{where}: holds {_kind(obj)}; format jsonl expects {expected}")
        if "predicted_label" not in obj:
            raise HarnessError(f"{where}: no predicted_label; format jsonl expects {expected}")
        label = obj["predicted_label"]
        if label is not None and not isinstance(label, str):
            raise HarnessError(f"{where}: predicted_label is {_kind(label)}; expected a class name string or null")
        if isinstance(obj.get("sample_id"), str):
            entries.append(Entry(where=f"line {number}", key=obj["sample_id"], text=label))
        elif isinstance(obj.get("category"), str) and isinstance(obj.get("image"), str):
            entries.append(Entry(where=f"line {number}", key=obj["image"], text=label, category=obj["category"]))
        else:
            raise HarnessError(f"{where}: names no image; format jsonl expects sample_id, or category and image")
    if not entries:
        raise HarnessError(f"{path}: holds no predictions; format jsonl expects {expected}")
    return entries
