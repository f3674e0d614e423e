"""`harness run --resume` asks transient failures again, keeps one record per key, survives being killed.

Waits are shortened or never reached (max_attempts 1-2, a tiny rate-limit budget); no test asserts a duration.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections import Counter

import pytest

from harness import plugins
from harness.run import resume
from harness.results import load_run, read_jsonl
from harness.run.resume import SUPERSEDED_FILE, failure_is_transient, record_key
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier, write_tiny_benchmark
from harness.testing.loopback import Fault, LoopbackServer
from harness.testing.loopback_faults import fault_mix, first_listed_class
from conftest import run_cli

OPENAI_KEY = "sk-resume-retry-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-resume-retry-0123456789"
MODELS = ["openai:gpt-4o", "anthropic:claude-test"]
FAST_FAULTS = (Fault.rate_limited(retry_after=0.01), Fault.rate_limited(), Fault.server_error(500),
               Fault.server_error(503), Fault.overloaded(), Fault.reset())


class Busy(Exception):
    """A transient error of the scripted backend."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_benchmark(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def keys(monkeypatch):
    pytest.importorskip("openai")
    pytest.importorskip("anthropic")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)


def write_config(path, server, models=MODELS, **options):
    bases = {"openai": server.openai_base_url, "anthropic": server.anthropic_base_url}
    text = ""
    for spec in models:
        text += f'[model-options."{spec}"]\nbase_url = "{bases[spec.split(":")[0]]}"\n'
        text += "".join(f"{name} = {json.dumps(value)}\n" for name, value in options.items())
    path.write_text(text)
    return path


def body_counts(server) -> Counter:
    """How many times each distinct request, (protocol, body hash), reached the server."""
    return Counter((r.protocol, hashlib.sha256(json.dumps(r.body, sort_keys=True).encode()).hexdigest())
                   for r in server.requests)


def assert_one_record_per_key(records):
    counts = Counter(record_key(r) for r in records)
    assert counts and max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]


# -- (b) a lossy run finished by --resume through the CLI ---------------------------------------------


def test_resume_finishes_samples_lost_to_faults_and_counts_every_attempt(tiny, tmp_path, keys, capsys):
    results = tmp_path / "results"
    responder = fault_mix(first_listed_class, share=0.5, seed=5, faults=FAST_FAULTS)
    with LoopbackServer(responder, max_seconds=120) as server:
        # One attempt and a tiny rate-limit budget: about half the requests are lost.
        config = write_config(tmp_path / "run.toml", server, max_attempts=1, rate_limit_budget_s=0.001)
        code, _, err = run_cli("run", "--benchmark", "folder", "--data-root", tiny, "--gate", "none",
                               "--models", ",".join(MODELS), "--config", config, "--results-dir", results,
                               "--run-id", "lossy", "--no-cache", capsys=capsys)
        run, records = load_run(results / "lossy")
        assert run["status"] == "finished", err
        lost = [r for r in records if r["error"] is not None]
        assert lost and all(r["error"] in ("backend_error", "timeout") and r["error_transient"] is True for r in lost)
        assert all(run["metrics"][r["model"]]["outcomes"][r["error"]] > 0 for r in lost)
        asked = []
        for _ in range(10):  # the server stays faulty: each resume finishes about half of what is left
            before = [r for r in load_run(results / "lossy")[1] if r["error"] is not None]
            if not before:
                break
            asked.append(len(before))
            code, _, err = run_cli("run", "--results-dir", results, "--resume", "lossy", "--no-cache", capsys=capsys)
            assert code == 0, err
        counts = body_counts(server)
    run, records = load_run(results / "lossy")
    assert len(asked) >= 2, "the faults made at least one resume lose samples again"
    assert run["status"] == "finished" and len(records) == 24
    assert_one_record_per_key(records)
    assert all(r["error"] is None and r["error_transient"] is None for r in records)
    # attempts_total counts every request the server saw for that sample and model, across all resumes.
    for model in MODELS:
        protocol = model.split(":")[0]
        assert sorted(r["attempts_total"] for r in records if r["model"] == model) == \
            sorted(n for (p, _), n in counts.items() if p == protocol)
    assert sum(r["attempts_total"] for r in records) == server.count
    assert any(r["attempts_total"] > r["attempts"] for r in records)
    resumed = run["resumed"]
    assert [e["asked_again"] for e in resumed] == asked
    assert all(e["asked_again_why"] == {"transient": e["asked_again"]} for e in resumed)
    history = read_jsonl(results / "lossy" / SUPERSEDED_FILE)
    assert len(history) == sum(asked) and all(e["why"] == "transient" for e in history)
    assert len({(e["resume"], *record_key(e["record"])) for e in history}) == len(history)
    for model in MODELS:  # the metrics are the final records'
        figures = run["metrics"][model]
        assert figures["outcomes"]["backend_error"] == figures["outcomes"]["timeout"] == 0 and figures["n"] == 12
        assert figures["usage"]["attempts_total"] == sum(r["attempts_total"] for r in records if r["model"] == model)
    assert OPENAI_KEY not in (results / "lossy" / SUPERSEDED_FILE).read_text()


