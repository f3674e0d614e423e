"""What a run folder keeps so that every prompt's images can be drawn again exactly as they were sent.

A prompt's pictures come from the sample's image, the reference normal, the support samples (all in
the data root) and the gate's verdict (not). So for each flagged sample the run keeps the gate's part
under ``prompt_images/``, each file named by its content (shared by repeats, models and resumes):
``region-<hash>.png`` (the region, 1 bit a pixel), ``map-<hash>.png`` (the anomaly map's thumbnail,
only when a prompt showed the heat map), ``support-<hash>.json`` (the support samples' paths). Each
record of a model asked carries ``prompt_images`` (README: "samples.jsonl"); `redraw` rebuilds the
pictures from it, and `mismatches` compares them with the digests of what was shown.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from harness.errors import BadInputError, HarnessError
from harness.images import load_mask, load_rgb
from harness.prompts import image_digest
from harness.types import Prepared, Prompt, Sample
from harness.visual import as_mask, map_thumbnail, visual_prompt_images

#: The run folder's sub-folder of stored prompt material.
FOLDER = "prompt_images"
#: The record field that points at it.
FIELD = "prompt_images"


def support_visuals(image: Image.Image, mask: Path | None) -> dict[str, Image.Image]:
    """One support sample's prompt images: query, and outline and crop from its mask (unreadable: `BadInputError`)."""
    region = load_mask(mask, image.size) if mask else None
    region = region if region is not None and region.any() else None
    return visual_prompt_images(image, None, region, None)


def support_picture(images: Mapping[str, Image.Image]) -> Image.Image:
    """The one picture of a support sample that a template shows: its outline, or the query without a mask."""
    return images.get("outlined", images["query"])


def shown_images(prompt: Prompt) -> dict[str, str]:
    """Image name -> digest, in the order ``prompt`` shows them (a memo's key-only prompt carries them as stored)."""
    stored = getattr(prompt, "shown_digests", None)
    if stored is not None:
        return dict(stored)
    return {part.name: part.digest for part in prompt.images}


class PromptImageStore:
    """Writes one run's prompt material and says, per prepared sample, where it is (thread-safe).

    Stored paths are relative to ``data_root`` (absolute outside it).
    """

    def __init__(self, run_dir: Path, data_root: Path):
        self.run_dir = Path(run_dir)
        self.data_root = Path(data_root)
        self._written: set[str] = set()
        self._lock = threading.Lock()
        self._reference: str | None = None
        self._support: str | None = None

    def begin_category(self, reference: Path | None, support: Sequence[Sample]) -> None:
        """The category's reference normal and support samples, shared by its samples' prompts."""
        self._reference = None if reference is None else relative_to(reference, self.data_root)
        self._support = None
        if support:
            entries = [[relative_to(s.image, self.data_root), None if s.mask is None else relative_to(s.mask, self.data_root)]
                       for s in support]
            data = json.dumps(entries, separators=(",", ":")).encode("utf-8")
            self._support = self._write("support", "json", data, data)

    def keep(self, prepared: Prepared) -> dict[str, Any] | None:
        """Store what redrawing ``prepared``'s prompts needs; its records' field (None when no model is asked)."""
        if not prepared.asks_a_model:
            return None
        gate = prepared.gate
        used = {name for prompt in prepared.prompts.values() for name in shown_images(prompt)}
        region = None
        if gate.region is not None:
            # At the region's own size: `visual_prompt_images` resizes it to the image (nearest
            # neighbour) exactly as `redraw`'s `load_mask` does with the stored file.
            array = np.asarray(gate.region)
            mask = as_mask(array, (array.shape[1], array.shape[0]))
            if mask.any():
                region = self._write_region(mask)
        anomaly_map = None
        if "heatmap" in used and gate.anomaly_map is not None:
            anomaly_map = self._write_map(map_thumbnail(gate.anomaly_map))
        return {"reference": self._reference, "region": region, "anomaly_map": anomaly_map, "support": self._support}

    def _write_region(self, mask: np.ndarray) -> str:
        height, width = mask.shape
        packed = np.packbits(mask, axis=1).tobytes()  # 1 bit a pixel, each row padded to a byte: PIL's mode "1"
        content = f"region|{width}x{height}|".encode("ascii") + packed
        return self._write("region", "png", content, lambda: _png(Image.frombytes("1", (width, height), packed)))

    def _write_map(self, thumbnail: np.ndarray) -> str:
        height, width = thumbnail.shape
        content = f"map|{width}x{height}|".encode("ascii") + thumbnail.tobytes()
        return self._write("map", "png", content, lambda: _png(Image.fromarray(thumbnail)))

    def _write(self, kind: str, suffix: str, content: bytes, data) -> str:
        """Write a content-named file once (atomically: a killed run leaves it whole or absent); its run-folder path."""
        name = f"{FOLDER}/{kind}-{hashlib.sha256(content).hexdigest()[:16]}.{suffix}"
        with self._lock:
            if name in self._written:
                return name
            path = self.run_dir / name
            if not path.is_file():  # a resumed run wrote it already
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_bytes(data() if callable(data) else data)
                os.replace(tmp, path)
            self._written.add(name)
        return name


