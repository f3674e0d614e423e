"""A user's class file: their own object descriptions, class names and descriptions, for any benchmark.

The form (README: "Your own class descriptions") is that of the class files plugins register. A run
reads ``--classes FILE``, else ``DATA_ROOT/classes.toml``, and lays it over what the benchmark
loaded: a non-empty field replaces the benchmark's. An unknown class is an error (a typo would drop
its description silently); a category the run did not load only a warning (``--category``).
TOML parsers give no line numbers, so `line_index` finds them in the text.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.types import BenchmarkData, ClassInfo

#: The class file a data root may hold, read when no ``--classes`` is given.
DEFAULT_NAME = "classes.toml"
CATEGORY_FIELDS = ("object", "guidance", "reference")
CLASS_FIELDS = ("name", "description")

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


@dataclass
class UserClass:
    """What the file says about one class; empty strings mean "keep the benchmark's"."""

    key: str
    name: str = ""
    description: str = ""


@dataclass
class UserCategory:
    """What the file says about one category."""

    name: str
    object: str = ""
    guidance: str = ""
    reference: str = ""
    classes: dict[str, UserClass] = field(default_factory=dict)


@dataclass
class UserClassFile:
    """A parsed user class file, its hash and where each table and key is (for messages)."""

    path: Path
    sha256: str
    categories: dict[str, UserCategory]
    #: (table path, key or "") -> 1-based line number; see `line_index`.
    lines: dict[tuple[tuple[str, ...], str], int]

    def where(self, table: tuple[str, ...], key: str = "") -> str:
        """``FILE:LINE`` of a key (or of its table, or of the nearest enclosing table found)."""
        for probe in ((table, key), (table, "")) + tuple((table[:n], "") for n in range(len(table) - 1, 0, -1)):
            if probe in self.lines:
                return f"{self.path}:{self.lines[probe]}"
        return str(self.path)

    def describe(self) -> dict[str, str]:
        """What run.json records under ``benchmark.class_file``."""
        return {"path": str(self.path), "sha256": self.sha256}


def _unquote(part: str) -> str:
    part = part.strip()
    return part[1:-1] if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'" else part


def line_index(text: str) -> dict[tuple[tuple[str, ...], str], int]:
    """Line numbers of table headers ``(path, "")`` and of keys ``(path, key)`` in TOML text (first occurrence)."""
    lines: dict[tuple[tuple[str, ...], str], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = tuple(_unquote(p) for p in re.split(r"\.(?=(?:[^\"']*[\"'][^\"']*[\"'])*[^\"']*$)", header.group(1)))
            lines.setdefault((table, ""), number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((table, _unquote(key.group(1))), number)
    return lines


def read_class_file(path: Path) -> UserClassFile:
    """Parse a user class file; any problem of form is a `HarnessError` naming the file and line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise HarnessError(f"class file {path} not found") from None
    except OSError as error:
        raise HarnessError(f"class file {path} cannot be read: {error}") from None
    text = raw.decode("utf-8", errors="replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise HarnessError(f"class file {path} is not valid TOML: {error}") from None
    return class_file_from_data(data, path, hashlib.sha256(raw).hexdigest(), line_index(text))


def class_file_from_data(
    data: dict[str, Any], path: Path, sha256: str = "", lines: dict[tuple[tuple[str, ...], str], int] | None = None
) -> UserClassFile:
    """Check parsed TOML of a class file and build its `UserClassFile`; ``path`` and ``lines`` word the messages."""
    parsed = UserClassFile(path=path, sha256=sha256, categories={}, lines=lines or {})
    for name, table in data.items():
        parsed.categories[name] = _category(parsed, name, table)
    return parsed


def _category(parsed: UserClassFile, name: str, table: Any) -> UserCategory:
    if not isinstance(table, dict):
        raise HarnessError(f"{parsed.where((), name)}: [{name}] must be a table of category fields")
    unknown = sorted(set(table) - set(CATEGORY_FIELDS) - {"classes"})
    if unknown:
        raise HarnessError(f"{parsed.where((name,), unknown[0])}: unknown field(s) {', '.join(unknown)} in [{name}]; "
                           f"expected {', '.join(CATEGORY_FIELDS)} and [{name}.classes.KEY] tables")
    category = UserCategory(name, **{f: _text(parsed, (name,), table, f) for f in CATEGORY_FIELDS})
    classes = table.get("classes", {})
    if not isinstance(classes, dict):
        raise HarnessError(f"{parsed.where((name,), 'classes')}: [{name}].classes must be a table of class tables")
    for key, fields in classes.items():
        where = (name, "classes", key)
        if not isinstance(fields, dict):
            raise HarnessError(f"{parsed.where(where)}: [{name}.classes.{key}] must be a table with name and description")
        unknown = sorted(set(fields) - set(CLASS_FIELDS))
        if unknown:
            raise HarnessError(f"{parsed.where(where, unknown[0])}: unknown field(s) {', '.join(unknown)} in "
                               f"[{name}.classes.{key}]; expected {', '.join(CLASS_FIELDS)}")
        category.classes[key] = UserClass(key, **{f: _text(parsed, where, fields, f) for f in CLASS_FIELDS})
    return category


def _text(parsed: UserClassFile, table: tuple[str, ...], fields: dict[str, Any], name: str) -> str:
    value = fields.get(name, "")
    if not isinstance(value, str):
        raise HarnessError(f"{parsed.where(table, name)}: {name!r} must be a string, not {type(value).__name__}")
    return value.strip()


def apply_to_run(data: BenchmarkData, given: Path | None, data_root: Path | None) -> UserClassFile | None:
    """Read and apply ``--classes`` when given, else ``DATA_ROOT/classes.toml`` when present; None without one."""
    path = given
    if path is None and data_root is not None and (data_root / DEFAULT_NAME).is_file():
        path = data_root / DEFAULT_NAME
    if path is None:
        return None
    user = read_class_file(path)
    apply_class_file(data, user)
    return user


def check_resumed(run: dict[str, Any], user: UserClassFile | None) -> None:
    """A resumed run must show the descriptions it started with: same class file hash (or none both times)."""
    recorded = (run["benchmark"].get("class_file") or {}).get("sha256")
    current = user.sha256 if user else None
    if recorded != current:
        raise HarnessError(
            f"cannot resume {run['run_id']}: its class file had sha256 {recorded or 'none'}, now "
            f"{current or 'none'}{f' ({user.path})' if user else ''}; restore the file it ran with"
        )


def apply_class_file(data: BenchmarkData, user: UserClassFile) -> None:
    """Lay the user's descriptions over the loaded benchmark (see the module docstring); check references exist."""
    loaded = {c.name: c for c in data.categories}
    for name, given in user.categories.items():
        category = loaded.get(name)
        if category is None:
            logging.getLogger(__name__).warning(
                "%s: category %r of the class file is not in this run (categories: %s)",
                user.where((name,)), name, ", ".join(sorted(loaded)))
            continue
        category.object_description = given.object or category.object_description
        category.guidance = given.guidance or category.guidance
        if given.reference:
            category.reference = _reference(user, data.root, given)
        known = {info.key: info for info in category.classes}
        for key, fields in given.classes.items():
            if key not in known:
                raise HarnessError(
                    f"{user.where((name, 'classes', key))}: class {key!r} is not a class of category {name!r} "
                    f"(its classes: {', '.join(sorted(known)) or 'none'})")
            old = known[key]
            known[key] = ClassInfo(key=key, name=fields.name or old.name, description=fields.description or old.description)
        category.classes = [known[info.key] for info in category.classes]
        category.test_samples = [
            replace(s, display_name=known[s.label].name) if s.label in known else s for s in category.test_samples
        ]


def reference_file(root: Path, category: str, reference: str) -> Path:
    """Where a ``reference`` field points: absolute as given, else from `reference_base`."""
    path = Path(reference).expanduser()
    return path if path.is_absolute() else reference_base(root, category) / path


def reference_base(root: Path, category: str) -> Path:
    """Where a relative ``reference`` starts: the category's folder (folder tree), else the data root (manifest)."""
    return root / category if (root / category).is_dir() else root


def _reference(user: UserClassFile, root: Path | None, given: UserCategory) -> Path:
    """The fixed reference image: relative paths are from the category's folder under the data root."""
    if root is None and not Path(given.reference).expanduser().is_absolute():
        raise HarnessError(f"{user.where((given.name,), 'reference')}: a relative reference needs a data root")
    path = reference_file(root or Path("/"), given.name, given.reference)
    if not path.is_file():
        raise HarnessError(f"{user.where((given.name,), 'reference')}: reference image {path} of category "
                           f"{given.name!r} not found (relative paths are from DATA_ROOT/{given.name}/, or from the data "
                           "root when that folder does not exist, as for a manifest)")
    return path
