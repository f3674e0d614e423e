"""Shared fixtures: a private cache folder, a small MVTec-style tree, the real data path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness import plugins

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BOTTLE = SHARED_DATA / "mvtec_ad" / "bottle"
#: The ``harness`` command line, run as a child process (the installed script need not be on PATH).
HARNESS = [sys.executable, "-c", "from harness.cli import main; main()"]


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("harness-cache")


@pytest.fixture(autouse=True)
def private_cache(session_cache, monkeypatch):
    """No test writes to the user's home cache; the full demo is generated at most once per session."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(session_cache))


@pytest.fixture(autouse=True)
def fresh_registry():
    """Each test starts from the process-wide registry as entry points define it."""
    plugins.set_registry(None)
    yield
    plugins.set_registry(None)


@pytest.fixture(scope="session")
def small_tree(tmp_path_factory) -> Path:
    """A small MVTec-layout tree (demo images: 3 categories, 5 defect classes, 2 images each)."""
    from harness_datasets import demo

    root = tmp_path_factory.mktemp("small-tree")
    demo.write_demo_tree(root, seed=0, counts=demo.DemoCounts(train=3, good=2, per_defect=2))
    return root


def write_plugin_distribution(folder: Path, name: str, module_source: str) -> None:
    """A plugin installed the way pip would: a module plus a dist-info with a `harness` entry point."""
    (folder / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = folder / f"{name}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[harness]\n{name} = {name}\n")


def run_cli(*args: object, capsys) -> tuple[int, str, str]:
    """Run the ``harness`` CLI in-process; return (exit code, stdout, stderr)."""
    from harness.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def slow_openai_url():
    """The ``/v1`` URL of a loopback OpenAI server in a child process (50 ms a request, every answer "crack"),
    so that a run killed with SIGKILL leaves the server answering its resume."""
    pytest.importorskip("openai")
    server = subprocess.Popen([sys.executable, "-m", "harness.testing.loopback", "--latency-s", "0.05", "--answer", "crack",
                               "--max-seconds", "120"], stdout=subprocess.PIPE, text=True)
    try:
        yield server.stdout.readline().strip() + "/v1"
    finally:
        server.terminate()
        server.wait()


def kill_after_records(process: subprocess.Popen, samples: Path, count: int, timeout_s: float = 60) -> int:
    """SIGKILL ``process`` (no clean-up of any kind) once ``samples`` holds ``count`` records, or after
    ``timeout_s``; the records it left."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (samples.exists() and samples.read_text().count("\n") >= count):
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return samples.read_text().count("\n") if samples.exists() else 0


@pytest.fixture
def fake_api_keys(monkeypatch):
    """Test keys for both hosted SDKs, and none of a user's base URLs: every call goes where the test says."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdefghijklmnop1234")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-abcdefghijklmnop1234")
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance for the whole session (Ray has no local mode: starting one takes seconds).

    Its workers find the test modules (a gate or classifier a test defines travels by reference to them).
    """
    import logging
    import os

    try:
        import ray
    except ImportError:
        pytest.skip("ray is not installed (pip install 'anomaly-harness[ray]')")
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, logging_level=logging.WARNING,
             log_to_driver=False)
    yield ray
    ray.shutdown()
