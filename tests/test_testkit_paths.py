"""The test kit moved into the package `harness.testing`; every path it had before still works.

Each old module (``harness.loopback``, ``harness.conformance``, ...) is a
re-export kept for compatibility: the names it had before the move (listed
here as they were) must be the very objects of the new home, ``python -m
harness.loopback`` must still serve, and both pytest-plugin names must give
the fixtures. The kit itself must import none of the old modules (they would
make import cycles) and keep every module under 400 lines.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "harness" / "testing"

# Old module -> (new home, the public names the old module had before the move).
OLD_PATHS = {
    "harness.loopback": ("harness.testing.loopback", [
        "ANTHROPIC_LEGACY_VERSION", "ANTHROPIC_PATH", "Answer", "Fault", "FaultKind", "LoopbackServer", "OPENAI_PATH",
        "Outcome", "Protocol", "Request", "Responder", "TOKENS_PER_IMAGE", "always", "estimate_prompt_tokens", "main",
        "sequence",
    ]),
    "harness.loopback_faults": ("harness.testing.loopback_faults", ["DEFAULT_FAULTS", "fault_mix", "first_listed_class"]),
    "harness.conformance": ("harness.testing.conformance", [
        "CheckResult", "ConformanceReport", "ErrorLike", "RATE_LIMIT_BUDGET_S", "RECORD_FIELDS", "TEMPLATE",
        "UNKNOWN_OPTION", "check_classifier", "error_from_wire", "tiny_prompt",
    ]),
    "harness.conformance_wire": ("harness.testing.conformance_wire", [
        "answer_first_candidate", "check_wire_faults", "error_from_wire", "tiny_prompt",
    ]),
    "harness.tiny_benchmark": ("harness.testing.tiny_benchmark", [
        "CATEGORIES", "GOOD_PER_CATEGORY", "PER_DEFECT", "SIZE", "TINY_TEMPLATE", "TRAIN_PER_CATEGORY", "TinyBenchmark",
        "tiny_prompt", "write_tiny_benchmark",
    ]),
    "harness.pytest_plugin": ("harness.testing.pytest_plugin", ["harness_loopback", "harness_plugins", "harness_tiny_benchmark"]),
    "harness.report.browser": ("harness.testing.browser", ["Browser", "FLAGS", "find_chromium"]),
}

# harness.testing was a module and is now the package: its names come from the kit's modules.
TESTING_NAMES = {
    "PluginObject": "plugin_helpers", "PluginRegistrar": "plugin_helpers", "Script": "plugin_helpers",
    "ScriptResult": "plugin_helpers", "install_offline": "plugin_helpers", "plugin_of": "plugin_helpers",
    "registry_with": "plugin_helpers", "scripted_classifier": "plugin_helpers", "TINY_TEMPLATE": "tiny_benchmark",
    "TinyBenchmark": "tiny_benchmark", "tiny_prompt": "tiny_benchmark", "write_tiny_benchmark": "tiny_benchmark",
    "LoopbackServer": "loopback", "check_classifier": "conformance",
}
OLD_MODULE_FILES = ["loopback.py", "loopback_faults.py", "conformance.py", "conformance_wire.py", "tiny_benchmark.py",
                    "pytest_plugin.py", "report/browser.py"]


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_an_old_path_gives_the_new_homes_objects(old):
    new, names = OLD_PATHS[old]
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(old_module, name) is getattr(new_module, name), f"{old}.{name} is not {new}.{name}"
    assert "kept for compatibility" in old_module.__doc__.lower()


def test_an_old_module_defines_nothing_of_its_own():
    """A shim only imports: a class or function written in one would drift from the new home."""
    for relpath in OLD_MODULE_FILES:
        tree = ast.parse((ROOT / "harness" / relpath).read_text(encoding="utf-8"))
        own = [type(node).__name__ for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
        assert not own, f"harness/{relpath} defines {own}; it should only re-export harness.testing"


def test_harness_testing_keeps_its_names():
    import harness.testing

    for name, home in TESTING_NAMES.items():
        assert getattr(harness.testing, name) is getattr(importlib.import_module(f"harness.testing.{home}"), name)
    assert set(harness.testing.__all__) <= set(TESTING_NAMES)
    assert set(harness.testing.__all__) <= set(dir(harness.testing))
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        harness.testing.no_such_name  # noqa: B018


def test_the_kit_imports_no_old_path_and_no_module_is_over_400_lines():
    old = {f"harness.{relpath[:-3].replace('/', '.')}" for relpath in OLD_MODULE_FILES}
    for path in sorted(KIT.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 400, f"{path.name} has {len(text.splitlines())} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom):
                assert node.module not in old, f"{path.name}:{node.lineno} imports the old path {node.module}"


def test_importing_the_pytest_plugin_or_the_server_loads_nothing_else_of_the_kit():
    """The pytest plugin loads in every test session: it must stay cheap (fixtures import on use)."""
    code = ("import sys, harness.testing.pytest_plugin, harness.testing.loopback; "
            "print(sorted(m for m in sys.modules if m.startswith('harness')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(ast.literal_eval(done.stdout))  # the printed list of module names
    assert "harness.testing.pytest_plugin" in loaded
    assert not loaded & {"harness.plugins", "harness.run.runner", "harness.testing.plugin_helpers",
                         "harness.testing.conformance", "harness.testing.tiny_benchmark"}, sorted(loaded)


@pytest.mark.parametrize("module", ["harness.loopback", "harness.testing.loopback"])
def test_the_loopback_server_runs_as_a_program_under_both_names(module):
    server = subprocess.Popen([sys.executable, "-m", module, "--answer", "crack", "--max-requests", "1",
                               "--max-seconds", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), server.stderr.read()
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "which class?"}]}).encode()
        request = urllib.request.Request(url + "/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
        assert answer["choices"][0]["message"]["content"] == "crack"
        assert server.wait(timeout=20) == 0
        assert "served 1 requests" in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


FIXTURE_TEST = '''
def test_the_fixtures(harness_plugins, harness_tiny_benchmark, harness_loopback):
    assert harness_tiny_benchmark.load(None).name == "tiny"
    assert harness_loopback.openai_base_url.endswith("/v1")
    assert harness_plugins.registry is None
'''


@pytest.mark.parametrize("plugin", ["harness.pytest_plugin", "harness.testing.pytest_plugin"])
def test_both_pytest_plugin_names_give_the_fixtures(plugin, tmp_path):
    (tmp_path / "test_fixtures.py").write_text(FIXTURE_TEST, encoding="utf-8")
    # -p no:harness: without the installed entry point, only the named module can supply the fixtures.
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:harness",
                           "-p", plugin, "test_fixtures.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_pyproject_ships_the_kit_package_and_names_its_pytest_plugin():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "harness.testing" in config["tool"]["setuptools"]["packages"]
    entry = config["project"]["entry-points"]["pytest11"]["harness"]
    assert entry == "harness.testing.pytest_plugin"
    plugin = importlib.import_module(entry)
    assert all(hasattr(plugin, name) for name in OLD_PATHS["harness.pytest_plugin"][1])
