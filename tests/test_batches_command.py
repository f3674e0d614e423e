"""A ``harness run --batch`` process killed while its batches run: ``harness batches`` shows them, ``--resume``
collects them without submitting anything again, and ``harness batches --cancel`` cancels them."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import HARNESS, run_cli
from harness.results import load_run
from harness.run.batch_mode import LEDGER_FILE
from harness.testing.loopback import LoopbackServer

SPEC = "openai:gpt-4o"


@pytest.fixture(autouse=True)
def api_keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdefghijklmnop1234")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def server():
    with LoopbackServer("scratch", max_seconds=120) as server:
        server.batches.polls_to_complete = 10**6  # running until the test says otherwise
        yield server
    assert not server.errors, server.errors


def start_batch_run(tmp_path, small_tree, server) -> subprocess.Popen:
    config = tmp_path / "run.toml"
    config.write_text(f'[model-options."{SPEC}"]\nbase_url = "{server.openai_base_url}"\n')
    return subprocess.Popen(
        [*HARNESS, "run", "--benchmark", "folder", "--data-root", str(small_tree), "--category", "tile",
         "--models", SPEC, "--batch", "--batch-poll-s", "0.05", "--config", str(config),
         "--results-dir", str(tmp_path / "results"), "--run-id", "r", "--no-cache"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_batch_id(process: subprocess.Popen, ledger) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ledger.is_file() and '"created"' in ledger.read_text():
            return
        if process.poll() is not None:
            raise AssertionError(f"the run ended before submitting: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError("no batch was created within 60 s")


def test_a_killed_batch_run_is_shown_then_resumed_without_submitting_again(tmp_path, small_tree, server, capsys):
    process = start_batch_run(tmp_path, small_tree, server)
    ledger = tmp_path / "results" / "r" / LEDGER_FILE
    try:
        wait_for_batch_id(process, ledger)
    finally:
        os.kill(process.pid, signal.SIGKILL)  # no clean-up of any kind: as a crash or kill -9
        process.wait()
        process.stderr.close()
    submitted = server.batches.submitted_requests
    assert submitted > 0 and len(server.batches.submissions) == 1
    batch_id = server.batches.submissions[0].batch_id

    code, shown, _ = run_cli("batches", "r", "--results-dir", tmp_path / "results", capsys=capsys)
    assert code == 0 and batch_id in shown and "in_progress" in shown and "--resume r" in shown

    server.batches.polls_to_complete = 0
    code, _, err = run_cli("run", "--resume", "r", "--results-dir", tmp_path / "results", capsys=capsys)
    assert code == 0, err
    assert server.batches.submitted_requests == submitted and len(server.batches.submissions) == 1
    run, records = load_run(tmp_path / "results" / "r")
    asked = [r for r in records if r["called"]]
    assert run["status"] == "finished" and len(asked) == submitted
    assert all(r["batch_id"] == batch_id and r["predicted_label"] == "scratch" for r in asked)
    code, shown, _ = run_cli("batches", "r", "--results-dir", tmp_path / "results", capsys=capsys)
    assert code == 0 and "completed" in shown and "yes" in shown


def test_cancelled_batches_give_cancelled_records(tmp_path, small_tree, server, capsys):
    process = start_batch_run(tmp_path, small_tree, server)
    try:
        wait_for_batch_id(process, tmp_path / "results" / "r" / LEDGER_FILE)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()
    code, shown, err = run_cli("batches", "r", "--results-dir", tmp_path / "results", "--cancel", capsys=capsys)
    assert code == 0, err
    assert "cancelling" in shown
    code, _, err = run_cli("run", "--resume", "r", "--results-dir", tmp_path / "results", capsys=capsys)
    assert code == 1 and "no call to 'openai:gpt-4o' succeeded" in err  # every request was cancelled: said so
    _, records = load_run(tmp_path / "results" / "r")
    asked = [r for r in records if r["called"]]
    assert asked and all(r["error"] == "backend_error" and "cancelled" in r["error_detail"]
                         and r["error_transient"] is False for r in asked)
    assert len(server.batches.submissions) == 1


def test_a_run_without_batches_says_so(tmp_path, small_tree, capsys):
    code, _, _ = run_cli("run", "--benchmark", "folder", "--data-root", small_tree, "--models", "random",
                         "--results-dir", tmp_path, "--run-id", "plain", capsys=capsys)
    assert code == 0
    code, _, err = run_cli("batches", "plain", "--results-dir", tmp_path, capsys=capsys)
    assert code == 2 and "has no provider batches" in err
