"""The sweep file (TOML): a ``[sweep]`` table of axes, after a run config that every cell shares.

    data-root = "data/mvtec"          # the top level (before [sweep]) is a `harness run --config` file,
    limit = 20                        # applied to every cell
    [model-options."knn"]             # options of a model go to the cells that run it
    ...
    [gate-options.oracle]             # with gate in [sweep]: options per gate (else the flat table)

    [sweep]
    name = "bottles"                  # the run ids' prefix; default: the file's name without .toml
    benchmark = ["mvtec-ad"]          # each axis is a list of entries; one value stands for a list of one
    category = ["bottle", "cable"]    # optional; an entry is a category or a list of them (one cell)
    gate = ["oracle", "none"]
    models = ["random", "random,knn"] # an entry is a --models string or a list of specs (one cell)
    prompt = ["velm", "plain"]
    seed = [0, 1]
    shots = [3]

The cells are the cross product of the axes in the order above (each axis in the file's order). An
axis may instead be set once at the top level, with its run-config meaning (``models = ["a", "b"]``
there is one cell asking both). The top level is read and checked by the core's run-config reader
(`harness.run.run_options.checked_config`): paths are read from the sweep file's folder and an unknown
key is an error naming the file. Each cell's run id is the sweep's name, the cell's values and a hash
of the cell and of the shared settings as written, so it is found again by the next ``harness sweep``
and changes when a setting that changes the results does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.errors import HarnessError
from harness.run.run_config import RunConfig
from harness.run.run_options import checked_config, config_values, read_toml

#: Settings that say where and how a run is written or executed, not what it computes: not part of a cell's id.
NOT_IN_ID = frozenset({"results-dir", "output-format", "output-formats", "no-cache", "executor", "ray-address",
                       "executor-options"})


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _texts(value: Any) -> bool:
    return _text(value) or (isinstance(value, list) and bool(value) and all(_text(v) for v in value))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class Axis:
    """One dimension of the cross product: its spellings in ``[sweep]``, the run-config key a cell's entry sets."""

    key: str  # the run-config key an entry sets
    names: tuple[str, ...]  # accepted in [sweep]
    top_level: tuple[str, ...]  # run-config keys of the same setting
    expected: str
    valid: Callable[[Any], bool]


AXES = (
    Axis("benchmark", ("benchmark", "benchmarks"), ("benchmark",), "a benchmark name", _text),
    Axis("category", ("category", "categories"), ("category", "categories"),
         "a category name or a list of them", _texts),
    Axis("gate", ("gate", "gates"), ("gate",), "a gate name", _text),
    Axis("models", ("models",), ("models",), 'a --models string ("random,knn") or a list of model specs', _texts),
    Axis("prompt", ("prompt", "prompts"), ("prompt",), "a prompt template name", _text),
    Axis("seed", ("seed", "seeds"), ("seed",), "a whole number (0 or more)", _whole),
    Axis("shots", ("shots",), ("shots",), "a whole number (0 or more)", _whole),
)
SWEEP_KEYS = ("name",) + tuple(name for axis in AXES for name in axis.names)


@dataclass(frozen=True)
class Cell:
    """One run of the sweep: its id, its entries per axis (only the axes ``[sweep]`` sets) and its config."""

    run_id: str
    entries: dict[str, Any]
    config: RunConfig

    def settings(self) -> dict[str, str]:
        """The cell's run as text, one item per axis, for listings."""
        config = self.config
        return {
            "benchmark": config.benchmark, "category": "+".join(config.categories or []) or "all",
            "gate": config.gate, "models": ",".join(config.models), "prompt": config.prompt,
            "seed": str(config.seed), "shots": str(config.shots),
        }


@dataclass(frozen=True)
class Sweep:
    """A sweep file read: its name, where its runs go, and its cells in order."""

    path: Path
    name: str
    results_dir: Path
    cells: list[Cell]

    def cell(self, run_id: str) -> Cell:
        """The cell with this run id; a `HarnessError` when the file has none (it changed since)."""
        for cell in self.cells:
            if cell.run_id == run_id:
                return cell
        raise HarnessError(f"{self.path}: no cell has run id {run_id!r} (was the sweep file changed?)")


def load_sweep(path: Path, results_dir: Path | None = None) -> Sweep:
    """Read and check a sweep file; ``results_dir`` (a flag) wins over the file's ``results-dir``."""
    document = read_toml(path, "sweep file")
    table = document.pop("sweep", None)
    if not isinstance(table, dict):
        raise HarnessError(f"{path}: no [sweep] table; a sweep file names its axes there (benchmark, gate, models, ...)")
    shared_raw = {key.replace("_", "-"): value for key, value in document.items()}
    if "run-id" in shared_raw:
        raise HarnessError(f"{path}: run-id: each cell's run id is made from the sweep; remove the key")
    shared = checked_config(dict(shared_raw), path)
    name = table.get("name", path.stem)
    if not _text(name):
        raise HarnessError(f"{path}: [sweep] name: expected a non-empty text, got {name!r}")
    axes = _axes(table, shared_raw, path)
    results_dir = results_dir or Path(shared.get("results-dir") or "results")
    identity = {key: value for key, value in shared_raw.items() if key not in NOT_IN_ID}
    gate_options = _gate_options(shared, dict(axes), path)
    cells = []
    for values in itertools.product(*(entries for _, entries in axes)):
        entries = {axis.key: value for (axis, _), value in zip(axes, values)}
        config = _cell_config(shared, entries, path, gate_options)
        run_id = _run_id(name, config, {"sweep": name, "shared": identity, "cell": _cell_values(config)})
        same = next((cell for cell in cells if cell.run_id == run_id), None)
        if same is not None:  # two entries of an axis mean the same ("a,b" and ["a", "b"], or given twice)
            raise HarnessError(f"{path}: [sweep]: the cells {same.entries} and {entries} are the same run; "
                               "give each entry of an axis once")
        config.run_id, config.results_dir = run_id, results_dir
        cells.append(Cell(run_id, entries, config))
    _check_model_options(shared, cells, path)
    return Sweep(path, name, results_dir, cells)