# -- (c) permanent failures are kept unless --retry-errors ----------------------------------------------


def revoked_after(answered: int):
    """A responder answering the first ``answered`` requests, then 401 (a key revoked mid-run)."""
    count = Counter()
    lock = threading.Lock()

    def respond(request):
        with lock:
            count["n"] += 1
            n = count["n"]
        return first_listed_class(request) if n <= answered else Fault.unauthorized(request)

    return respond


def test_permanent_failures_are_kept_on_resume_and_asked_again_with_retry_errors(tiny, tmp_path, keys, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny, data)
    (data / "tile" / "test" / "crack" / "000.png").write_bytes(b"not a png")  # the data's fault: bad_input
    results = tmp_path / "results"
    with LoopbackServer(revoked_after(5), max_seconds=120) as server:
        config = write_config(tmp_path / "run.toml", server, models=["openai:gpt-4o"], concurrency=1)
        run_cli("run", "--benchmark", "folder", "--data-root", data, "--gate", "none", "--models", "openai:gpt-4o",
                "--config", config, "--results-dir", results, "--run-id", "revoked", "--no-cache", capsys=capsys)
        _, first = load_run(results / "revoked")
        unauthorized = [r for r in first if r["error"] == "backend_error"]
        assert len(unauthorized) == 6 and all(r["error_transient"] is False and "401" in r["error_detail"]
                                              for r in unauthorized)
        assert [r["error"] for r in first if r["error"] not in (None, "backend_error")] == ["bad_input"]
        assert all(OPENAI_KEY not in r["error_detail"] for r in unauthorized)

        server.responder = first_listed_class  # the key works again
        sent = server.count
        code, _, err = run_cli("run", "--results-dir", results, "--resume", "revoked", "--no-cache", capsys=capsys)
        assert code == 0, err
        run, kept = load_run(results / "revoked")
        assert server.count == sent, "a permanent failure is not asked again without --retry-errors"
        assert kept == first and run["resumed"][0]["asked_again"] == 0
        assert not (results / "revoked" / SUPERSEDED_FILE).exists()

        code, _, err = run_cli("run", "--results-dir", results, "--resume", "revoked", "--retry-errors", "--no-cache",
                               capsys=capsys)
        assert code == 0, err
        assert server.count == sent + 6
    run, records = load_run(results / "revoked")
    assert_one_record_per_key(records)
    assert Counter(r["error"] for r in records) == Counter({None: 11, "bad_input": 1})
    asked = {record_key(r) for r in unauthorized}
    assert all(r["attempts"] == 1 and r["attempts_total"] == 2 for r in records if record_key(r) in asked)
    assert run["resumed"][1]["asked_again"] == 6 and run["resumed"][1]["asked_again_why"] == {"retry_errors": 6}
    assert run["resumed"][1]["retry_errors"] is True
    history = read_jsonl(results / "revoked" / SUPERSEDED_FILE)
    assert [e["record"] for e in history] == unauthorized and {e["why"] for e in history} == {"retry_errors"}


def test_retry_errors_needs_resume(capsys):
    code, _, err = run_cli("run", "--models", "random", "--retry-errors", capsys=capsys)
    assert code == 2 and "--resume RUN_ID" in err


# -- (d) a resume killed while rewriting still resumes without loss or duplicates -------------------------


def lossy_run(tiny, tmp_path, down: set[str]):
    """A run of a scripted backend that fails transiently (twice, then gives up) on the requests in ``down``."""

    calls = Counter()

    def answer(prompt):
        calls[prompt.request_hash] += 1  # one request per sample (one model, one class order)
        return Busy("503") if prompt.request_hash in down else prompt.candidates[0].name

    _, plugin = scripted_classifier(answer, transient=(Busy,))
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    config = RunConfig(benchmark="folder", data_root=tiny, gate="none", models=["scripted"],
                       model_options={"scripted": {"max_attempts": 2}}, results_dir=tmp_path, run_id="r",
                       n_boot=20, use_cache=False, retry_initial_s=0.001, retry_max_s=0.002)
    return registry, config, calls


