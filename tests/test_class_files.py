"""The class-description files shown to models as candidate lists.

Each file maps category -> {object, guidance, classes: {folder_class: {name, description}}}. The
structure is checked always; the exact (category, folder_class, display name) set is checked
against the benchmark manifests in ../shared/data/ac when that data is present.
"""

from __future__ import annotations

import csv
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

AC_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ac"

# class-description file -> manifest of the benchmark it describes
CLASS_FILES = {
    "mvtec-ad.toml": "mvtec_ad_manifest.csv",
    "mvtec-ac.toml": "mvtec_ac_manifest.csv",
    "visa-ac.toml": "visa_ac_manifest.csv",
}
GOOD = "good"


def load(name: str) -> dict:
    resource = files("harness_prompts") / "classes" / name
    return tomllib.loads(resource.read_text(encoding="utf-8"))


def nonempty(value: object) -> bool:
    return isinstance(value, str) and value.strip() != ""


@pytest.mark.parametrize("name", sorted(CLASS_FILES))
def test_structure(name: str) -> None:
    data = load(name)
    assert data, f"{name}: no categories"
    for category, spec in data.items():
        assert isinstance(spec, dict), f"{name}: [{category}] is not a table"
        assert nonempty(spec.get("object")), f"{name}: [{category}] needs a non-empty 'object'"
        if "guidance" in spec:
            assert nonempty(spec["guidance"]), f"{name}: [{category}] has an empty 'guidance'"
        classes = spec.get("classes")
        assert isinstance(classes, dict) and classes, f"{name}: [{category}] has no classes"
        assert GOOD not in classes, f"{name}: [{category}] lists '{GOOD}', which is handled separately"
        names = []
        for key, info in classes.items():
            where = f"{name}: [{category}.classes.{key}]"
            assert nonempty(info.get("name")), f"{where} needs a non-empty 'name'"
            assert nonempty(info.get("description")), f"{where} needs a non-empty 'description'"
            assert info["name"] == info["name"].strip(), f"{where}: name has stray whitespace"
            names.append(info["name"])
        # The model answers with a display name, so names must be unambiguous within a category.
        assert len(names) == len(set(names)), f"{name}: [{category}] repeats a display name"


def manifest_pairs(manifest: Path) -> set[tuple[str, str, str]]:
    with manifest.open(newline="", encoding="utf-8") as f:
        return {
            (row["category"], row["folder_class"], row["class_name"])
            for row in csv.DictReader(f)
            if row["folder_class"] != GOOD
        }


def file_pairs(data: dict) -> set[tuple[str, str, str]]:
    return {
        (category, key, info["name"])
        for category, spec in data.items()
        for key, info in spec["classes"].items()
    }


@pytest.mark.parametrize("name", sorted(CLASS_FILES))
def test_matches_manifest(name: str) -> None:
    manifest = AC_DATA / CLASS_FILES[name]
    if not manifest.is_file():
        pytest.skip(f"benchmark manifest not available at {manifest} (shared data absent)")
    expected = manifest_pairs(manifest)
    actual = file_pairs(load(name))
    missing = sorted(expected - actual)
    extra = sorted(actual - expected)
    assert not missing and not extra, (
        f"{name} vs {manifest.name}: missing (category, folder, name) {missing}; "
        f"not in manifest {extra}"
    )