def _gate_options(shared: dict[str, Any], axes: dict[Axis, list[Any]], path: Path) -> dict[str, dict[str, Any]] | None:
    """With a gate axis, ``[gate-options.NAME]`` per gate (checked); else None (the run config's flat table)."""
    gates = next((entries for axis, entries in axes.items() if axis.key == "gate"), None)
    if gates is None:
        return None
    options = shared.get("gate-options", {})
    for gate, table in options.items():
        if gate not in gates or not isinstance(table, dict):
            raise HarnessError(f"{path}: gate-options: with gate in [sweep], options go per gate, as [gate-options.NAME] "
                               f"with NAME one of {', '.join(gates)}; found {gate!r}")
    return options


def _check_model_options(shared: dict[str, Any], cells: list[Cell], path: Path) -> None:
    """Model options name specs that some cell runs (each cell gets only its own models' options)."""
    run = {spec for cell in cells for spec in cell.config.models}
    strays = [spec for spec in shared.get("model-options", {}) if spec not in run]
    if strays:
        raise HarnessError(f"{path}: model-options: {', '.join(repr(s) for s in strays)} is run by no cell "
                           f"(the cells run {', '.join(sorted(run))}); write the table key exactly as the spec")


def _axes(table: dict[str, Any], shared: dict[str, Any], path: Path) -> list[tuple[Axis, list[Any]]]:
    """The axes ``[sweep]`` sets, each with its entries, checked."""
    unknown = sorted(set(table) - set(SWEEP_KEYS))
    if unknown:
        raise HarnessError(f"{path}: [sweep]: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(SWEEP_KEYS)} "
                           "(settings shared by every cell go at the top level, before [sweep])")
    axes = []
    for axis in AXES:
        given = [name for name in axis.names if name in table]
        if not given:
            continue
        key = given[0]
        if len(given) > 1:
            raise HarnessError(f"{path}: [sweep]: give {' or '.join(given)} (the same axis), not both")
        both = [name for name in axis.top_level if name in shared]
        if both:
            raise HarnessError(f"{path}: {key} is both in [sweep] and at the top level ({both[0]}); give it once")
        # A list is the axis's entries (for models and category, a nested list is one entry); one value, one entry.
        entries = table[key] if isinstance(table[key], list) else [table[key]]
        if not entries:
            raise HarnessError(f"{path}: [sweep] {key} is empty; give at least one entry")
        for number, entry in enumerate(entries, start=1):
            if not axis.valid(entry):
                raise HarnessError(f"{path}: [sweep] {key}: entry {number} is {entry!r}; expected {axis.expected}")
        axes.append((axis, entries))
    return axes


def _cell_config(shared: dict[str, Any], entries: dict[str, Any], path: Path,
                 gate_options: dict[str, dict[str, Any]] | None) -> RunConfig:
    """The shared settings with the cell's entries, read as ``harness run --config`` reads a file; options
    only for the cell's own gate and models (a run refuses options for a model it does not run)."""
    table = {**shared, **entries}
    if gate_options is not None:
        table["gate-options"] = gate_options.get(entries["gate"], {})
    values = config_values({}, table, path)
    models = values.get("models", [])
    values["model_options"] = {spec: o for spec, o in values.get("model_options", {}).items() if spec in models}
    threshold = table.get("gate-threshold")
    if threshold is not None:  # the gate's own option, set by its own key (as `harness run` does)
        values["gate_options"] = {**values.get("gate_options", {}), "threshold": threshold}
    return RunConfig(**values, use_cache=not table.get("no-cache", False))


def _cell_values(config: RunConfig) -> dict[str, Any]:
    """What the axes set, as the run reads it (so "a,b" and ["a", "b"] are one cell)."""
    return {"benchmark": config.benchmark, "categories": config.categories, "gate": config.gate,
            "models": config.models, "prompt": config.prompt, "seed": config.seed, "shots": config.shots}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_.") or "_"


def _run_id(name: str, config: RunConfig, identity: dict[str, Any]) -> str:
    """``NAME-BENCHMARK-CATEGORIES-GATE-MODELS-PROMPT-sSEED-kSHOTS-HASH``; the hash covers what the text leaves out."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
    parts = [name, config.benchmark, "+".join(config.categories or []) or "all", config.gate, "+".join(config.models),
             config.prompt, f"s{config.seed}", f"k{config.shots}"]
    readable = "-".join(_slug(part) for part in parts)[:120]  # the hash keeps cut ids apart
    return f"{readable}-{digest}"
