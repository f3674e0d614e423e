"""Policies, cost matrices and class files reach the harness through hooks, by name, like any plugin kind.

A third-party plugin (built with `harness.testing.plugin_of`) registers its own
files; ``harness run`` / ``harness act`` find them by name, a benchmark reads the
class file of its name from the registry (so a plugin can reword a shipped
benchmark), ``harness plugins`` shows who registered what, and unknown names
list only the names of the right kind.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness import plugins
from harness.errors import HarnessError, PluginError
from harness.testing import plugin_of, scripted_classifier
from harness.types import TextPart

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]

# Every demo class a critical defect to scrap; a failed answer is scrapped too.
STRICT_POLICY = """
    benchmark = "demo"
    description = "strict test policy: everything is scrapped"
    [errors]
    action = "scrap"
    [default]
    severity = "critical"
"""

FLAT_COSTS = """
    unit = "points"
    [cost.pass]
    scrap = 1
    [cost.scrap]
    pass = 7
"""

MARKER = "a test-only widget described by the plugin's class file"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def demo_class_file_with_marker(path: Path) -> Path:
    """The shipped demo class file with the ``label`` category's object description replaced by MARKER."""
    text = (ROOT / "prompts" / "classes" / "demo.toml").read_text(encoding="utf-8")
    lines = text.splitlines()
    start = lines.index("[label]")
    at = next(i for i in range(start, len(lines)) if lines[i].startswith("object = "))
    lines[at] = f'object = "{MARKER}"'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_demo(tmp_path, capsys, *extra, run_id="r"):
    return run_cli("run", "--benchmark", "demo", "--models", "random", "--limit", "2", "--no-cache",
                   "--results-dir", tmp_path / "results", "--run-id", run_id, *extra, capsys=capsys)


def test_a_plugins_policy_and_costs_are_found_by_run_and_act(tmp_path, capsys, harness_plugins):
    policy = write(tmp_path / "strict.toml", STRICT_POLICY)
    costs = write(tmp_path / "flat.toml", FLAT_COSTS)
    harness_plugins.register(plugin_of(policies={"strict-demo": policy}, costs={"flat": costs}), name="lineplug")

    code, _, err = run_demo(tmp_path, capsys, "--policy", "strict-demo", "--costs", "flat")
    assert code == 0, err
    run = json.loads((tmp_path / "results" / "r" / "run.json").read_text())
    assert run["decisions"]["policy"]["path"] == str(policy)
    assert run["decisions"]["policy"]["description"].startswith("strict test policy")
    assert run["decisions"]["costs"]["unit"] == "points"

    code, _, err = run_cli("act", "r", "--results-dir", tmp_path / "results", "--policy", "strict-demo",
                           "--costs", "flat", capsys=capsys)
    assert code == 0, err
    decisions = json.loads((tmp_path / "results" / "r" / "decisions.json").read_text())
    assert decisions["decisions"]["policy"]["path"] == str(policy)
    report = decisions["decisions"]["models"]["random"]
    # Every part's true action is scrap under this policy, so only a `pass` prediction (an escape) costs.
    assert report["cost"]["unit"] == "points"
    assert report["cost"]["total"] == pytest.approx(7 * report["escapes"])


def test_a_plugin_overrides_a_shipped_policy_name(tmp_path, capsys, harness_plugins):
    policy = write(tmp_path / "my-demo.toml", STRICT_POLICY)
    registry = harness_plugins.register(plugin_of(policies={"demo": policy}), name="lineplug")
    assert registry.policies["demo"].plugin == "lineplug"
    assert ("policies", "demo", "prompts") in registry.shadowed
    code, _, err = run_demo(tmp_path, capsys, "--policy", "demo")
    assert code == 0, err
    run = json.loads((tmp_path / "results" / "r" / "run.json").read_text())
    assert run["decisions"]["policy"]["path"] == str(policy)


def test_a_plugins_class_file_for_a_benchmark_reaches_the_prompt(tmp_path, harness_plugins):
    from harness.run.runner import Run, RunConfig

    texts: list[str] = []

    def script(prompt):
        texts.append(" ".join(p.text for m in prompt.messages for p in m.parts if isinstance(p, TextPart)))
        return "good"

    _, scripted = scripted_classifier(script)
    harness_plugins.register(scripted, name="scripted-test")
    before = Run(RunConfig(benchmark="demo", categories=["label"], models=["scripted"], prompt="velm", limit=1,
                           use_cache=False, results_dir=tmp_path / "results", run_id="shipped"),
                 plugins.get_registry()).execute()
    assert texts and MARKER not in texts[-1]

    mine = demo_class_file_with_marker(tmp_path / "demo-classes.toml")
    registry = harness_plugins.register(plugin_of(class_files={"demo": mine}), name="wording")
    assert plugins.registered_class_file("demo") == mine
    texts.clear()
    after = Run(RunConfig(benchmark="demo", categories=["label"], models=["scripted"], prompt="velm", limit=1,
                          use_cache=False, results_dir=tmp_path / "results", run_id="reworded"), registry).execute()
    assert texts and MARKER in texts[-1]
    # Only the object description changed: the classes a model is offered are the same.
    labels = lambda result: result.run["benchmark"]["categories"]["label"]["labels"]  # noqa: E731
    assert labels(after) == labels(before)


