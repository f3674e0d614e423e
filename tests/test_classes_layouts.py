"""``harness classes init/check`` for every layout: manifests (CSV, JSONL), the original VisA tree, any benchmark.

The data roots are tiny synthetic ones built here (real PNG files); the
optional last test reads ../shared/data/mvtec_ad when present.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from harness import plugins
from harness.run.class_file import read_class_file
from harness_classfiles.sources import detect_benchmark
from harness.datasets import Benchmark
from harness.images import load_rgb
from harness.prompts import image_digest
from harness.run.runner import Run, RunConfig
from harness.run.sampling import reference_path
from harness.testing import plugin_of, registry_with, scripted_classifier
from harness.types import BenchmarkData, Category, ClassInfo, TextPart

from harness_datasets.release import release_for
from harness_datasets.visa_ac import original_image

from conftest import SHARED_DATA, run_cli


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Error lines are printed by a console that wraps at its width; long temporary paths must not wrap."""
    monkeypatch.setenv("COLUMNS", "1000")


def write_image(path: Path, shade: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (shade, shade, 255 - shade)).save(path, format="PNG")
    return path


# (image, category, split, label): widget has dent and scratch, gadget has crack.
ROWS = [
    *[(f"widget/train/{i}.png", "widget", "train", "good") for i in range(3)],
    ("widget/test/g0.png", "widget", "test", "good"),
    *[(f"widget/test/d{i}.png", "widget", "test", "dent") for i in range(2)],
    *[(f"widget/test/s{i}.png", "widget", "test", "scratch") for i in range(2)],
    *[(f"gadget/train/{i}.png", "gadget", "train", "good") for i in range(3)],
    ("gadget/test/g0.png", "gadget", "test", "good"),
    ("gadget/test/c0.png", "gadget", "test", "hairline_crack"),
]


def manifest_root(root: Path, kind: str = "csv", name: str = "manifest") -> Path:
    """A folder of images and the manifest listing them; returns the manifest file."""
    for n, (image, *_rest) in enumerate(ROWS):
        write_image(root / image, 20 + 10 * n)
    manifest = root / f"{name}.{kind}"
    if kind == "csv":
        manifest.write_text("image,category,split,label\n" + "".join(",".join(row) + "\n" for row in ROWS))
    else:
        keys = ("image", "category", "split", "label")
        manifest.write_text("".join(json.dumps(dict(zip(keys, row))) + "\n" for row in ROWS))
    return manifest


def flat(text: str) -> str:
    return " ".join(text.split())


# --- which benchmark by default ---------------------------------------------------------------


def test_default_detection_tells_manifests_from_folder_trees(tmp_path):
    tree = tmp_path / "tree"
    (tree / "widget" / "test" / "dent").mkdir(parents=True)
    (tree / "notes.csv").write_text("a,b\n")  # a stray CSV beside category folders: still a folder tree
    assert detect_benchmark(tree) == "folder"
    (tree / "manifest.jsonl").write_text("")
    assert detect_benchmark(tree) == "manifest"  # a file named manifest.* always wins
    only = tmp_path / "only"
    only.mkdir()
    (only / "labels.jsonl").write_text("")
    assert detect_benchmark(only) == "manifest"
    assert detect_benchmark(only / "labels.jsonl") == "manifest"
    (only / "second.csv").write_text("")
    assert detect_benchmark(only) == "folder"  # two candidates: not a manifest folder
    assert detect_benchmark(tmp_path / "missing") == "folder"


def test_a_folder_tree_is_the_default_and_keeps_its_folder_wording(tmp_path, capsys):
    root = tmp_path / "tree"
    for label in ("good", "dent"):
        write_image(root / "widget" / "test" / label / "000.png")
    write_image(root / "widget" / "train" / "good" / "000.png")
    (root / "notes.csv").write_text("not,a,manifest\n")
    code, out, _ = run_cli("classes", "init", root, capsys=capsys)
    assert code == 0 and "for benchmark 'folder'" in out
    user = read_class_file(root / "classes.toml")
    assert {c: sorted(u.classes) for c, u in user.categories.items()} == {"widget": ["dent"]}
    code, out, _ = run_cli("classes", "check", "--data-root", root, capsys=capsys)
    assert code == 0 and f"{root / 'classes.toml'}:18: warning: [widget.classes.dent] has an empty description" in out


