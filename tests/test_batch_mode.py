"""Batch mode (``harness run --batch``): provider batches through the real SDK clients against the loopback
server's batch APIs give the records of the live path, at batch prices, and survive being interrupted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import run_cli
from harness import plugins
from harness.batches import custom_id
from harness.errors import HarnessError
from harness.results import load_run
from harness.run.batch_mode import LEDGER_FILE, Ledger
from harness.run.runner import Run, RunConfig
from harness.testing.loopback import Fault, LoopbackServer

OPENAI = "openai:gpt-4o"
ANTHROPIC = "anthropic:claude-sonnet-4-5"
#: Fields that differ between a live record and a batch record of the same answer.
CALL_FIELDS = {"latency_s", "queued_s", "batch_id", "cost_usd"}
REPLIES = ["crack", "hole", "stain", "scratch", "It is a crack.", "no idea"]


pytestmark = pytest.mark.usefixtures("fake_api_keys")


def by_content(request) -> str:
    """The same reply to the same request, whichever order or path (live, batch) it came by."""
    digest = hashlib.sha256(json.dumps(request.messages, sort_keys=True).encode()).digest()
    return REPLIES[digest[0] % len(REPLIES)]


@pytest.fixture
def server():
    with LoopbackServer(by_content, max_seconds=120) as server:
        yield server
    assert not server.errors, server.errors


def config(tmp_path: Path, root: Path, server: LoopbackServer, run_id: str, models=(OPENAI, ANTHROPIC),
           use_cache: bool = False, **settings) -> RunConfig:
    options = {OPENAI: {"base_url": server.openai_base_url}, ANTHROPIC: {"base_url": server.anthropic_base_url}}
    return RunConfig(benchmark="folder", data_root=root, models=list(models),
                     model_options={spec: options[spec] for spec in models}, results_dir=tmp_path, run_id=run_id,
                     n_boot=20, use_cache=use_cache, batch_poll_s=0.01, **settings)


def records(run_dir: Path) -> dict[tuple, dict]:
    _, lines = load_run(run_dir)
    return {(r["sample_id"], r["model"], r["repeat"]): r for r in lines}


@pytest.mark.parametrize("data", ["demo images", "tiny benchmark"])
def test_a_batch_run_gives_the_records_of_a_live_run_at_half_price(tmp_path, small_tree, harness_tiny_benchmark,
                                                                   server, data):
    root = small_tree if data == "demo images" else harness_tiny_benchmark.root
    server.batches.polls_to_complete = 2  # each batch completes only on its third retrieval
    live = Run(config(tmp_path, root, server, "live"), plugins.load_registry()).execute()
    shown: list[tuple] = []
    batch = Run(config(tmp_path, root, server, "batch", batch=True), plugins.load_registry(),
                progress=lambda *update: shown.append(update)).execute()
    assert batch.run["status"] == "finished"
    live_records, batch_records = records(live.run_dir), records(batch.run_dir)
    assert live_records.keys() == batch_records.keys()
    asked = [k for k, r in live_records.items() if r["called"]]
    assert asked and len(asked) < len(live_records)  # the gate passes the good images: nobody is asked about them
    for key, record in live_records.items():
        other = batch_records[key]
        assert {f: v for f, v in record.items() if f not in CALL_FIELDS} == \
               {f: v for f, v in other.items() if f not in CALL_FIELDS}
        if record["called"]:
            assert other["batch_id"] and record["batch_id"] is None
            assert other["cost_usd"] == pytest.approx(record["cost_usd"] * 0.5)  # harness/prices.toml [batch_discount]
    assert {r["predicted_label"] for r in batch_records.values()} >= {"crack", "stain"}  # answers, not only errors
    # One batch per model, every asked request in one of them, once.
    assert sorted(s.protocol for s in server.batches.submissions) == ["anthropic", "openai"]
    assert server.batches.submitted_requests == len(asked)
    waiting = [update for update in shown if update[0] == "batches"]
    assert waiting[0] == ("batches", 0, len(asked)) and waiting[-1] == ("batches", len(asked), len(asked))
    ledger = Ledger(batch.run_dir).batches()
    assert [entry["collected"] for entry in ledger] == [True, True]
    assert not (batch.run_dir / "batch_requests").exists() or not any((batch.run_dir / "batch_requests").iterdir())


class Interrupted(KeyboardInterrupt):
    """Stands for Ctrl-C (or a kill) while the run waits for its batches."""


def interrupt_when_waiting(label: str, done: int, total: int) -> None:
    if label.startswith("batches"):
        raise Interrupted()


def test_a_run_interrupted_while_its_batches_run_resumes_without_submitting_again(tmp_path, small_tree, server):
    server.batches.polls_to_complete = 10**6  # never ends on its own
    with pytest.raises(Interrupted):
        Run(config(tmp_path, small_tree, server, "r", batch=True), plugins.load_registry(),
            progress=interrupt_when_waiting).execute()
    run_dir = tmp_path / "r"
    run, lines = load_run(run_dir)
    assert run["status"] == "interrupted" and not any(r["called"] for r in lines)
    ledger = [json.loads(line) for line in (run_dir / LEDGER_FILE).read_text().splitlines()]
    assert [line["event"] for line in ledger] == ["submitting", "created", "submitting", "created"]
    submitted = server.batches.submitted_requests
    assert submitted > 0

    server.batches.polls_to_complete = 0  # the provider has finished meanwhile
    resumed = Run(RunConfig.from_json(run["config"], tmp_path, "r"), plugins.load_registry()).execute(resume=True)
    assert resumed.run["status"] == "finished"
    assert server.batches.submitted_requests == submitted and len(server.batches.submissions) == 2
    answered = [r for r in records(run_dir).values() if r["called"]]
    assert len(answered) == submitted and all(r["batch_id"] and r["error"] is None for r in answered
                                              if r["predicted_label"])
    assert {r["batch_id"] for r in answered} == {s.batch_id for s in server.batches.submissions}


def test_expired_requests_are_submitted_again_on_resume(tmp_path, small_tree, server):
    server.responder = lambda request: Fault.expired()
    first = Run(config(tmp_path, small_tree, server, "r", models=(OPENAI,), batch=True), plugins.load_registry()).execute()
    expired = [r for r in first.records if r["called"]]
    assert expired and all(r["error"] == "timeout" and r["error_transient"] for r in expired)
    assert all("expired" in r["error_detail"] and r["batch_id"] for r in expired)
    submitted = server.batches.submitted_requests

    server.responder = by_content
    run, _ = load_run(tmp_path / "r")
    Run(RunConfig.from_json(run["config"], tmp_path, "r"), plugins.load_registry()).execute(resume=True)
    assert server.batches.submitted_requests == 2 * submitted  # each expired request once more, nothing else
    answered = [r for r in records(tmp_path / "r").values() if r["called"]]
    assert len(answered) == len(expired) and all(r["error"] != "timeout" for r in answered)
    assert {r["batch_id"] for r in answered} == {server.batches.submissions[1].batch_id}


@pytest.mark.parametrize("spec", [OPENAI, ANTHROPIC])
def test_errored_entries_are_backend_errors_classified_as_live_ones(tmp_path, small_tree, server, spec):
    def respond(request):
        label = by_content(request)
        return Fault.error(400, "bad image") if label == "crack" else Fault.server_error(500) if label == "hole" else label

    server.responder = respond
    result = Run(config(tmp_path, small_tree, server, "r", models=(spec,), batch=True), plugins.load_registry()).execute()
    kinds = {(r["error"], r["error_transient"]) for r in result.records if r["called"]
             and r["error"] == "backend_error"}
    assert kinds == {("backend_error", False), ("backend_error", True)}  # a 400 is permanent, a 500 transient
    assert all("sk-" not in (r["error_detail"] or "") for r in result.records)


def test_cached_answers_are_not_submitted(tmp_path, small_tree, server):
    Run(config(tmp_path, small_tree, server, "warm", models=(OPENAI,), use_cache=True, categories=["tile"]),
        plugins.load_registry()).execute()
    batch = Run(config(tmp_path, small_tree, server, "r", models=(OPENAI,), use_cache=True, batch=True),
                plugins.load_registry()).execute()
    asked = [r for r in batch.records if r["called"]]
    cached = [r for r in asked if r["cached"]]
    assert cached and all(r["category"] == "tile" and r["batch_id"] is None for r in cached)
    assert server.batches.submitted_requests == len(asked) - len(cached)
    # The batch's answers are cached in turn: a run again submits nothing.
    Run(config(tmp_path, small_tree, server, "again", models=(OPENAI,), use_cache=True, batch=True),
        plugins.load_registry()).execute()
    assert server.batches.submitted_requests == len(asked) - len(cached)


def test_batches_stay_within_the_request_limit(tmp_path, small_tree, server, monkeypatch):
    from harness.batches import BatchLimits
    from harness_openai import OpenAIClassifier

    monkeypatch.setattr(OpenAIClassifier, "batch_limits", BatchLimits(max_requests=7, max_bytes=10**9))
    result = Run(config(tmp_path, small_tree, server, "r", models=(OPENAI,), batch=True), plugins.load_registry()).execute()
    sizes = [len(s.custom_ids) for s in server.batches.submissions]
    assert max(sizes) == 7 and sum(sizes) == sum(1 for r in result.records if r["called"])


def test_batches_stay_within_the_byte_limit_of_the_uploaded_file(tmp_path, small_tree, server, monkeypatch):
    from harness.batches import BatchLimits
    from harness_openai import OpenAIClassifier

    limit = 1_500_000  # three of these requests (three PNG images each, about 0.47 MB)
    monkeypatch.setattr(OpenAIClassifier, "batch_limits", BatchLimits(max_requests=10**6, max_bytes=limit))
    result = Run(config(tmp_path, small_tree, server, "r", models=(OPENAI,), batch=True), plugins.load_registry()).execute()
    uploads = [len(content) for file_id, content in server.batches.files.items() if "-output" not in file_id]
    assert len(uploads) == len(server.batches.submissions) > 1 and max(uploads) <= limit
    assert sum(len(s.custom_ids) for s in server.batches.submissions) == sum(1 for r in result.records if r["called"])


def test_a_request_larger_than_a_whole_batch_stops_the_run_before_anything_is_submitted(tmp_path, small_tree, server,
                                                                                        monkeypatch):
    from harness.batches import BatchLimits
    from harness_openai import OpenAIClassifier

    monkeypatch.setattr(OpenAIClassifier, "batch_limits", BatchLimits(max_requests=10**6, max_bytes=100_000))
    with pytest.raises(HarnessError, match=r"openai:gpt-4o.*the request for .* is [\d,]+ bytes, over the 100,000 one batch"):
        Run(config(tmp_path, small_tree, server, "r", models=(OPENAI,), batch=True), plugins.load_registry()).execute()
    assert server.batches.submissions == []


def test_a_model_that_cannot_batch_is_refused_and_one_model_may_batch_alone(tmp_path, small_tree, server, capsys):
    with pytest.raises(HarnessError, match="'random' cannot run in batch mode"):
        Run(RunConfig(benchmark="folder", data_root=small_tree, models=["random"], results_dir=tmp_path, batch=True),
            plugins.load_registry())
    mixed = config(tmp_path, small_tree, server, "mixed", use_cache=False)
    mixed.model_options[ANTHROPIC]["batch"] = True  # only this one batches
    result = Run(mixed, plugins.load_registry()).execute()
    by_model = {spec: {bool(r["batch_id"]) for r in result.records if r["called"] and r["model"] == spec}
                for spec in (OPENAI, ANTHROPIC)}
    assert by_model == {OPENAI: {False}, ANTHROPIC: {True}}
    assert [s.protocol for s in server.batches.submissions] == ["anthropic"]
    code, shown, err = run_cli("batches", "mixed", "--results-dir", tmp_path, capsys=capsys)
    assert code == 0, err
    assert server.batches.submissions[0].batch_id in shown and ANTHROPIC in shown and "ended" in shown


def test_a_kill_while_a_batch_is_created_is_the_one_window_and_resume_says_so(tmp_path, small_tree, server, monkeypatch,
                                                                             caplog):
    """The provider created the batch but the process died before its id reached the ledger: the resume cannot
    know the batch, submits its requests again, and warns, as documented (the only way to pay twice)."""
    from harness_openai import OpenAIClassifier

    created = OpenAIClassifier.submit_batch

    async def created_then_killed(self, requests):
        await created(self, requests)
        raise Interrupted()

    monkeypatch.setattr(OpenAIClassifier, "submit_batch", created_then_killed)
    with pytest.raises(Interrupted):
        Run(config(tmp_path, small_tree, server, "r", models=(OPENAI,), batch=True), plugins.load_registry()).execute()
    monkeypatch.setattr(OpenAIClassifier, "submit_batch", created)
    run, _ = load_run(tmp_path / "r")
    Run(RunConfig.from_json(run["config"], tmp_path, "r"), plugins.load_registry()).execute(resume=True)
    assert len(server.batches.submissions) == 2
    assert "has no batch id (killed while it was created)" in caplog.text


def test_a_refused_batch_stops_the_run_with_the_reason_and_resume_submits_it(tmp_path, small_tree, server, monkeypatch,
                                                                            caplog):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-abcdefghijklmnop")
    original = server.batches.handle
    server.batches.handle = lambda method, path, headers, raw: (
        (401, json.dumps({"error": {"message": f"Incorrect API key provided: {headers['authorization'][7:]}",
                                    "type": "invalid_request_error"}}).encode(), "application/json")
        if "wrong" in headers.get("authorization", "") else original(method, path, headers, raw))
    with pytest.raises(HarnessError, match="creating a batch of .* requests failed: AuthenticationError") as refused:
        Run(config(tmp_path, small_tree, server, "r", models=(OPENAI,), batch=True), plugins.load_registry()).execute()
    assert "sk-wrong-key" not in str(refused.value)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdefghijklmnop1234")
    run, _ = load_run(tmp_path / "r")
    resumed = Run(RunConfig.from_json(run["config"], tmp_path, "r"), plugins.load_registry()).execute(resume=True)
    assert resumed.run["status"] == "finished" and len(server.batches.submissions) == 1
    assert "killed while" not in caplog.text  # a refusal is no window: no batch exists


def test_custom_ids_are_valid_for_both_providers_and_stable():
    one = custom_id(OPENAI, "tile/test/crack/000.png", 0, "abc")
    assert one == custom_id(OPENAI, "tile/test/crack/000.png", 0, "abc")
    assert len({one, custom_id(ANTHROPIC, "tile/test/crack/000.png", 0, "abc"),
                custom_id(OPENAI, "tile/test/crack/000.png", 1, "abc")}) == 3
    import re

    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", one)


def test_batch_mode_under_the_ray_executor_gives_the_local_executors_records(ray_cluster, tmp_path, small_tree, server):
    # The deferred requests are the driver's on either executor: the same batches, answers and prices.
    local = Run(config(tmp_path, small_tree, server, "local", models=(OPENAI,), batch=True), plugins.load_registry()).execute()
    registry = plugins.load_registry()
    ray_config = config(tmp_path, small_tree, server, "ray", models=(OPENAI,), batch=True, executor="ray")
    on_ray = registry.get("executors", "ray").obj(ray_config, registry).execute()
    assert on_ray.run["provenance"]["executor"]["name"] == "ray"
    different = CALL_FIELDS - {"cost_usd"}  # the batch ids differ; the price must not
    mine, theirs = records(local.run_dir), records(on_ray.run_dir)
    assert mine.keys() == theirs.keys()
    assert all({f: v for f, v in mine[k].items() if f not in different} ==
               {f: v for f, v in theirs[k].items() if f not in different} for k in mine)
    sizes = [len(s.custom_ids) for s in server.batches.submissions]
    assert len(sizes) == 2 and sizes[0] == sizes[1] > 0, "one batch from each run, of the same requests"
    assert all(r["batch_id"] for r in theirs.values() if r["called"])


def test_a_batch_that_failed_validation_gives_transient_errors_naming_why_and_resume_submits_again(
        tmp_path, small_tree, server):
    server.batches.fail_validation = "The model gpt-4o is not available for batch jobs."
    first = Run(config(tmp_path, small_tree, server, "r", models=(OPENAI,), batch=True), plugins.load_registry()).execute()
    asked = [r for r in first.records if r["called"]]
    assert asked and all(r["error"] == "backend_error" and r["error_transient"] for r in asked)
    assert all("(failed: invalid_request: The model gpt-4o is not available for batch jobs.) gave no result"
               in r["error_detail"] for r in asked)
    server.batches.fail_validation = None
    run, _ = load_run(tmp_path / "r")
    resumed_config = RunConfig.from_json(run["config"], tmp_path, "r")
    resumed_config.use_cache = False
    resumed = Run(resumed_config, plugins.load_registry()).execute(resume=True)
    assert [len(s.custom_ids) for s in server.batches.submissions] == [len(asked), len(asked)]
    answered = records(resumed.run_dir)
    again = [answered[(r["sample_id"], r["model"], r["repeat"])] for r in asked]
    assert all(r["error"] not in ("backend_error", "timeout") and r["batch_id"] for r in again), "answered this time"