def record_field(stored: Mapping[str, Any] | None, prompt: Prompt | None) -> dict[str, Any] | None:
    """A record's ``prompt_images``: the sample's stored material and the images ``prompt`` showed."""
    if stored is None or prompt is None:
        return None
    return {"shown": shown_images(prompt), **stored}


def relative_to(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form, or absolute when it lies outside ``root``."""
    absolute = Path(os.path.abspath(path))  # a relative --data-root still matches the samples' absolute paths
    try:
        return absolute.relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return str(absolute)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # ``optimize`` saves a fifth of the bytes at three times the time
    return buffer.getvalue()


def redraw(run_dir: Path, record: Mapping[str, Any], data_root: Path | None = None) -> dict[str, Image.Image]:
    """The pictures of ``record``'s sample as its prompt was given them, drawn again by name.

    ``query`` always, the others when the run stored what they are drawn from; ``data_root`` defaults to
    run.json's. No stored images: `HarnessError`; an unreadable file: `BadInputError` naming it.
    """
    run_dir = Path(run_dir)
    stored = record.get(FIELD)
    if not stored:
        raise HarnessError(
            f"record {record.get('sample_id')!r} of {run_dir} keeps no prompt images "
            "(no model was asked, or the run was made before runs kept them)"
        )
    root = Path(data_root) if data_root is not None else _recorded_root(run_dir)
    query = load_rgb(_resolve(record["image"], root))
    reference = load_rgb(_resolve(stored["reference"], root)) if stored.get("reference") else None
    region = load_mask(_stored_file(run_dir, stored["region"]), query.size) if stored.get("region") else None
    anomaly_map = None
    if stored.get("anomaly_map"):
        anomaly_map = _read_map(_stored_file(run_dir, stored["anomaly_map"])).astype(np.float32) / 255.0
    images = visual_prompt_images(query, reference, region, anomaly_map)
    if stored.get("support"):
        for number, (image, mask) in enumerate(_read_support(run_dir, stored["support"]), start=1):
            mask_path = None if mask is None else _resolve(mask, root)
            images[f"support_{number}"] = support_picture(support_visuals(load_rgb(_resolve(image, root)), mask_path))
    return images


def mismatches(images: Mapping[str, Image.Image], record: Mapping[str, Any]) -> list[str]:
    """The names of images ``record``'s prompt showed that ``images`` lacks or holds with other pixels."""
    shown = (record.get(FIELD) or {}).get("shown") or {}
    return [name for name, digest in shown.items() if name not in images or image_digest(images[name]) != digest]


def _recorded_root(run_dir: Path) -> Path:
    from harness.run.data_location import load_run_benchmark, recorded_data_root
    from harness.results import load_run

    run, _ = load_run(run_dir)
    recorded = recorded_data_root(run)
    if recorded is not None:
        return recorded
    categories = list((run.get("benchmark") or {}).get("categories", {})) or None
    return load_run_benchmark(run, None, categories).root  # the benchmark found its own data (the demo)


def _resolve(stored: str, root: Path) -> Path:
    path = Path(stored)
    return path if path.is_absolute() else root / path


def _stored_file(run_dir: Path, name: str) -> Path:
    path = run_dir / name
    if not path.is_file():
        raise BadInputError(f"{path}: stored prompt image not found")
    return path


def _read_map(path: Path) -> np.ndarray:
    """A stored `map_thumbnail` (an 8-bit grey PNG) as the uint8 array it was written from."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"))
    except (OSError, SyntaxError, ValueError) as error:
        raise BadInputError(f"{path}: not a readable stored anomaly map ({error})") from error


def _read_support(run_dir: Path, name: str) -> list[list[str | None]]:
    path = _stored_file(run_dir, name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise BadInputError(f"{path}: not a stored support list ({error})") from error
