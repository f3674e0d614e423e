"""run.json's header is a function of explicit inputs (harness.run.run_header), not of the running object."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from harness.gates import PassThroughGate
from harness.prompts import template_from_text
from harness.run.plan import RunPlan
from harness.run.run_config import RunConfig
from harness.run.run_header import HeaderInputs, header_inputs, run_header
from harness.types import BenchmarkData, Category, ClassInfo, Sample


def _data(root: Path) -> BenchmarkData:
    samples = [Sample(f"w/crack/{i}", "w", root / f"{i}.png", f"w/test/crack/{i}.png", "crack", "crack") for i in range(2)]
    category = Category("w", [ClassInfo("crack", "crack"), ClassInfo("dent", "dent")], [root / "t.png"], samples)
    return BenchmarkData("mini", root, [category])


def _inputs(config: RunConfig, data: BenchmarkData) -> HeaderInputs:
    plan = RunPlan(
        config=config, benchmark=None, gate=PassThroughGate(), gate_mode="none",
        template=template_from_text("t", "[[user]]\nwhich?"), template_plugin="harness-prompts", classifiers=(),
        prices={"m": None}, policy=None, costs=None, writers={}, analyses=(),
        plugins={"harness-x": ("harness-x-dist", "1.2")}, data=data, class_file=None,
        support={"w": [data.categories[0].test_samples[0]]},
    )
    return header_inputs(plan)


def test_the_header_is_made_from_its_inputs_alone(tmp_path):
    data = _data(tmp_path)
    config = RunConfig(benchmark="mini", models=["m"], data_root=tmp_path, seed=7)
    inputs = _inputs(config, data)
    with pytest.raises(dataclasses.FrozenInstanceError):
        inputs.gate = {}  # resolved once: nothing changes it afterwards
    header = run_header(inputs, "r1", data, environment={"python": "3"})
    assert header["run_id"] == "r1" and header["status"] == "running" and header["config"] == config.to_json()
    assert header["benchmark"]["support"] == {"w": ["w/crack/0"]}
    assert header["benchmark"]["data_root"] == str(tmp_path) and header["benchmark"]["n_samples"] == 2
    provenance = header["provenance"]
    assert provenance["python"] == "3" and provenance["seed"] == 7
    assert provenance["plugins"] == {"harness-x": {"distribution": "harness-x-dist", "version": "1.2"}}
    assert provenance["prompt_template"] == {"name": "t", "hash": inputs.template["hash"], "plugin": "harness-prompts"}
    assert provenance["gate"] == {**PassThroughGate().describe(), "categories": {}}
    assert provenance["prices_usd_per_million_tokens"] == {"m": None}
    assert "class_order" not in header  # one repeat: no orders to record


def test_repeats_record_each_categorys_orders(tmp_path):
    data = _data(tmp_path)
    config = RunConfig(benchmark="mini", models=["m"], class_order="shuffle", repeats=3, seed=1)
    header = run_header(_inputs(config, data), "r2", data, environment={})
    orders = header["class_order"]["orders"]["w"]
    assert len(orders) == 3 and orders[0] == ["crack", "dent", "good"]  # repeat 0 is the given order
    assert all(sorted(order) == ["crack", "dent", "good"] for order in orders)
    assert header["class_order"]["models"] == {} and header["benchmark"]["data_root"] is None


def test_the_header_module_names_no_runner_not_even_for_types():
    # It used to import harness.run.runner under TYPE_CHECKING to type its argument: an import cycle.
    import harness.run.run_header

    tree = ast.parse(Path(harness.run.run_header.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "harness.run.runner" not in imported and "harness.run.run_config" in imported
