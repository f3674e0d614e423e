"""docs/plugins.md against the code: every hook documented, no hook invented, every snippet real.

The walk-through's files are checked three ways: the classifier's are the
files of examples/harness-echo byte for byte; the gate and benchmark packages
are written out from the page, pip-installed (offline) together with the
example, and used in one ``harness run``; the testing snippets are executed.
"""

from __future__ import annotations

import csv
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import hookspecs
from harness.testing import install_offline, write_tiny_benchmark

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
TEXT = DOC.read_text(encoding="utf-8")

# A line naming a file (`path`:) directly followed by a fenced block holding that file.
FILE_BLOCK = re.compile(r"^`([^`\s]+)`:\n\n```[a-z]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# Anything that reads like a hook name: register_* or harness_run_* / harness_sample_*.
HOOK_LIKE = re.compile(r"\b(register_[a-z_]+|harness_(?:run|sample)_[a-z_]+)\b")


def hookspec_signatures() -> dict[str, list[str]]:
    return {
        name: list(inspect.signature(function).parameters)
        for name, function in vars(hookspecs).items()
        if inspect.isfunction(function) and hasattr(function, "harness_spec")
    }


def documented_hooks() -> dict[str, list[str]]:
    """``### name(arg, ...)`` headings of the Hooks section."""
    section = TEXT.split("\n## Hooks\n", 1)[1].split("\n## ", 1)[0]
    found = {}
    for name, args in re.findall(r"^### ([a-z_]+)\(([^)]*)\)$", section, re.MULTILINE):
        found[name] = [a.strip() for a in args.split(",") if a.strip()]
    return found


def file_blocks() -> dict[str, str]:
    return {path: body for path, body in FILE_BLOCK.findall(TEXT)}


# -- hooks ------------------------------------------------------------------------------------


def test_every_hook_in_hookspecs_is_documented_with_its_signature():
    specs, documented = hookspec_signatures(), documented_hooks()
    assert len(specs) >= 9
    missing = sorted(set(specs) - set(documented))
    assert not missing, f"hooks missing from docs/plugins.md (add a '### name(args)' heading): {missing}"
    for name, args in specs.items():
        assert documented[name] == args, f"docs give {name}({', '.join(documented[name])}), the spec has {args}"


def test_the_docs_document_no_hook_that_does_not_exist():
    specs = hookspec_signatures()
    invented = sorted(set(documented_hooks()) - set(specs))
    assert not invented, f"docs/plugins.md documents hooks that harness/hookspecs.py lacks: {invented}"
    mentioned = sorted(set(HOOK_LIKE.findall(TEXT)) - set(specs))
    assert not mentioned, f"docs/plugins.md mentions hook-like names that are no hooks: {mentioned}"


def test_a_hook_section_says_what_to_register():
    section = TEXT.split("\n## Hooks\n", 1)[1].split("\n## ", 1)[0]
    bodies = re.split(r"^### ", section, flags=re.MULTILINE)[1:]
    for body in bodies:
        name, _, text = body.partition("\n")
        assert len(text.split()) >= 20, f"the section on {name} is too thin to act on"
        if name.startswith("register_"):
            assert "register(" in text or "add_command(" in text, f"{name}: say what to pass to register"


# -- the walk-through's files -------------------------------------------------------------------


def test_the_classifier_walk_through_is_the_example_package_verbatim():
    blocks = {p: b for p, b in file_blocks().items() if p.startswith("examples/")}
    assert set(blocks) == {
        "examples/harness-echo/pyproject.toml",
        "examples/harness-echo/harness_echo/__init__.py",
        "examples/harness-echo/harness_echo/classifier.py",
    }
    for path, body in blocks.items():
        assert (ROOT / path).read_text(encoding="utf-8") == body, f"{path} and docs/plugins.md differ"


def write_doc_packages(folder: Path) -> list[Path]:
    """The gate and benchmark packages of the page, written out as their files say."""
    projects = set()
    for path, body in file_blocks().items():
        if path.startswith("examples/"):
            continue
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
        projects.add(folder / Path(path).parts[0])
    return sorted(projects)


def write_manifest(root: Path) -> None:
    """manifest.csv for the tiny benchmark, in harness-csvbench's format."""
    rows = []
    for image in sorted(root.glob("*/*/*/*.png")):
        category, split, label = image.relative_to(root).parts[:3]
        if split == "ground_truth":
            continue
        mask = root / category / "ground_truth" / label / f"{image.stem}_mask.png"
        rows.append({"category": category, "split": split, "label": label,
                     "image": image.relative_to(root).as_posix(),
                     "mask": mask.relative_to(root).as_posix() if mask.exists() else ""})
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["category", "split", "label", "image", "mask"])
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The example and the page's two packages, pip-installed into one folder (offline)."""
    pytest.importorskip("setuptools.build_meta", reason="setuptools is needed to build the plugin packages")
    folder = tmp_path_factory.mktemp("doc-packages")
    projects = write_doc_packages(folder / "src")
    assert [p.name for p in projects] == ["harness-csvbench", "harness-meandiff"]
    return install_offline(ROOT / "examples" / "harness-echo", *projects, target=folder / "site")


