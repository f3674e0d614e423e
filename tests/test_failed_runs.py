"""Runs that cannot succeed: checked before spending, stopped early, and never passed off as results.

Hosted backends are driven through the real SDKs against `harness.testing.loopback`
servers; the generic early stop is shown with a scripted backend whose errors
carry an HTTP status, as any SDK's do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from harness import plugins
from harness.run.dispatch import CallResult
from harness.errors import HarnessError
from harness.run.failfast import EARLY_STOP_AFTER, EarlyStop, FailFast, call_failures, check_answered, NoAnswersError
from harness.record import records_from_json
from harness.results import load_run
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier
from harness.testing.loopback import Fault, LoopbackServer, sequence

KEY = "sk-failed-runs-abcdefghij0123456789"
SPEC = "openai:gpt-4o"


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def openai_config(tmp_path: Path, server: LoopbackServer, **options) -> Path:
    """A run config pointing ``openai:gpt-4o`` at the loopback server."""
    options = {"base_url": server.openai_base_url, "concurrency": 2, **options}
    lines = [f"[model-options.\"{SPEC}\"]"] + [f"{name} = {json.dumps(value)}" for name, value in options.items()]
    path = tmp_path / "run.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def harness_run(tmp_path, small_tree, capsys, *extra):
    """`harness run` of the folder benchmark (30 flagged images); stderr with rich's line wrapping undone."""
    code, out, err = run_cli("run", "--benchmark", "folder", "--data-root", small_tree, "--results-dir",
                             tmp_path / "results", "--run-id", "r", "--no-cache", *extra, capsys=capsys)
    return code, out, " ".join(err.split())


# -- 1. checked before the first request ---------------------------------------------------------


def test_an_unknown_output_format_is_refused_before_any_request(tmp_path, small_tree, capsys):
    with LoopbackServer("crack") as server:
        code, _, err = harness_run(tmp_path, small_tree, capsys, "--models", SPEC,
                                   "--config", openai_config(tmp_path, server), "--output-format", "nosuch")
    assert code == 2 and server.count == 0
    assert "--output-format 'nosuch'" in err and "csv" in err  # the known writers are listed
    assert not (tmp_path / "results" / "r").exists()


@pytest.mark.parametrize("spec,variable", [(SPEC, "OPENAI_API_KEY"), ("anthropic:claude-x", "ANTHROPIC_API_KEY")])
def test_a_missing_api_key_is_refused_before_any_request(tmp_path, small_tree, capsys, monkeypatch, spec, variable):
    monkeypatch.delenv(variable)
    code, _, err = harness_run(tmp_path, small_tree, capsys, "--models", spec)
    assert code == 2 and variable in err and spec in err
    assert not (tmp_path / "results").exists()


def test_options_for_a_model_that_is_not_run_are_refused(tmp_path, small_tree):
    config = RunConfig(benchmark="folder", data_root=small_tree, models=["random"], results_dir=tmp_path,
                       model_options={"randm": {"seed": 1}})
    with pytest.raises(HarnessError, match=r"'randm'.*not among the models run \(random\)"):
        Run(config, plugins.load_registry())


def test_a_results_dir_that_cannot_be_a_folder_is_refused(tmp_path, small_tree):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for results_dir in (blocker, blocker / "below"):
        config = RunConfig(benchmark="folder", data_root=small_tree, models=["random"], results_dir=results_dir)
        with pytest.raises(HarnessError, match="a-file is a file, not a folder"):
            Run(config, plugins.load_registry())


def test_a_missing_price_file_is_refused_before_any_request(tmp_path, small_tree, capsys):
    code, _, err = harness_run(tmp_path, small_tree, capsys, "--models", "random", "--prices", tmp_path / "nope.toml")
    assert code == 2 and "nope.toml: price file not found" in err
    assert not (tmp_path / "results").exists()


# -- 2. early stop --------------------------------------------------------------------------------


def test_a_wrong_key_stops_the_run_early_with_exit_2(tmp_path, small_tree, capsys):
    with LoopbackServer(Fault.unauthorized) as server:  # the 401 body echoes the key
        code, out, err = harness_run(tmp_path, small_tree, capsys, "--models", SPEC,
                                     "--config", openai_config(tmp_path, server))
    assert code == 2
    assert "stopped early" in err and SPEC in err and "401" in err and KEY not in err + out
    # 30 images are flagged; the dispatcher sends nothing after the stop, beyond requests already in flight.
    assert EARLY_STOP_AFTER <= server.count <= EARLY_STOP_AFTER + 2
    run, records = load_run(tmp_path / "results" / "r")
    assert run["status"] == "failed" and "stopped early" in run["failure"]
    assert run["stopped_early"]["model"] == SPEC and run["stopped_early"]["requests"] == EARLY_STOP_AFTER
    assert "[REDACTED]" in run["stopped_early"]["error"]
    called = [r for r in records if r["called"]]
    assert len(called) >= EARLY_STOP_AFTER and all(r["error"] == "backend_error" for r in called)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_any_backend_whose_errors_carry_a_fatal_status_stops_early(tmp_path, small_tree, status):
    class Denied(Exception):
        status_code = status

    classifier, plugin = scripted_classifier(lambda prompt: Denied(f"HTTP {status}"))
    config = RunConfig(benchmark="folder", data_root=small_tree, models=["scripted"], results_dir=tmp_path,
                       run_id="r", model_options={"scripted": {"concurrency": 1}})
    with pytest.raises(EarlyStop, match=f"'scripted'.*HTTP {status}"):
        Run(config, plugins.load_registry(extra_plugins=[("denied", plugin)])).execute()
    assert len(classifier.prompts) == EARLY_STOP_AFTER  # one at a time: not one request more
    run, records = load_run(tmp_path / "r")
    assert run["status"] == "failed" and len([r for r in records if r["called"]]) == EARLY_STOP_AFTER


