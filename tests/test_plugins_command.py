"""``harness plugins``: each plugin with its distribution, version and what it registers; load failures."""

from __future__ import annotations

import importlib
import json
import sys

import click
import pytest

import harness
from harness.cli.plugins import describe_plugins
from harness.gates import PassThroughGate
from harness.hookspecs import hookimpl
from harness.plugins import load_registry
from harness.testing import plugin_of, scripted_classifier

from conftest import run_cli, write_plugin_distribution


harness_cli = run_cli


class RenamedOracle(PassThroughGate):
    name = "oracle"  # overrides the built-in one


@click.command(name="plugin-test-hello")
def hello() -> None:
    """A command a plugin adds."""


def test_json_lists_first_party_plugins_with_distribution_version_and_registrations(capsys):
    code, out, _ = harness_cli("plugins", "--json", capsys=capsys)
    assert code == 0
    payload = json.loads(out)
    plugins = {p["name"]: p for p in payload["plugins"]}
    assert payload["plugins"][0]["name"] == "builtin"
    assert plugins["builtin"]["distribution"] == "anomaly-harness"
    assert plugins["builtin"]["version"] == harness.__version__
    assert plugins["builtin"]["registers"]["gates"] == ["none", "oracle"]
    assert plugins["builtin"]["registers"]["writers"] == ["csv"]
    assert plugins["baselines"]["registers"] == {"classifiers": ["random"]}
    assert plugins["prompts"]["registers"]["templates"] == sorted(plugins["prompts"]["registers"]["templates"])
    assert {"velm", "plain", "json"} <= set(plugins["prompts"]["registers"]["templates"])
    assert {"demo", "mvtec-ad"} <= set(plugins["datasets"]["registers"]["benchmarks"])
    assert all(p["distribution"] == "anomaly-harness" for p in plugins.values())
    assert payload["failures"] == []


def test_table_shows_each_plugin_on_a_row(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = harness_cli("plugins", capsys=capsys)
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}
    assert "anomaly-harness" in rows["baselines"] and "classifiers: random" in rows["baselines"]
    assert "gates: none, oracle" in rows["builtin"]
    assert "Failed to load" not in out