def test_the_original_visa_tree_read_as_a_folder_tree_says_which_benchmark_to_name(tmp_path, capsys):
    root = visa_tree(tmp_path / "visa")
    code, _, err = run_cli("classes", "init", root, capsys=capsys)
    assert code == 2 and "split_csv/1cls.csv says this is the original VisA tree: pass --benchmark visa or visa-ac" in flat(err)


# --- manifests --------------------------------------------------------------------------------


def test_init_from_a_csv_manifest_folder_lists_its_categories_and_labels(tmp_path, capsys):
    manifest = manifest_root(tmp_path / "data")
    code, out, _ = run_cli("classes", "init", manifest.parent, capsys=capsys)
    written = manifest.parent / "classes.toml"
    assert code == 0 and "for benchmark 'manifest'" in out
    text = written.read_text()
    assert "A run with --benchmark manifest reads it as" in text and "shipped:" not in text
    user = read_class_file(written)
    assert {c: sorted(u.classes) for c, u in user.categories.items()} == {
        "gadget": ["hairline_crack"], "widget": ["dent", "scratch"]}
    assert user.categories["gadget"].classes["hairline_crack"].name == "hairline crack"
    code, out, _ = run_cli("classes", "check", "--data-root", manifest.parent, capsys=capsys)
    assert code == 0, "empty fields are only warnings"
    assert "0 error(s), 5 warning(s)" in out  # 2 objects, 3 descriptions
    line = text.splitlines().index('description = ""  # one sentence: what this defect looks like') + 1
    assert f"{written}:{line}: warning: [gadget.classes.hairline_crack] has an empty description" in out


def test_check_against_a_jsonl_manifest_words_problems_as_rows(tmp_path, capsys):
    manifest = manifest_root(tmp_path / "data", "jsonl", name="labels")
    mine = tmp_path / "mine.toml"
    mine.write_text('[widget]\nobject = "a widget"\n\n[widget.classes.dent]\ndescription = "a dent"\n\n'
                    '[widget.classes.scratches]\ndescription = "typo"\n\n[bracket]\nobject = "a bracket"\n')
    code, out, err = run_cli("classes", "check", mine, "--data-root", manifest, capsys=capsys)
    assert code == 2
    assert (f"{mine}:7: error: unknown class 'scratches' of 'widget': no test row of {manifest} has category "
            f"'widget' and label 'scratches' (classes found: dent, scratch)") in out
    assert (f"{mine}:10: error: unknown category 'bracket': no row of {manifest} has category 'bracket' "
            f"(categories found: gadget, widget)") in out
    assert f"{mine}:1: warning: label 'scratch' of category 'widget' in {manifest} has no [widget.classes.scratch] table" in out
    assert f"{mine}: warning: category 'gadget' of {manifest} has no [gadget] table" in out
    assert "2 error(s), 2 warning(s)" in flat(err)


def test_a_bad_manifest_is_reported_with_its_file_and_line(tmp_path, capsys):
    manifest = manifest_root(tmp_path / "data", "jsonl")
    lines = manifest.read_text().splitlines()
    lines[2] = lines[2].replace('"train"', '"training"')
    manifest.write_text("\n".join(lines) + "\n")
    for args in (("init", manifest), ("check", "--data-root", manifest)):
        code, _, err = run_cli("classes", *args, capsys=capsys)
        assert code == 2 and f"{manifest}:3: unknown split 'training' (expected train or test)" in flat(err)
    assert not (manifest.parent / "classes.toml").exists()


