"""The prompt memo's validity key: every input it names invalidates it, and moving code does not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import PIL
import pytest
from PIL import Image

from harness.run import prompt_memo
from harness.gates import FittedGate, OracleGate, PassThroughGate
from harness.options import Options
from harness.prompts import template_from_text
from harness.types import Category, ClassInfo, GateResult, Sample

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = '[[user]]\n{{ image("query") }} Which of {{ classes | map(attribute="name") | join(", ") }}?'


class _LevelGate(PassThroughGate):
    """A pixel-blind gate with an option, to show that its options are part of the key."""

    name = "level"

    class Options(Options):
        level: int = 0


class _FittedWithInfo(FittedGate):
    def __init__(self, info):
        self._info = info

    def score(self, sample, image):
        return GateResult(score=1.0, flagged=True, threshold=None)

    def info(self):
        return dict(self._info)


def _files(root: Path) -> dict[str, Path]:
    """A reference image and one support sample (image and mask), as real PNG files."""
    root.mkdir(parents=True, exist_ok=True)
    paths = {"reference": root / "ref.png", "support": root / "crack.png", "mask": root / "crack_mask.png"}
    Image.new("RGB", (8, 8), (90, 90, 90)).save(paths["reference"])
    Image.new("RGB", (8, 8), (20, 20, 20)).save(paths["support"])
    Image.new("L", (8, 8), 255).save(paths["mask"])
    return paths


def _inputs(files: dict[str, Path], **change) -> dict:
    """`memo_inputs` of a small category, with ``change`` replacing one argument."""
    crack, dent = ClassInfo("crack", "crack", "a thin line"), ClassInfo("dent", "dent", "a hollow")
    category = Category("widget", [crack, dent], [], [], object_description="a widget", guidance="look closely")
    support = [Sample("widget/crack/0", "widget", files["support"], "crack.png", "crack", "crack", files["mask"])]
    gate = PassThroughGate()
    arguments = {
        "gate": gate, "fitted": gate.fit(category), "template": template_from_text("t", TEMPLATE),
        "category": category, "orders": [[crack, dent]], "limits": [None],
        "reference": files["reference"], "support": support,
    }
    arguments.update(change)
    return prompt_memo.memo_inputs(**arguments)


def _key(files, **change) -> str:
    return prompt_memo.validity_key(_inputs(files, **change))


def _rewrite(path: Path) -> None:
    """Write the same pixels again: the file's identity (its ctime at least) changes, its content does not."""
    with Image.open(path) as image:
        image.load()
        image.save(path)


def test_a_change_to_each_input_changes_the_validity_key(tmp_path, monkeypatch):
    files = _files(tmp_path / "files")
    base = _key(files)
    assert base == _key(files), "the key is not a function of its inputs"
    crack, dent = ClassInfo("crack", "crack", "a thin line"), ClassInfo("dent", "dent", "a hollow")
    described = Category("widget", [ClassInfo("crack", "crack", "a hairline"), dent], [], [],
                         object_description="a widget", guidance="look closely")
    changes = {
        "gate": [
            {"gate": OracleGate()},
            {"gate": _LevelGate(_LevelGate.Options(level=1))},
            {"fitted": _FittedWithInfo({"threshold": 0.7})},
        ],
        "template": [{"template": template_from_text("t", TEMPLATE + " Answer in one word.")},
                     {"template": template_from_text("other", TEMPLATE)}],
        "category": [{"category": described}],  # a class file's description
        "orders": [{"orders": [[dent, crack]]}, {"orders": [[crack, dent], [dent, crack]]}],
        "limits": [{"limits": [1]}],
        "reference": [{"reference": files["support"]}, {"reference": None}],
        "support": [{"support": []}],
    }
    keys = {}
    for name, variants in changes.items():
        for change in variants:
            keys[f"{name} {sorted(change)}"] = _key(files, **change)
    # Inputs that are not arguments: the preparation version, the harness and library versions.
    with monkeypatch.context() as patch:
        patch.setattr(prompt_memo, "PREPARATION_VERSION", prompt_memo.PREPARATION_VERSION + 1)
        keys["preparation"] = _key(files)
    with monkeypatch.context() as patch:
        patch.setattr(prompt_memo, "__version__", "999.0")
        keys["harness"] = _key(files)
    with monkeypatch.context() as patch:
        patch.setattr(PIL, "__version__", "0.0.1")
        keys["libraries"] = _key(files)
    # The files: a support file or the reference rewritten with the same pixels is another file.
    _rewrite(files["mask"])
    keys["support (mask rewritten)"] = _key(files)
    _rewrite(files["reference"])
    keys["reference (rewritten)"] = _key(files)

    covered = {name.split(" ")[0] for name in keys}
    assert covered == set(_inputs(files)), "every input of memo_inputs must be shown to matter here"
    unchanged = [name for name, key in keys.items() if key == base]
    assert not unchanged, f"these changes kept the memo valid: {unchanged}"
    assert len(set(keys.values())) == len(keys), "two different changes gave the same key"