@pytest.fixture
def scripted_outage(tiny, tmp_path):
    """A finished run whose backend failed transiently on a third of the samples; the outage then ends."""
    down: set[str] = set()
    registry, config, calls = lossy_run(tiny, tmp_path, down)
    # Which samples fail: every third request, by hash (known once a run has made the prompts).
    probe = Run(config, registry).execute()
    shutil.rmtree(tmp_path / "r")
    down.update(sorted(calls)[::3])
    calls.clear()
    first = Run(config, registry).execute()
    lost = [r for r in first.records if r["error"] is not None]
    assert len(probe.records) == 12 and len(lost) == 4 and all(r["attempts"] == 2 for r in lost)
    down.clear()
    return registry, config, lost


def resume_run(config, registry):
    return Run(RunConfig.from_json(load_run(config.results_dir / "r")[0]["config"], config.results_dir, "r"),
               registry).execute(resume=True)


def test_a_resume_killed_between_its_two_writes_resumes_cleanly(scripted_outage, monkeypatch):
    registry, config, lost = scripted_outage
    run_dir = config.results_dir / "r"
    real_write = resume.write_jsonl_atomic

    def killed_at_samples(path, records):
        if path.name == "samples.jsonl":
            path.with_name(path.name + ".tmp").write_text('{"half a rec')  # the kill lands mid-write
            raise KeyboardInterrupt
        real_write(path, records)

    monkeypatch.setattr(resume, "write_jsonl_atomic", killed_at_samples)
    with pytest.raises(KeyboardInterrupt):
        resume_run(config, registry)
    assert len(read_jsonl(run_dir / SUPERSEDED_FILE)) == 4 and len(load_run(run_dir)[1]) == 12
    monkeypatch.setattr(resume, "write_jsonl_atomic", real_write)

    result = resume_run(config, registry)
    _, records = load_run(run_dir)
    assert_one_record_per_key(records)
    assert len(records) == 12 and all(r["error"] is None for r in records)
    history = read_jsonl(run_dir / SUPERSEDED_FILE)
    assert [e["record"] for e in history] == lost, "each replaced record kept once"
    lost_keys = {record_key(r) for r in lost}
    assert all(r["attempts_total"] == 3 for r in records if record_key(r) in lost_keys)
    assert not list(run_dir.glob("*.tmp"))
    assert result.run["resumed"][-1]["asked_again"] == 4 and result.run["metrics"]["scripted"]["outcomes"]["backend_error"] == 0


def test_a_resume_killed_after_its_rewrite_still_counts_the_earlier_attempts(scripted_outage, monkeypatch):
    registry, config, lost = scripted_outage
    run_dir = config.results_dir / "r"

    async def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Run, "_run_all", killed)
        with pytest.raises(KeyboardInterrupt):
            resume_run(config, registry)
    run, after_kill = load_run(run_dir)
    assert run["status"] == "interrupted" and len(after_kill) == 8  # the four failures left samples.jsonl
    (run_dir / "superseded.jsonl.tmp").write_text("garbage from another kill")

    result = resume_run(config, registry)
    _, records = load_run(run_dir)
    assert_one_record_per_key(records)
    assert len(records) == 12 and all(r["error"] is None for r in records)
    lost_keys = {record_key(r) for r in lost}
    assert all(r["attempts_total"] == 3 for r in records if record_key(r) in lost_keys)
    assert [e["record"] for e in read_jsonl(run_dir / SUPERSEDED_FILE)] == lost
    assert [e["asked_again"] for e in result.run["resumed"]] == [4, 0]


def test_a_key_recorded_twice_by_an_older_harness_keeps_its_first_record(scripted_outage):
    registry, config, lost = scripted_outage
    samples = config.results_dir / "r" / "samples.jsonl"
    lines = samples.read_text().splitlines(keepends=True)
    samples.write_text("".join(lines) + lines[0])
    resume_run(config, registry)
    _, records = load_run(config.results_dir / "r")
    assert_one_record_per_key(records) is None and len(records) == 12 and records[0] == json.loads(lines[0])


# -- records from before error_transient ------------------------------------------------------------------


@pytest.mark.parametrize("record, transient", [
    ({"error": None}, False),
    ({"error": "timeout", "error_detail": "no answer within 120 s"}, True),
    ({"error": "backend_error", "error_detail": "gave up after 4 attempts; last: RateLimitError: 429"}, True),
    ({"error": "backend_error", "error_detail": "AuthenticationError: 401"}, False),
    ({"error": "unparseable", "error_detail": None}, False),
    ({"error": "backend_error", "error_detail": "gave up after 4 attempts", "error_transient": False}, False),
])
def test_old_records_without_the_field_are_read_by_their_kind_and_detail(record, transient):
    assert failure_is_transient(record) is transient