def test_table_names_file_kinds_as_people_say_them_and_json_keeps_registry_names(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = harness_cli("plugins", capsys=capsys)
    assert code == 0
    assert "cost matrices: costs-example" in out and "class files: demo" in out
    assert "costs:" not in out and "class_files:" not in out
    code, out, _ = harness_cli("plugins", "--json", capsys=capsys)
    prompts = next(p for p in json.loads(out)["plugins"] if p["name"] == "prompts")
    assert "costs" in prompts["registers"] and "class_files" in prompts["registers"]


def test_a_plugin_registered_for_the_test_shows_kinds_commands_hooks_and_overrides(harness_plugins):
    Scripted, _ = scripted_classifier(lambda prompt: "x", plugin="scripted-p")
    plugin = plugin_of(classifiers=[Scripted], gates=[RenamedOracle], commands=[hello])

    @hookimpl
    def harness_sample_done(record):
        pass

    plugin.harness_sample_done = harness_sample_done
    registry = harness_plugins.register(plugin, name="mine")
    infos = {info.name: info for info in describe_plugins(registry)}
    mine = infos["mine"]
    assert (mine.distribution, mine.version) == ("local", "0")
    assert mine.registers == {"classifiers": ["scripted-p"], "gates": ["oracle"], "commands": ["plugin-test-hello"]}
    assert mine.hooks == ["harness_sample_done"]
    assert infos["builtin"].registers["gates"] == ["none", "oracle (overridden)"]


def test_a_plugin_whose_register_commands_raises_is_reported_not_fatal(harness_plugins):
    @hookimpl
    def register_commands(cli):
        raise RuntimeError("no commands today")

    registry = harness_plugins.register(plugin_of(), name="plain")
    registry = harness_plugins.register(type("P", (), {"register_commands": staticmethod(register_commands)}), name="bad")
    infos = {info.name: info for info in describe_plugins(registry)}
    assert infos["bad"].problems == ["register_commands failed: RuntimeError: no commands today"]
    assert infos["plain"].registers == {}


def test_plugins_that_failed_to_load_are_listed_with_a_hint(tmp_path, monkeypatch, capsys):
    write_plugin_distribution(tmp_path, "broken_listing_plugin", "import an_sdk_that_is_not_installed\n")
    write_plugin_distribution(tmp_path, "working_listing_plugin", """
        from harness.gates import PassThroughGate
        from harness.hookspecs import hookimpl

        class Everything(PassThroughGate):
            name = "everything"

        @hookimpl
        def register_gates(register):
            register(Everything)
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        code, out, _ = harness_cli("plugins", "--json", capsys=capsys)
        assert code == 0
        payload = json.loads(out)
        [failure] = payload["failures"]
        assert failure["plugin"] == "broken_listing_plugin"
        assert failure["distribution"] == "broken_listing_plugin"
        assert "an_sdk_that_is_not_installed" in failure["error"]
        assert failure["hint"].startswith("pip install an_sdk_that_is_not_installed")
        working = next(p for p in payload["plugins"] if p["name"] == "working_listing_plugin")
        assert (working["distribution"], working["version"]) == ("working_listing_plugin", "0.3")
        assert working["registers"] == {"gates": ["everything"]}

        from harness.plugins import set_registry
        set_registry(None)
        monkeypatch.setenv("COLUMNS", "250")
        code, out, _ = harness_cli("plugins", capsys=capsys)
        assert code == 0
        assert "Failed to load" in out and "broken_listing_plugin" in out
    finally:
        sys.modules.pop("working_listing_plugin", None)


def test_describe_plugins_without_entry_points_has_only_the_builtin():
    infos = describe_plugins(load_registry(entry_points=False))
    assert [i.name for i in infos] == ["builtin"]


def test_the_core_commands_come_through_register_commands_like_a_plugins():
    infos = describe_plugins(load_registry(entry_points=False))
    assert infos[0].registers["commands"] == ["plugins"]  # compare, act, ...: first-party plugins


def test_the_report_command_comes_from_the_first_party_report_plugin():
    infos = {info.name: info for info in describe_plugins(load_registry())}
    assert infos["report"].distribution == "anomaly-harness"
    assert infos["report"].registers == {"commands": ["report"]}


def test_score_classes_and_cache_come_from_first_party_plugins_through_entry_points():
    infos = {info.name: info for info in describe_plugins(load_registry())}
    assert infos["imported"].registers == {"commands": ["score"]}
    assert infos["classfiles"].registers == {"commands": ["classes"]}
    assert infos["cachetools"].registers == {"commands": ["cache"]}
    assert {infos[name].distribution for name in ("imported", "classfiles", "cachetools")} == {"anomaly-harness"}


@pytest.mark.parametrize("name", ["score", "classes", "cache"])
def test_a_plugin_command_replaces_a_first_party_plugins_command_of_its_name(harness_plugins, capsys, name):
    @click.command(name=name)
    def mine():
        click.echo(f"my {name}")

    harness_plugins.register(plugin_of(commands=[mine]), name="mine")
    code, out, _ = run_cli(name, capsys=capsys)
    assert code == 0 and f"my {name}" in out


def test_a_plugin_command_of_a_core_commands_name_replaces_it(harness_plugins, capsys):
    @click.command(name="compare")
    def my_compare():
        click.echo("my compare")

    harness_plugins.register(plugin_of(commands=[my_compare]), name="mine")
    code, out, _ = run_cli("compare", capsys=capsys)
    assert code == 0 and "my compare" in out


def test_a_plugin_command_named_report_replaces_the_first_party_plugins(harness_plugins, capsys):
    code, out, _ = run_cli("report", "--help", capsys=capsys)
    assert code == 0 and "--per-model" in out  # the report plugin's own command, before the override

    @click.command(name="report")
    def my_report():
        click.echo("my report")

    harness_plugins.register(plugin_of(commands=[my_report]), name="mine")
    assert {"report", "mine"} <= set(harness_plugins.registry.plugins)  # both loaded: the command added last wins
    code, out, _ = run_cli("report", capsys=capsys)
    assert code == 0 and "my report" in out


def test_a_plugin_whose_register_commands_raises_leaves_the_other_commands_working(harness_plugins, capsys):
    def register_commands(cli):
        raise RuntimeError("no commands today")

    harness_plugins.register(type("P", (), {"register_commands": staticmethod(hookimpl(register_commands))}), name="bad")
    code, out, err = run_cli("cache", "--help", capsys=capsys)
    assert code == 0 and "info" in out
    assert "plugin 'bad': register_commands failed (RuntimeError: no commands today)" in " ".join(err.split())