@pytest.mark.parametrize("fault", [Fault.error(400, "image too large"), Fault.server_error(500)], ids=["400", "500"])
def test_errors_that_are_not_fatal_never_stop_a_run(tmp_path, small_tree, capsys, fault):
    with LoopbackServer(fault) as server:
        code, _, err = harness_run(tmp_path, small_tree, capsys, "--models", SPEC,
                                   "--config", openai_config(tmp_path, server, max_attempts=1))
    assert server.count == 30  # every flagged image was asked
    assert code == 1 and "stopped early" not in err
    assert f"model '{SPEC}': 30 of 30 calls failed (backend_error 30)" in err
    assert f"no call to '{SPEC}' succeeded" in err
    run, _ = load_run(tmp_path / "results" / "r")
    assert run["status"] == "finished"
    assert run["call_failures"][SPEC] | {"example": None} == {"calls": 30, "failed": 30,
                                                              "errors": {"backend_error": 30}, "example": None}


def test_an_answer_among_the_first_requests_ends_the_watch(tmp_path, small_tree, capsys):
    """Three 401s, then answers: a flaky start is recorded and warned about, not stopped."""
    with LoopbackServer(sequence(Fault.unauthorized, Fault.unauthorized, Fault.unauthorized, then="crack")) as server:
        code, _, err = harness_run(tmp_path, small_tree, capsys, "--models", SPEC,
                                   "--config", openai_config(tmp_path, server, concurrency=1))
    assert code == 0 and server.count == 30
    assert f"model '{SPEC}': 3 of 30 calls failed (backend_error 3)" in err


def test_failfast_counts_only_an_unbroken_run_of_fatal_outcomes():
    fatal, answered = CallResult(None, "backend_error", "401", 1, None, 0.0, fatal=True), CallResult(None, None, None, 1, 0.1, 0.0)
    watch = FailFast(after=3)
    for _ in range(2):
        watch.observe("a", fatal)
    watch.observe("a", answered)  # the pattern is broken: model a is never stopped for
    for _ in range(5):
        watch.observe("a", fatal)
    watch.check()
    for _ in range(3):
        watch.observe("b", fatal)
    with pytest.raises(EarlyStop, match="'b'"):
        watch.check()


# -- 3. on exit ------------------------------------------------------------------------------------


def test_runs_without_calls_or_failures_pass_the_exit_check():
    passed_by_gate = records_from_json([{"model": "m", "called": False, "error": None}])
    summary = call_failures(passed_by_gate, ["m"])
    assert summary["m"]["calls"] == 0
    check_answered(summary, "r")  # nothing asked, nothing failed
    partly = call_failures(records_from_json([{"model": "m", "called": True, "error": "timeout", "error_detail": "no answer"},
                                              {"model": "m", "called": True, "error": None}]), ["m"])
    assert partly["m"] == {"calls": 2, "failed": 1, "errors": {"timeout": 1}, "example": "no answer"}
    check_answered(partly, "r")
    with pytest.raises(NoAnswersError) as raised:
        check_answered(call_failures(records_from_json([{"model": "m", "called": True, "error": "backend_error"}]), ["m"]), "r")
    assert raised.value.exit_code == 1


def test_a_clean_run_has_no_warning_and_exits_0(tmp_path, small_tree, capsys):
    code, _, err = harness_run(tmp_path, small_tree, capsys, "--models", "random")
    assert code == 0 and "warning" not in err
    run, _ = load_run(tmp_path / "results" / "r")
    assert run["call_failures"]["random"] == {"calls": 30, "failed": 0, "errors": {}, "example": None}


def test_one_model_with_a_wrong_key_stops_the_whole_run_and_is_named(tmp_path, small_tree):
    class Denied(Exception):
        status_code = 401

    _, plugin = scripted_classifier(lambda prompt: Denied("HTTP 401"))
    config = RunConfig(benchmark="folder", data_root=small_tree, models=["random", "scripted"], results_dir=tmp_path,
                       run_id="r", model_options={"scripted": {"concurrency": 4}})
    with pytest.raises(EarlyStop, match="requests to model 'scripted'"):
        Run(config, plugins.load_registry(extra_plugins=[("denied", plugin)])).execute()
    run, records = load_run(tmp_path / "r")
    assert run["stopped_early"]["model"] == "scripted"
    assert {r["model"] for r in records} == {"random", "scripted"}  # what was recorded before the stop is kept
    assert len({(r["sample_id"], r["model"]) for r in records}) == len(records)
