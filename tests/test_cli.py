"""The `harness` command line: the user's view, exit codes included."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from harness.results import load_run

from conftest import BOTTLE, HARNESS, run_cli, write_plugin_distribution


harness = run_cli


def only_run(results: Path) -> Path:
    runs = [p for p in results.iterdir() if p.is_dir()]
    assert len(runs) == 1
    return runs[0]


def test_demo_runs_end_to_end_and_prints_a_summary(tmp_path, capsys):
    code, out, err = harness("run", "--benchmark", "demo", "--gate", "oracle", "--models", "random",
                             "--results-dir", tmp_path, capsys=capsys)
    assert code == 0, err
    assert "random" in out and "accuracy" in out
    for category in ("label", "tile", "washer"):
        assert category in err  # one progress line per category
    run, records = load_run(only_run(tmp_path))
    assert run["status"] == "finished" and len(records) == 150
    assert (tmp_path / "LEADERBOARD.md").read_text().count("| random |") == 1


@pytest.mark.skipif(not BOTTLE.is_dir(), reason=f"real MVTec-AD data not found at {BOTTLE}")
def test_real_mvtec_bottle(tmp_path, capsys):
    code, out, err = harness("run", "--benchmark", "mvtec-ad", "--data-root", BOTTLE.parent, "--category", "bottle",
                             "--gate", "oracle", "--models", "random", "--results-dir", tmp_path, capsys=capsys)
    assert code == 0, err
    run, records = load_run(only_run(tmp_path))
    assert run["benchmark"]["n_samples"] == 83
    assert sorted({r["true_label"] for r in records}) == ["broken_large", "broken_small", "contamination", "good"]
    called = [r for r in records if r["called"]]
    assert len(called) == 63 and all(r["error"] is None for r in called)
    # Random over 3 classes on 63 anomalous images, all 20 good passed by the oracle.
    velm = run["metrics"]["random"]["protocols"]["velm"]
    assert 0.2 < velm["accuracy"] < 0.75


def test_list_shows_everything_with_its_plugin_and_version(capsys):
    code, out, _ = harness("list", "--verbose", capsys=capsys)
    assert code == 0
    for name in ("demo", "mvtec-ad", "mvtec-ac", "visa-ac", "visa", "folder", "oracle", "none", "random",
                 "velm", "plain", "json", "csv", "datasets", "baselines", "prompts", "builtin", "0.1.0"):
        assert name in out
    assert "concurrency" in out  # --verbose documents options


def test_leaderboard_command_writes_markdown(tmp_path, small_tree, capsys):
    for limit in ("4", "6"):
        code, _, err = harness("run", "--benchmark", "folder", "--data-root", small_tree, "--models", "random",
                               "--limit", limit, "--results-dir", tmp_path / "results", capsys=capsys)
        assert code == 0, err
    output = tmp_path / "board.md"
    code, out, _ = harness("leaderboard", tmp_path / "results", "--output", output, capsys=capsys)
    assert code == 0
    text = output.read_text()
    assert text.count("## folder (manifest") == 2, "different image sets are never ranked together"
    assert "never ranked together" in out


def test_run_config_file_supplies_flags_and_options(tmp_path, small_tree, capsys):
    config = tmp_path / "run.toml"
    config.write_text(textwrap.dedent(f"""
        benchmark = "folder"
        data-root = "{small_tree}"
        models = ["random"]
        limit = 3
        [model-options."random"]
        seed = 5
        concurrency = 2
    """))
    code, _, err = harness("run", "--config", config, "--results-dir", tmp_path / "r", "--output-format", "csv",
                           capsys=capsys)
    assert code == 0, err
    run, _ = load_run(only_run(tmp_path / "r"))
    assert run["config"]["model_options"] == {"random": {"seed": 5, "concurrency": 2}}
    assert run["provenance"]["classifiers"]["random"]["options"]["seed"] == 5
    assert Path(run["outputs"]["csv"]).read_text().startswith("sample_id,")


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "--benchmark", "mvtec-ad", "--data-root", "{tmp}/missing", "--models", "random"], ["missing"]),
        (["run", "--benchmark", "mvtec-ad", "--data-root", "{tmp}", "--models", "random"], ["expects", "{tmp}"]),
        (["run", "--benchmark", "nonesuch", "--models", "random"], ["nonesuch"]),
        (["run", "--models", "random", "--config", "{tmp}/absent.toml"], ["absent.toml"]),
        (["run", "--models", "random", "--gate", "oracle", "--limit", "0"], ["limit"]),
        (["leaderboard", "{tmp}/nothing-here"], ["nothing-here"]),
        (["run", "--config", "{tmp}/typo.toml"], ["modles"]),
    ],
)
def test_user_errors_exit_2_with_a_message_and_no_traceback(tmp_path, capsys, args, words):
    (tmp_path / "typo.toml").write_text('modles = ["random"]\n')
    code, out, err = harness(*[a.replace("{tmp}", str(tmp_path)) for a in args], capsys=capsys)
    assert code == 2
    assert "Traceback" not in err
    for word in words:
        assert word.replace("{tmp}", str(tmp_path)) in err + out


def test_debug_shows_the_traceback(tmp_path):
    result = subprocess.run([*HARNESS, "--debug", "run", "--benchmark", "nonesuch", "--models", "random"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_a_misspelled_hook_fails_loudly_naming_the_plugin(tmp_path):
    write_plugin_distribution(tmp_path, "typo_plugin", """
        from harness.hookspecs import hookimpl

        @hookimpl
        def register_clasifiers(register):
            pass
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([*HARNESS, "list"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "typo_plugin" in result.stderr and "register_clasifiers" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_plugin_is_reported_and_the_others_still_work(tmp_path):
    write_plugin_distribution(tmp_path, "broken_plugin", "import a_module_that_is_not_installed\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([*HARNESS, "list"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0
    assert "broken_plugin" in result.stderr and "pip install a_module_that_is_not_installed" in result.stderr
    assert "random" in result.stdout and "mvtec-ad" in result.stdout


def test_plugins_can_add_commands(tmp_path):
    write_plugin_distribution(tmp_path, "command_plugin", """
        import click
        from harness.hookspecs import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def hello():
                click.echo("hello from a plugin")
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([*HARNESS, "hello"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hello from a plugin" in result.stdout