def test_the_three_walk_through_packages_install_and_run_together(installed, tmp_path):
    data = write_tiny_benchmark(tmp_path / "data")
    write_manifest(data)
    env = {**os.environ, "PYTHONPATH": str(installed), "HARNESS_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "500"}
    command = [sys.executable, "-c", "from harness.cli import main; main()", "run", "--benchmark", "csv",
               "--data-root", str(data), "--gate", "meandiff", "--models", "echo",
               "--results-dir", str(tmp_path / "results"), "--run-id", "docs"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    run = json.loads((tmp_path / "results" / "docs" / "run.json").read_text())
    plugins = run["provenance"]["plugins"]
    for name, dist in (("echo", "harness-echo"), ("meandiff", "harness-meandiff"), ("csvbench", "harness-csvbench")):
        assert plugins[name] == {"distribution": dist, "version": "0.1.0"}
    assert run["status"] == "finished"
    assert run["benchmark"]["n_samples"] == 12
    assert set(run["benchmark"]["categories"]) == {"widget", "tile"}
    gate = run["provenance"]["gate"]
    assert gate["name"] == "meandiff"
    assert gate["categories"]["widget"]["threshold_source"] == "margin x highest training-normal score"
    records = [json.loads(line) for line in (tmp_path / "results" / "docs" / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 12 and {r["model"] for r in records} == {"echo"}
    assert all(r["gate"]["name"] == "meandiff" for r in records)
    # echo answers the first candidate of every flagged image; unflagged ones are "good" without a call
    called = [r for r in records if r["called"]]
    assert all(r["error"] is None for r in records)
    assert called, "the gate flagged nothing: echo was never asked"
    assert {r["predicted_label"] for r in records if not r["called"]} <= {"good"}
    assert {r["predicted_label"] for r in called} <= {"hole", "crack"}  # csvbench sorts classes: first of widget, tile


def test_the_gate_walk_through_takes_a_user_threshold(installed, tmp_path):
    data = write_tiny_benchmark(tmp_path / "data")
    write_manifest(data)
    env = {**os.environ, "PYTHONPATH": str(installed), "HARNESS_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "500"}
    command = [sys.executable, "-c", "from harness.cli import main; main()", "run", "--benchmark", "csv",
               "--data-root", str(data), "--gate", "meandiff", "--gate-threshold", "1.0", "--models", "echo",
               "--results-dir", str(tmp_path / "results"), "--run-id", "strict"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    run = json.loads((tmp_path / "results" / "strict" / "run.json").read_text())
    widget = run["provenance"]["gate"]["categories"]["widget"]
    assert widget["threshold"] == 1.0 and widget["threshold_source"].startswith("user override (calibrated: ")
    records = [json.loads(line) for line in (tmp_path / "results" / "strict" / "samples.jsonl").read_text().splitlines()]
    assert not any(r["called"] for r in records)  # no mean difference exceeds 1.0: nothing is flagged


def test_the_benchmark_walk_through_names_the_file_and_line_of_a_bad_manifest(installed, tmp_path):
    data = write_tiny_benchmark(tmp_path / "data")
    write_manifest(data)
    lines = (data / "manifest.csv").read_text().splitlines()
    lines[3] = lines[3].replace(".png", "-gone.png")
    (data / "manifest.csv").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PYTHONPATH": str(installed), "HARNESS_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "500"}
    command = [sys.executable, "-c", "from harness.cli import main; main()", "run", "--benchmark", "csv",
               "--data-root", str(data), "--models", "echo", "--results-dir", str(tmp_path / "results")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    message = " ".join(done.stderr.split())  # however the terminal wrapped it
    assert "manifest.csv line 4:" in message and "-gone.png not found" in message


def test_the_testing_snippets_run(installed, tmp_path, monkeypatch):
    """Both conformance snippets, executed as written (echo from the pip-installed example)."""
    pytest.importorskip("openai")
    from harness.testing.loopback import LoopbackServer

    monkeypatch.syspath_prepend(str(installed))
    snippets = [block for block in CODE_BLOCK.findall(TEXT) if "check_classifier(" in block]
    assert len(snippets) == 2
    try:
        echo_namespace: dict = {}
        exec(compile(snippets[0], "docs/plugins.md", "exec"), echo_namespace)
        echo_namespace["test_echo_conforms"]()
        openai_namespace: dict = {}
        exec(compile(snippets[1], "docs/plugins.md", "exec"), openai_namespace)
        with LoopbackServer() as server:
            openai_namespace["test_openai_conforms"](server, tmp_path, monkeypatch)
        assert server.requests, "the openai snippet sent nothing to the loopback server"
    finally:
        for name in [m for m in sys.modules if m == "harness_echo" or m.startswith("harness_echo.")]:
            del sys.modules[name]