_PRINT_KEY = """
import json, sys
from pathlib import Path
import harness
sys.path.insert(0, sys.argv[2])
import test_prompt_memo_key as t
files = {k: Path(v) for k, v in json.loads(sys.argv[1]).items()}
print(json.dumps([harness.__file__, t._key(files)]))
"""


def _key_in_process_of(tree: Path, files: dict[str, Path]) -> tuple[str, str]:
    """(harness's file, validity key) computed by a Python whose harness is the one in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", _PRINT_KEY, json.dumps({k: str(v) for k, v in files.items()}), str(Path(__file__).parent)],
        env=env, cwd=tree.parent, capture_output=True, text=True, timeout=120,  # cwd: not the checkout
    )
    assert done.returncode == 0, done.stderr
    where, key = json.loads(done.stdout.strip().splitlines()[-1])
    return where, key


def test_moving_or_editing_code_keeps_the_memo(tmp_path):
    # The old memo hashed the source of the runner, prompts, images and others: any edit, even a
    # moved function, threw the memo away, and code could not move out of those files.
    files = _files(tmp_path / "files")
    moved = tmp_path / "moved"
    shutil.copytree(REPO / "harness", moved / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("run/runner", "run/stages", "run/plan", "prompts", "images", "visual", "gates", "run/prompt_memo", "run/prompt_record"):
        source = moved / "harness" / f"{name}.py"
        source.write_text(source.read_text() + "\n\ndef _moved_here_from_elsewhere():\n    return None\n")
    (moved / "harness" / "preparation_helpers.py").write_text('"""Code moved out of the runner."""\n')

    here, key_here = _key_in_process_of(REPO, files)
    there, key_there = _key_in_process_of(moved, files)
    assert Path(here).parent == REPO / "harness" and Path(there).parent == moved / "harness"
    assert key_here == key_there == _key(files)


@pytest.mark.parametrize("gate", [PassThroughGate(), OracleGate()])
def test_the_key_does_not_read_source_files(tmp_path, monkeypatch, gate):
    # No source file is opened while the key is computed: only the sample's, reference's and support's files.
    files = _files(tmp_path / "files")
    opened = []
    real_read_bytes, real_read_text = Path.read_bytes, Path.read_text
    monkeypatch.setattr(Path, "read_bytes", lambda self: opened.append(self) or real_read_bytes(self))
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: opened.append(self) or real_read_text(self, *a, **k))
    _key(files, gate=gate)
    assert not [p for p in opened if p.suffix == ".py"]


def test_a_new_preparation_version_prepares_every_sample_again(tmp_path, monkeypatch):
    # The version is wired into real runs: after a bump, a re-run decodes every image again
    # (and, preparation being unchanged in fact, finds every answer in the response cache).
    import harness.run.stages
    from harness import plugins
    from harness.run.runner import Run, RunConfig
    from harness.testing import scripted_classifier
    from harness_datasets import demo

    tree = tmp_path / "tree"
    demo.write_demo_tree(tree, seed=0, counts=demo.DemoCounts(train=2, good=1, per_defect=1))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    sent, read = [], []
    _, plugin = scripted_classifier(lambda p: sent.append(p.request_hash) or p.candidates[0].name)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    real_load = harness.run.stages.load_rgb
    monkeypatch.setattr(harness.run.stages, "load_rgb", lambda path: read.append(path) or real_load(path))

    def run(run_id):
        sent.clear(), read.clear()
        config = RunConfig(benchmark="folder", data_root=tree, gate="none", models=["scripted"], results_dir=tmp_path / "r",
                           run_id=run_id, n_boot=20, model_options={"scripted": {"cache": True}})
        result = Run(config, registry).execute()
        return {tree / r["image"] for r in result.records}

    images = run("first")
    assert images <= set(read) and sent
    run("remembered")
    assert not images & set(read) and not sent  # the memo answered: no image decoded
    monkeypatch.setattr(prompt_memo, "PREPARATION_VERSION", prompt_memo.PREPARATION_VERSION + 1)
    run("bumped")
    assert images <= set(read), "a new preparation version reused the memo"
    assert not sent  # the same prompts were prepared: every answer came from the cache