def fill_in(text: str) -> str:
    """The starting file with every object and description filled in, naming its table."""
    table, lines = "", []
    for line in text.splitlines():
        if line.startswith("["):
            table = line.strip("[]")
        line = line.replace('object = ""', f'object = "the object of {table}"')
        line = re.sub(r'^description = ""', f'description = "the look of {table}"', line)
        line = re.sub(r"^# reference = ", "reference = ", line)  # the example init wrote: a real training image
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_init_check_run_round_trip_on_a_manifest(tmp_path, capsys):
    manifest = manifest_root(tmp_path / "data")
    assert run_cli("classes", "init", manifest, capsys=capsys)[0] == 0
    written = manifest.parent / "classes.toml"  # where a run of this manifest looks for it
    widget = plugins.get_registry().get("benchmarks", "manifest").obj.load(manifest, ["widget"]).categories[0]
    drawn = reference_path(widget, seed=0)
    fixed = next(p for p in widget.train_images if p != drawn)  # proves the run shows the file's reference
    filled = fill_in(written.read_text())
    assert filled.count('reference = "train/0.png"') == 2, "init's example reference is a real training image"
    written.write_text(filled.replace('reference = "train/0.png"', f'reference = "train/{fixed.name}"', 1))
    code, out, _ = run_cli("classes", "check", "--data-root", manifest, capsys=capsys)
    assert (code, out.strip()) == (0, f"{written}: ok")

    classifier, plugin = scripted_classifier(lambda prompt: prompt.candidates[0].name)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    config = RunConfig(benchmark="manifest", data_root=manifest, models=["scripted"],
                       results_dir=tmp_path / "results", run_id="round-trip", n_boot=20)
    result = Run(config, registry).execute()
    assert result.run["benchmark"]["class_file"]["path"] == str(written)
    shown = "\n".join(part.text for p in classifier.prompts for m in p.messages for part in m.parts
                      if isinstance(part, TextPart))
    for table in ("widget.classes.dent", "widget.classes.scratch", "gadget.classes.hairline_crack"):
        assert f"the look of {table}" in shown
    assert "the object of widget" in shown and "the object of gadget" in shown
    references = {part.digest for p in classifier.prompts for part in p.images if part.name == "reference"}
    gadget = manifest.parent / "gadget" / "train" / "0.png"
    assert references == {image_digest(load_rgb(fixed)), image_digest(load_rgb(gadget))}, \
        "the file's references, where the seeded draw would have shown another widget image"


# --- the original VisA tree -------------------------------------------------------------------


