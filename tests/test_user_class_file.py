"""A user's class file (harness/run/class_file.py): their descriptions reach the rendered prompt, run.json and the leaderboard."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from harness.scoring import leaderboard
from harness import plugins
from harness.run.class_file import apply_class_file, read_class_file
from harness.errors import HarnessError
from harness.images import load_rgb
from harness.prompts import image_digest
from harness.results import load_run
from harness.run.runner import Run, RunConfig
from harness.run.sampling import reference_path
from harness.testing import scripted_classifier
from harness.types import TextPart

from harness_datasets.benchmarks import FolderBenchmark, MVTecADBenchmark
from harness_datasets.classes import parse_class_file

from conftest import run_cli

CLASS_FILE = """\
# the user's own descriptions
[widget]
object = "a matte grey injection-moulded widget with four screw holes"
guidance = "Mould flash along the parting line is normal."

[widget.classes.dent]
name = "impact dent"
description = "a shallow round depression that catches the light at its rim"

[widget.classes.scratch]
name = "hairline scratch"
description = "a thin bright line crossing the flat face"
"""


def write_image(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (shade, shade, 255 - shade)).save(path)


@pytest.fixture
def widget_root(tmp_path) -> Path:
    """A folder tree: widget with 3 training normals, 1 good, 2 dent and 2 scratch test images (with masks)."""
    root = tmp_path / "data"
    for i in range(3):
        write_image(root / "widget" / "train" / "good" / f"{i:03d}.png", 20 + 40 * i)
    for label, count in {"good": 1, "dent": 2, "scratch": 2}.items():
        for i in range(count):
            write_image(root / "widget" / "test" / label / f"{i:03d}.png", 150 + 10 * i)
            if label != "good":
                mask = Image.new("L", (16, 16), 0)
                mask.paste(255, (4, 4, 10, 10))
                (root / "widget" / "ground_truth" / label).mkdir(parents=True, exist_ok=True)
                mask.save(root / "widget" / "ground_truth" / label / f"{i:03d}_mask.png")
    return root


def scripted():
    """A classifier answering with its first candidate, and a registry holding it as model ``scripted``."""
    classifier, plugin = scripted_classifier(lambda prompt: prompt.candidates[0].name)
    return classifier, plugins.load_registry(extra_plugins=[("scripted-test", plugin)])


def run_folder(tmp_path: Path, root: Path, run_id: str, **config):
    classifier, registry = scripted()
    run_config = RunConfig(benchmark="folder", data_root=root, models=["scripted"], results_dir=tmp_path / "results",
                           run_id=run_id, n_boot=50, **config)
    return Run(run_config, registry).execute(), classifier


def prompt_texts(classifier) -> list[str]:
    return ["\n".join(part.text for m in p.messages for part in m.parts if isinstance(part, TextPart))
            for p in classifier.prompts]


def test_folder_run_shows_the_class_file_in_the_rendered_prompt(tmp_path, widget_root):
    (widget_root / "classes.toml").write_text(CLASS_FILE)
    result, classifier = run_folder(tmp_path, widget_root, "with-classes")
    texts = prompt_texts(classifier)
    assert len(texts) == 4, "every anomalous test image is asked once (oracle gate)"
    for text in texts:
        assert "a matte grey injection-moulded widget with four screw holes" in text
        assert "Mould flash along the parting line is normal." in text
        for words in ("impact dent", "a shallow round depression that catches the light at its rim",
                      "hairline scratch", "a thin bright line crossing the flat face"):
            assert words in text
    assert {r["predicted_label"] for r in result.records if r.get("called")} == {"dent"}, "display names map back to keys"
    recorded = result.run["benchmark"]["class_file"]
    assert recorded == {"path": str(widget_root / "classes.toml"),
                        "sha256": hashlib.sha256(CLASS_FILE.encode()).hexdigest()}


def test_without_a_class_file_names_come_from_folders(tmp_path, widget_root):
    result, classifier = run_folder(tmp_path, widget_root, "plain")
    assert result.run["benchmark"]["class_file"] is None
    assert all("impact dent" not in text and "dent" in text and "hairline" not in text for text in prompt_texts(classifier))


def test_the_classes_option_wins_and_resume_keeps_it(tmp_path, widget_root):
    (widget_root / "classes.toml").write_text(CLASS_FILE)
    mine = tmp_path / "mine.toml"
    mine.write_text(CLASS_FILE.replace("impact dent", "crater"))
    result, classifier = run_folder(tmp_path, widget_root, "option", classes=mine)
    assert all("crater" in text and "impact dent" not in text for text in prompt_texts(classifier))
    assert RunConfig.from_json(result.run["config"], tmp_path, "option").classes == mine
    run, _ = load_run(result.run_dir)
    assert run["benchmark"]["class_file"]["path"] == str(mine)


def test_runs_with_different_class_files_never_share_a_table(tmp_path, widget_root):
    run_folder(tmp_path, widget_root, "plain")
    mine = tmp_path / "mine.toml"
    mine.write_text(CLASS_FILE)
    run_folder(tmp_path, widget_root, "a", classes=mine)
    other = tmp_path / "other.toml"
    other.write_text(CLASS_FILE.replace("hairline", "deep"))
    run_folder(tmp_path, widget_root, "b", classes=other)
    tables = leaderboard.group(leaderboard.collect([tmp_path / "results"]))
    assert len(tables) == 3
    assert sorted(row.run_id for rows in tables.values() for row in rows) == ["a", "b", "plain"]


def test_what_the_file_leaves_out_keeps_the_shipped_text(tmp_path, widget_root):
    shipped = parse_class_file("shipped", {"widget": {
        "object": "shipped object", "guidance": "shipped guidance",
        "classes": {"dent": {"name": "dent", "description": "shipped dent"},
                    "scratch": {"name": "scratch", "description": "shipped scratch"}}}})
    data = MVTecADBenchmark(class_file=shipped).load(widget_root)
    partial = tmp_path / "partial.toml"
    partial.write_text('[widget]\nguidance = "mine"\n[widget.classes.dent]\ndescription = "my dent"\n')
    apply_class_file(data, read_class_file(partial))
    (widget,) = data.categories
    assert (widget.object_description, widget.guidance) == ("shipped object", "mine")
    assert [(c.key, c.name, c.description) for c in widget.classes] == [
        ("dent", "dent", "my dent"), ("scratch", "scratch", "shipped scratch")]


def test_an_unknown_class_is_an_error_naming_file_and_line(tmp_path, widget_root):
    bad = tmp_path / "bad.toml"
    bad.write_text(CLASS_FILE + '\n[widget.classes.scratchh]\nname = "typo"\n')
    data = FolderBenchmark().load(widget_root)
    with pytest.raises(HarnessError, match=rf"{bad}:14: class 'scratchh' is not a class of category 'widget'"):
        apply_class_file(data, read_class_file(bad))


@pytest.mark.parametrize("text, words", [
    ('[widget]\nobject = 3\n', ["bad.toml:2", "'object' must be a string"]),
    ('[widget]\ncolour = "red"\n', ["bad.toml:2", "unknown field(s) colour"]),
    ('[widget.classes.dent]\ntitle = "x"\n', ["bad.toml:2", "unknown field(s) title"]),
    ('[widget\n', ["bad.toml is not valid TOML", "line 1"]),
])
def test_malformed_class_files_name_file_and_line(tmp_path, text, words):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(HarnessError) as error:
        read_class_file(bad)
    for word in words:
        assert word in str(error.value)


def fix_an_undrawn_reference(root: Path) -> Path:
    """Write the class file with a reference the seeded draw would not choose; return that image."""
    drawn = reference_path(FolderBenchmark().load(root).categories[0], seed=0)
    fixed = next(p for p in sorted((root / "widget" / "train" / "good").iterdir()) if p != drawn)
    (root / "classes.toml").write_text(CLASS_FILE.replace(
        'guidance = "Mould', f'reference = "train/good/{fixed.name}"\nguidance = "Mould'))
    return fixed


def test_a_fixed_reference_is_shown_beside_every_query(tmp_path, widget_root):
    fixed = fix_an_undrawn_reference(widget_root)
    _, classifier = run_folder(tmp_path, widget_root, "fixed")
    references = {part.digest for p in classifier.prompts for part in p.images if part.name == "reference"}
    assert references == {image_digest(load_rgb(fixed))}, "the seeded draw would have shown another image"


def test_a_missing_reference_stops_before_any_model_call(tmp_path, widget_root):
    (widget_root / "classes.toml").write_text(CLASS_FILE.replace(
        'guidance = "Mould', 'reference = "train/good/missing.png"\nguidance = "Mould'))
    with pytest.raises(HarnessError, match=r"classes.toml:4: reference image .*missing.png of category 'widget' not found"):
        run_folder(tmp_path, widget_root, "missing")
    assert not (tmp_path / "results" / "missing").exists()


# --- harness classes init / check ------------------------------------------------------------


def test_init_lists_every_category_and_class_and_check_reports_only_warnings(tmp_path, widget_root, capsys):
    code, out, _ = run_cli("classes", "init", widget_root, capsys=capsys)
    written = widget_root / "classes.toml"
    assert code == 0 and str(written) in out
    user = read_class_file(written)
    assert {c: sorted(u.classes) for c, u in user.categories.items()} == {"widget": ["dent", "scratch"]}
    assert user.categories["widget"].classes["dent"].name == "dent"
    code, _, err = run_cli("classes", "init", widget_root, capsys=capsys)
    assert code == 2 and "already exists; pass --force" in err
    code, out, _ = run_cli("classes", "check", "--data-root", widget_root, capsys=capsys)
    assert code == 0, "empty fields are warnings"
    assert f"{written}:9: warning: [widget] has an empty object description" in out
    assert f"{written}:18: warning: [widget.classes.dent] has an empty description" in out
    assert "0 error(s), 3 warning(s)" in out


def test_check_reports_unknown_categories_classes_and_unlisted_folders_with_lines(tmp_path, widget_root, capsys):
    mine = tmp_path / "mine.toml"
    mine.write_text(CLASS_FILE.replace("[widget.classes.scratch]", "[widget.classes.scratches]")
                    + '\n[gadget]\nobject = "a gadget"\n')
    (widget_root / "bracket" / "test" / "good").mkdir(parents=True)
    code, out, err = run_cli("classes", "check", mine, "--data-root", widget_root, capsys=capsys)
    assert code == 2
    assert f"{mine}:10: error: unknown class 'scratches' of 'widget'" in out
    assert f"{mine}:14: error: unknown category 'gadget'" in out
    assert f"{mine}:2: warning: class folder {widget_root / 'widget' / 'test' / 'scratch'} has no" in out
    assert f"{mine}: warning: category folder {widget_root / 'bracket'} has no [bracket] table" in out
    assert "2 error(s), 2 warning(s)" in err


def test_a_complete_class_file_checks_clean(tmp_path, widget_root, capsys):
    (widget_root / "classes.toml").write_text(CLASS_FILE)
    code, out, _ = run_cli("classes", "check", "--data-root", widget_root, capsys=capsys)
    assert (code, out.strip()) == (0, f"{widget_root / 'classes.toml'}: ok")


def test_resume_refuses_a_changed_class_file(tmp_path, widget_root):
    (widget_root / "classes.toml").write_text(CLASS_FILE)
    run_folder(tmp_path, widget_root, "resumed")
    (widget_root / "classes.toml").write_text(CLASS_FILE.replace("impact dent", "crater"))
    classifier, registry = scripted()
    run, _ = load_run(tmp_path / "results" / "resumed")
    config = RunConfig.from_json(run["config"], tmp_path / "results", "resumed")
    with pytest.raises(HarnessError, match="cannot resume resumed: its class file had sha256 .* now"):
        Run(config, registry).execute(resume=True)
    assert not classifier.prompts


def test_the_run_config_key_classes_reaches_run_json(tmp_path, widget_root, capsys):
    mine = tmp_path / "mine.toml"
    mine.write_text(CLASS_FILE)
    config = tmp_path / "run.toml"
    config.write_text(f'benchmark = "folder"\nmodels = "random"\nclasses = "{mine}"\nrun-id = "cfg"\n'
                      f'results-dir = "{tmp_path / "results"}"\ndata-root = "{widget_root}"\n')
    code, out, err = run_cli("run", "--config", config, capsys=capsys)
    assert code == 0, out + err
    run, _ = load_run(tmp_path / "results" / "cfg")
    assert run["config"]["classes"] == str(mine)
    assert run["benchmark"]["class_file"]["sha256"] == hashlib.sha256(CLASS_FILE.encode()).hexdigest()


def test_compare_notes_runs_shown_different_class_files(tmp_path, widget_root):
    from harness_compare.paired import check_comparable

    plain, _ = run_folder(tmp_path, widget_root, "plain")
    mine = tmp_path / "mine.toml"
    mine.write_text(CLASS_FILE)
    described, _ = run_folder(tmp_path, widget_root, "described", classes=mine)
    notes = check_comparable(plain, described, allow_different_manifests=False)
    digest = hashlib.sha256(CLASS_FILE.encode()).hexdigest()[:12]
    assert f"different class files (plain: none; described: {digest})" in " ".join(notes)


def test_the_report_shows_the_fixed_reference_the_run_used(tmp_path, widget_root):
    from harness_report.gallery import _Pictures

    fixed = fix_an_undrawn_reference(widget_root)
    result, _ = run_folder(tmp_path, widget_root, "fixed")
    pictures = _Pictures(result, None)
    assert pictures.references == {"widget": fixed}, "the seeded draw would have shown another image"
    assert not pictures.notes