def test_a_malformed_registered_class_file_names_the_file_and_line(tmp_path, capsys, harness_plugins):
    bad = write(tmp_path / "bad-demo.toml", """
        [label]
        object = "fine"
        colour = "not a field"
    """)
    harness_plugins.register(plugin_of(class_files={"demo": bad}), name="wording")
    code, _, err = run_demo(tmp_path, capsys)
    message = " ".join(err.split())
    assert code == 2 and f"{bad}:4" in message and "colour" in message


def test_a_class_file_no_plugin_registered_is_none():
    assert plugins.registered_class_file("no-such-benchmark") is None


def test_harness_plugins_lists_the_files_and_what_they_override(tmp_path, capsys, harness_plugins):
    policy = write(tmp_path / "strict.toml", STRICT_POLICY)
    mine = demo_class_file_with_marker(tmp_path / "demo-classes.toml")
    harness_plugins.register(plugin_of(policies={"strict-demo": policy}, class_files={"demo": mine}), name="lineplug")
    code, out, _ = run_cli("plugins", "--json", capsys=capsys)
    assert code == 0
    listed = {p["name"]: p["registers"] for p in json.loads(out)["plugins"]}
    assert listed["lineplug"] == {"policies": ["strict-demo"], "class_files": ["demo"]}
    assert "demo (overridden)" in listed["prompts"]["class_files"]
    assert listed["prompts"]["policies"] == ["demo", "mvtec-ac"] and listed["prompts"]["costs"] == ["costs-example"]
    code, out, _ = run_cli("list", capsys=capsys)
    assert code == 0 and "strict-demo" in out and "lineplug" in out


def test_unknown_names_list_only_their_own_kind(tmp_path, capsys, harness_plugins):
    policy = write(tmp_path / "strict.toml", STRICT_POLICY)
    costs = write(tmp_path / "flat.toml", FLAT_COSTS)
    harness_plugins.register(plugin_of(policies={"strict-demo": policy}, costs={"flat": costs}), name="lineplug")
    code, _, err = run_demo(tmp_path, capsys, "--policy", "no-such")
    message = " ".join(err.split())
    assert code == 2 and "shipped policy files: demo, mvtec-ac, strict-demo)" in message and "flat" not in message
    code, _, err = run_demo(tmp_path, capsys, "--policy", "demo", "--costs", "no-such")
    message = " ".join(err.split())
    assert code == 2 and "shipped cost matrix files: costs-example, flat)" in message
    assert not (tmp_path / "results" / "r").exists()

    assert run_demo(tmp_path, capsys, run_id="done")[0] == 0
    code, _, err = run_cli("act", "done", "--results-dir", tmp_path / "results", "--policy", "costs-example",
                           capsys=capsys)
    message = " ".join(err.split())
    assert code == 2 and "no shipped policy of that name" in message and "strict-demo" in message


def test_a_file_registered_with_something_else_than_a_path_is_a_plugin_error():
    with pytest.raises(PluginError, match=r"'oddplug' registered policy 'x' with 42, not a file path"):
        plugins.load_registry(extra_plugins=[("oddplug", plugin_of(policies={"x": 42}))], entry_points=False)


def test_a_file_kind_registered_with_one_argument_is_a_plugin_error():
    from harness.hookspecs import hookimpl
    from harness.testing import PluginObject

    @hookimpl
    def register_class_files(register):
        register(Path("demo.toml"))

    with pytest.raises(PluginError, match=r"'oneplug'.*expected register\(name, path\)"):
        plugins.load_registry(extra_plugins=[("oneplug", PluginObject(register_class_files=register_class_files))],
                              entry_points=False)


def test_a_registered_policy_file_that_is_gone_is_named(tmp_path, harness_plugins):
    from harness.scoring.decisions import load_policy, resolve_file

    registry = harness_plugins.register(plugin_of(policies={"gone": tmp_path / "gone.toml"}), name="lineplug")
    with pytest.raises(HarnessError, match=r"gone\.toml: decision policy not found"):
        load_policy(resolve_file("gone", registry.policies, "policy"))
