"""examples/harness-echo: pip-installed from its own pyproject, found by entry-point discovery, used by `harness run`.

The package is installed offline (no index, no build isolation: setuptools
from the test environment) into a folder that is then put on the path; the
harness itself is not touched. Without that folder on the path, echo is unknown.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HARNESS
from harness.errors import UnknownNameError
from harness.plugins import load_registry
from harness.testing import install_offline, write_tiny_benchmark
from harness.testing.conformance import check_classifier

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "harness-echo"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools.build_meta", reason="setuptools is needed to build examples/harness-echo")
    return install_offline(EXAMPLE, target=tmp_path_factory.mktemp("echo-site"))


@pytest.fixture
def on_path(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [m for m in sys.modules if m == "harness_echo" or m.startswith("harness_echo.")]:
        del sys.modules[name]


def cli(site: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "HARNESS_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}
    return subprocess.run([*HARNESS, *map(str, args)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_pip_installed_it_with_its_metadata_and_left_the_source_clean(site):
    info = site / "harness_echo-0.1.0.dist-info"
    assert (info / "entry_points.txt").read_text().split() == ["[harness]", "echo", "=", "harness_echo"]
    assert "INSTALLER" in {p.name for p in info.iterdir()}  # written by pip, not by hand
    assert (site / "harness_echo" / "classifier.py").is_file()
    assert not (EXAMPLE / "build").exists() and not list(EXAMPLE.glob("*.egg-info"))


def test_entry_point_discovery_finds_echo_only_when_installed(on_path):
    registry = load_registry()
    assert registry.failures == []
    assert registry.plugins["echo"] == ("harness-echo", "0.1.0")
    provided = registry.get("classifiers", "echo")
    assert (provided.plugin, provided.version) == ("echo", "0.1.0")
    # the class came from the installed copy, not from the repository's source folder
    assert Path(inspect.getfile(provided.obj)).is_relative_to(on_path)


def test_echo_is_unknown_without_the_installed_package():
    with pytest.raises(UnknownNameError, match="unknown classifier 'echo'"):
        load_registry().get("classifiers", "echo")


def test_the_installed_echo_passes_the_conformance_check(on_path, tmp_path):
    echo = load_registry().get("classifiers", "echo").obj
    check_classifier(echo, options={"answer": "hole"}, bad_options=[{"answer": 3}], data_root=tmp_path / "tiny") \
        .raise_for_failures()


def test_harness_run_with_models_echo(site, tmp_path):
    data = write_tiny_benchmark(tmp_path / "data")
    done = cli(site, tmp_path, "run", "--benchmark", "folder", "--data-root", data, "--gate", "oracle",
               "--models", "echo,random", "--results-dir", tmp_path / "results", "--run-id", "echo")
    assert done.returncode == 0, done.stderr
    run = json.loads((tmp_path / "results" / "echo" / "run.json").read_text())
    assert run["status"] == "finished"
    assert run["provenance"]["plugins"]["echo"] == {"distribution": "harness-echo", "version": "0.1.0"}
    assert run["provenance"]["classifiers"]["echo"]["options"]["answer"] is None
    records = [json.loads(line) for line in (tmp_path / "results" / "echo" / "samples.jsonl").read_text().splitlines()]
    echo = [r for r in records if r["model"] == "echo"]
    assert len(echo) == 12
    asked = [r for r in echo if r["called"]]
    assert len(asked) == 8  # the oracle gate flags exactly the anomalous images
    assert all(r["error"] is None and r["response"] == r["predicted_label"] for r in asked)
    assert "echo" in run["metrics"]
    assert "echo" in done.stdout  # the run's table


def test_echo_answers_as_its_run_config_says(site, tmp_path):
    data = write_tiny_benchmark(tmp_path / "data")
    config = tmp_path / "run.toml"
    config.write_text('[model-options."echo"]\nanswer = "hole"\n')
    done = cli(site, tmp_path, "run", "--benchmark", "folder", "--data-root", data, "--gate", "oracle",
               "--models", "echo", "--config", config, "--results-dir", tmp_path / "results", "--run-id", "hole")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (tmp_path / "results" / "hole" / "samples.jsonl").read_text().splitlines()]
    asked = [r for r in records if r["called"]]
    widget = [r for r in asked if r["category"] == "widget"]
    tile = [r for r in asked if r["category"] == "tile"]
    assert {r["predicted_label"] for r in widget} == {"hole"}
    assert sum(r["correct"] for r in widget) == 2  # the two hole images
    # "hole" is not a tile class: the parser calls it unparseable, never a tile class
    assert {(r["predicted_label"], r["error"]) for r in tile} == {(None, "unparseable")}


def test_a_bad_echo_option_is_a_clear_error(site, tmp_path):
    data = write_tiny_benchmark(tmp_path / "data")
    config = tmp_path / "run.toml"
    config.write_text('[model-options."echo"]\nanswr = "hole"\n')
    done = cli(site, tmp_path, "run", "--benchmark", "folder", "--data-root", data, "--models", "echo",
               "--config", config, "--results-dir", tmp_path / "results")
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert "invalid options for model 'echo': answr" in message and "Traceback" not in message


def test_harness_plugins_and_list_show_it(site, tmp_path):
    done = cli(site, tmp_path, "plugins", "--json")
    assert done.returncode == 0, done.stderr
    echo = next(p for p in json.loads(done.stdout)["plugins"] if p["name"] == "echo")
    assert (echo["distribution"], echo["version"], echo["registers"]) == ("harness-echo", "0.1.0", {"classifiers": ["echo"]})
    listed = cli(site, tmp_path, "list")
    assert listed.returncode == 0
    assert any(line.split("│")[1:4] and "echo" in line and "0.1.0" in line for line in listed.stdout.splitlines())