def visa_tree(root: Path) -> Path:
    """The original VisA layout: split_csv/1cls.csv and <object>/Data/Images/{Normal,Anomaly}/, two objects."""
    rows = ["object,split,label,image,mask"]
    for category in ("candle", "pcb1"):
        for i in range(2):
            image = f"{category}/Data/Images/Normal/t{i}.JPG"  # names VisA-AC does not use
            rows.append(f"{category},train,normal,{image},")
            write_image(root / image, 30 + i)
        write_image(root / f"{category}/Data/Images/Normal/n100.JPG")
        rows.append(f"{category},test,normal,{category}/Data/Images/Normal/n100.JPG,")
        image, mask = f"{category}/Data/Images/Anomaly/a000.JPG", f"{category}/Data/Masks/Anomaly/a000.png"
        write_image(root / image, 200)
        write_image(root / mask, 255)
        rows.append(f"{category},test,anomaly,{image},{mask}")
    (root / "split_csv").mkdir(parents=True)
    (root / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    return root


def test_visa_starts_from_its_shipped_text_and_checks_against_its_classes(tmp_path, capsys):
    root = visa_tree(tmp_path / "visa")
    code, out, _ = run_cli("classes", "init", root, "--benchmark", "visa", capsys=capsys)
    written = root / "classes.toml"
    assert code == 0 and str(written) in out
    text = written.read_text()
    assert "Benchmark 'visa' ships its own descriptions" in text and "This file only overrides them" in text
    assert '# shipped: "any visible defect; the original VisA release does not name defect types"' in text
    user = read_class_file(written)
    assert {c: sorted(u.classes) for c, u in user.categories.items()} == {"candle": ["anomaly"], "pcb1": ["anomaly"]}
    assert all(not c.object and not k.description for c in user.categories.values() for k in c.classes.values())
    code, out, _ = run_cli("classes", "check", "--data-root", root, "--benchmark", "visa", capsys=capsys)
    assert (code, out.strip()) == (0, f"{written}: ok"), "empty fields keep the shipped text: nothing to warn about"

    written.write_text(text + '\n[candle.classes.wax]\ndescription = "wax drips"\n')
    code, out, _ = run_cli("classes", "check", "--data-root", root, "--benchmark", "visa", capsys=capsys)
    line = len(text.splitlines()) + 2
    assert code == 2 and (f"{written}:{line}: error: unknown class 'wax' of 'candle': benchmark 'visa' has no "
                          "class 'wax' in category 'candle' (classes found: anomaly)") in out


def test_visa_ac_on_a_partial_original_tree_lists_the_released_classes_and_says_it_is_partial(tmp_path, capsys):
    release = release_for("visa-ac")
    root = visa_tree(tmp_path / "visa")  # its split file gives the training normals
    for folder, files in release.files["candle"].items():
        for file in files:
            write_image(original_image(root, "candle", folder, file))
    code, out, _ = run_cli("classes", "init", root, "-b", "visa-ac", "-o", tmp_path / "mine.toml", capsys=capsys)
    assert code == 0
    assert "note: " in out and "only part of benchmark 'visa-ac'" in out and "--allow-partial" in out
    user = read_class_file(tmp_path / "mine.toml")
    assert list(user.categories) == ["candle"]
    assert sorted(user.categories["candle"].classes) == sorted(f for f in release.files["candle"] if f != "good")
    code, out, _ = run_cli("classes", "check", tmp_path / "mine.toml", "--data-root", root, "-b", "visa-ac", capsys=capsys)
    assert code == 0 and out.strip().endswith(f"{tmp_path / 'mine.toml'}: ok")


# --- any benchmark a plugin registers ---------------------------------------------------------


class ShelfBenchmark(Benchmark):
    """A third party's benchmark: one category, one class it describes and one it does not."""

    name = "shelf"
    description = "a test benchmark"

    def load(self, root, categories=None):
        shelf = Category("shelf", [ClassInfo("bent", "bent", "a bent edge"), ClassInfo("rust", "rust")], [], [],
                         object_description="a steel shelf")
        return BenchmarkData(self.name, Path(root), [shelf])


def test_a_plugin_benchmark_is_asked_for_its_classes(tmp_path, capsys):
    with registry_with(("shelf-plugin", plugin_of(benchmarks=[ShelfBenchmark()]))):
        code, _, _ = run_cli("classes", "init", tmp_path, "-b", "shelf", capsys=capsys)
        assert code == 0
        code, out, _ = run_cli("classes", "check", "--data-root", tmp_path, "-b", "shelf", capsys=capsys)
        written = tmp_path / "classes.toml"
        # Only 'rust' has no text at all; the object and 'bent' are the benchmark's own.
        assert code == 0 and out.splitlines()[0].endswith("warning: [shelf.classes.rust] has an empty description")
        assert "0 error(s), 1 warning(s)" in out
        code, _, err = run_cli("classes", "check", "--data-root", tmp_path, "-b", "shelff", capsys=capsys)
        assert code == 2 and "unknown benchmark 'shelff'" in flat(err)
    assert written.is_file()


# --- real data (optional) ---------------------------------------------------------------------


def test_the_real_mvtec_ad_folder_starts_from_the_shipped_descriptions(tmp_path, capsys):
    root = SHARED_DATA / "mvtec_ad"
    if not (root / "bottle" / "test").is_dir():
        pytest.skip(f"{root} is absent")
    code, out, _ = run_cli("classes", "init", root, "-b", "mvtec-ad", "-o", tmp_path / "ad.toml", capsys=capsys)
    assert code == 0
    user = read_class_file(tmp_path / "ad.toml")
    assert sorted(user.categories["bottle"].classes) == ["broken_large", "broken_small", "contamination"]
    assert "# shipped: " in (tmp_path / "ad.toml").read_text()
    code, out, _ = run_cli("classes", "check", tmp_path / "ad.toml", "--data-root", root, "-b", "mvtec-ad", capsys=capsys)
    assert code == 0 and out.strip().endswith(f"{tmp_path / 'ad.toml'}: ok")


def test_a_manifests_relative_reference_starts_at_the_manifests_folder_when_no_category_folder_exists(tmp_path, capsys):
    root = tmp_path / "flat"
    rows = [("img/a.png", "widget", "train", "good"), ("img/b.png", "widget", "train", "good"),
            ("img/c.png", "widget", "test", "good"), ("img/d.png", "widget", "test", "dent")]
    for n, (image, *_rest) in enumerate(rows):
        write_image(root / image, 40 + 20 * n)
    manifest = root / "manifest.csv"
    manifest.write_text("image,category,split,label\n" + "".join(",".join(r) + "\n" for r in rows))
    assert run_cli("classes", "init", manifest, capsys=capsys)[0] == 0
    written = (root / "classes.toml").read_text()
    assert '# reference = "img/a.png"' in written  # from the manifest's folder: there is no flat/widget/
    (root / "classes.toml").write_text('[widget]\nobject = "a widget"\nreference = "img/b.png"\n')
    classifier, plugin = scripted_classifier(lambda prompt: prompt.candidates[0].name)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    config = RunConfig(benchmark="manifest", data_root=manifest, models=["scripted"],
                       results_dir=tmp_path / "results", run_id="flat", n_boot=20)
    Run(config, registry).execute()
    references = {part.digest for p in classifier.prompts for part in p.images if part.name == "reference"}
    assert references == {image_digest(load_rgb(root / "img" / "b.png"))}
