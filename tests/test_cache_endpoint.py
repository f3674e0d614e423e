"""The response cache keys on the endpoint that answers, not only on the options as written.

Two loopback servers serve the same model name with different answers; runs pick
them through the environment variable and through the option, and each run must
record its own server's answers, through the real openai and anthropic SDKs.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

pytest.importorskip("openai")
pytest.importorskip("anthropic")

from harness import plugins
from harness.backend_kit import public_base_url
from harness.run.cache import CACHE_FORMAT, ResponseCache, default_path
from harness.classifiers import ClassifierOptions
from harness.run.dispatch import Dispatcher
from harness.errors import HarnessError
from harness.results import load_run
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier
from harness.testing.loopback import Answer, LoopbackServer
from harness.types import ClassInfo, Message, Prompt, Response, TextPart
from harness_anthropic.classifier import AnthropicClassifier, AnthropicOptions
from harness_openai.classifier import OpenAIClassifier, OpenAIOptions

OPENAI_KEY = "sk-test-endpoint-key-0123456789"
ANTHROPIC_KEY = "sk-ant-test-endpoint-key-0123456789"
SECRET_ENV = ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID")


@pytest.fixture(autouse=True)
def environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    for name in SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))  # a cold cache of its own


def servers(first: str = "crack", second: str = "stain"):
    """Two servers of one model name, with different answers and different served model names."""
    return LoopbackServer(Answer(first, model="served-by-a")), LoopbackServer(Answer(second, model="served-by-b"))


def run(tmp_path, root, spec: str, run_id: str, options: dict):
    config = RunConfig(
        benchmark="folder", data_root=root, models=[spec], categories=["tile"], model_options={spec: options},
        results_dir=tmp_path / "results", run_id=run_id, n_boot=50, output_formats=["csv"],
    )
    result = Run(config, plugins.load_registry()).execute()
    return load_run(result.run_dir)


def called(records):
    found = [r for r in records if r["called"]]
    assert found, "the gate flagged nothing: no model was asked"
    return found


def answered_by(records, answer: str, served: str, cached: bool) -> bool:
    return all((r["response"], r["served_model"], r["cached"], r["error"]) == (answer, served, cached, None)
               and r["attempts"] == (0 if cached else 1) for r in called(records))


# -- two servers, one model name -------------------------------------------------------------------


def test_openai_runs_against_two_servers_each_record_their_own_answers(tmp_path, small_tree, monkeypatch):
    a, b = servers()
    spec = "openai:gpt-4o-mini"
    with a, b:
        _, first = run(tmp_path, small_tree, spec, "a", {"base_url": a.openai_base_url})
        monkeypatch.setenv("OPENAI_BASE_URL", b.openai_base_url)  # the server chosen by environment variable
        run_b, second = run(tmp_path, small_tree, spec, "b-env", {})
        asked_b = b.count
        monkeypatch.delenv("OPENAI_BASE_URL")
        _, third = run(tmp_path, small_tree, spec, "b-option", {"base_url": b.openai_base_url + "/"})
        _, fourth = run(tmp_path, small_tree, spec, "a-again", {"base_url": a.openai_base_url})
    assert answered_by(first, "crack", "served-by-a", cached=False)
    assert answered_by(second, "stain", "served-by-b", cached=False)  # not server a's cached answers
    assert asked_b == len(called(second))
    # The same server by option (trailing slash and all) is the same endpoint: answered from the cache.
    assert answered_by(third, "stain", "served-by-b", cached=True) and b.count == asked_b
    assert answered_by(fourth, "crack", "served-by-a", cached=True) and a.count == len(called(first))
    assert all(r["predicted_label"] == "stain" for r in called(second))
    described = run_b["provenance"]["classifiers"][spec]
    assert described["endpoint"] == {"base_url": public_base_url(b.openai_base_url)}
    assert described["base_url"] == described["endpoint"]["base_url"]
    header = (tmp_path / "results" / "b-env" / "samples.csv").read_text().splitlines()[0].split(",")
    assert "served_model" in header


def test_anthropic_runs_against_two_servers_each_record_their_own_answers(tmp_path, small_tree, monkeypatch):
    a, b = servers("scratch", "hole")
    spec = "anthropic:claude-test"
    cached = {"cache": True}  # no temperature is sent by default, so caching is asked for
    with a, b:
        _, first = run(tmp_path, small_tree, spec, "a", {**cached, "base_url": a.anthropic_base_url})
        monkeypatch.setenv("ANTHROPIC_BASE_URL", b.anthropic_base_url)
        run_b, second = run(tmp_path, small_tree, spec, "b-env", cached)
        asked_b = b.count
        _, again = run(tmp_path, small_tree, spec, "b-env-again", cached)
        monkeypatch.delenv("ANTHROPIC_BASE_URL")
        _, legacy = run(tmp_path, small_tree, spec, "b-legacy", {**cached, "base_url": b.anthropic_base_url,
                                                                   "api_version": "2023-06-01"})
    assert answered_by(first, "scratch", "served-by-a", cached=False)
    assert answered_by(second, "hole", "served-by-b", cached=False)
    assert answered_by(again, "hole", "served-by-b", cached=True)
    # Another API version is another endpoint: asked again, and the header sent is the version keyed.
    assert answered_by(legacy, "hole", "served-by-b", cached=False) and b.count == asked_b + len(called(legacy))
    assert {r.headers["anthropic-version"] for r in b.requests[asked_b:]} == {"2023-06-01"}
    described = run_b["provenance"]["classifiers"][spec]
    sent = b.requests[0].headers["anthropic-version"]
    assert described["endpoint"] == {"base_url": public_base_url(b.anthropic_base_url), "api_version": sent}
    assert described["base_url"] == described["endpoint"]["base_url"] and described["api_version"] == sent


def test_no_key_or_url_credential_reaches_the_cache_file_or_the_run(tmp_path, small_tree, monkeypatch):
    # aiohttp refuses credentials in a URL next to the SDK's Authorization header; httpx sends them.
    monkeypatch.setenv("HARNESS_HTTP_BACKEND", "httpx")
    with LoopbackServer(Answer("crack")) as server:
        url = server.openai_base_url.replace("http://", "http://alice:hunter2pass@")
        _, records = run(tmp_path, small_tree, "openai:gpt-4o", "creds", {"base_url": url})
    assert answered_by(records, "crack", "gpt-4o", cached=False)
    stored = b"".join(p.read_bytes() for p in default_path().parent.iterdir() if p.is_file())
    assert b"responses" in stored  # the file was read (schema text), not an empty folder
    assert OPENAI_KEY.encode() not in stored and b"hunter2pass" not in stored and b"alice" not in stored
    written = b"".join(p.read_bytes() for p in (tmp_path / "results" / "creds").iterdir() if p.is_file())
    assert OPENAI_KEY.encode() not in written and b"hunter2pass" not in written
    with sqlite3.connect(default_path()) as db:
        [(endpoint,)] = db.execute("SELECT DISTINCT endpoint FROM responses").fetchall()
    assert json.loads(endpoint) == {"base_url": public_base_url(server.openai_base_url)}


# -- how endpoints are resolved -------------------------------------------------------------------


def test_openai_endpoint_option_then_environment_then_default(monkeypatch):
    def endpoint(**options):
        return OpenAIClassifier("gpt-4o", OpenAIOptions(**options)).endpoint()

    assert endpoint() == {"base_url": "https://api.openai.com/v1"}
    monkeypatch.setenv("OPENAI_BASE_URL", "   ")  # blank: unset, as the key and token-field logic read it
    assert endpoint() == {"base_url": "https://api.openai.com/v1"}
    monkeypatch.setenv("OPENAI_BASE_URL", "HTTP://Proxy.Example:8000/v1/")
    assert endpoint() == {"base_url": "http://proxy.example:8000/v1"}
    assert endpoint(base_url="http://u:p4ssw0rd@127.0.0.1:9/v1") == {"base_url": "http://127.0.0.1:9/v1"}
    leaky = endpoint(base_url="http://127.0.0.1:9/v1?api_key=sk-secret-in-the-query-0123")
    assert "sk-secret" not in json.dumps(leaky)


def test_the_base_url_leaves_the_options_for_the_endpoint_so_option_and_environment_share_a_key(monkeypatch):
    option = OpenAIClassifier("gpt-4o", OpenAIOptions(base_url="http://127.0.0.1:9/v1"))
    assert "base_url" not in option.answer_options()
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    environment = OpenAIClassifier("gpt-4o", OpenAIOptions())
    keys = [Dispatcher(c, cache=ResponseCache(default_path())).cache_key(_prompt()) for c in (option, environment)]
    assert keys[0] == keys[1]


def test_anthropic_endpoint_holds_the_version_sent_and_api_headers_from_the_environment(monkeypatch):
    import anthropic

    clf = AnthropicClassifier("claude-test", AnthropicOptions())
    assert clf.endpoint() == {"base_url": "https://api.anthropic.com",
                              "api_version": anthropic._constants.ANTHROPIC_API_VERSION}
    monkeypatch.setenv("ANTHROPIC_CUSTOM_HEADERS", "anthropic-beta: vision-2\nX-Proxy-Token: s3cr3t-proxy-token")
    with LoopbackServer("crack") as server:
        clf = AnthropicClassifier("claude-test", AnthropicOptions(base_url=server.anthropic_base_url))

        async def once():
            try:
                return await Dispatcher(clf).call(_prompt())
            finally:
                await clf.aclose()

        assert asyncio.run(once()).error is None
    endpoint = clf.endpoint()
    assert endpoint["env_headers"] == {"anthropic-beta": "vision-2"}  # the proxy's header is not key material
    assert "s3cr3t" not in json.dumps(endpoint)
    assert server.requests[0].headers["anthropic-beta"] == "vision-2"
    assert server.requests[0].headers["anthropic-version"] == endpoint["api_version"]


def test_a_plugins_endpoint_separates_cache_entries_for_any_backend(tmp_path):
    calls = []

    def script(prompt):
        calls.append(prompt.request_hash)
        return Response(text="crack")

    base, _ = scripted_classifier(script)
    at = {name: type(name, (base,), {"endpoint": lambda self, n=name: {"base_url": f"http://{n}/v1"}})
          for name in ("one", "two")}
    cache = ResponseCache(tmp_path / "r.sqlite")

    def ask(name):
        return asyncio.run(Dispatcher(at[name](None, ClassifierOptions(cache=True)), cache=cache).call(_prompt()))

    assert [ask(n).cached for n in ("one", "two", "one", "two")] == [False, False, True, True]
    assert len(calls) == 2
    groups = {(endpoint, count) for _, _, endpoint, count in cache.entry_counts()}
    assert groups == {('{"base_url":"http://one/v1"}', 1), ('{"base_url":"http://two/v1"}', 1)}


def test_hf_endpoint_changes_with_the_checkpoint_files(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from harness_hf.classifier import HFClassifier, HFOptions

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights one")
    first = HFClassifier(str(model), HFOptions(device="cpu")).endpoint()
    assert first["checkpoint"] == str(model.resolve()) and first["revision"] is None
    assert HFClassifier(str(model), HFOptions(device="cpu")).endpoint() == first  # stable while nothing changes
    (model / "model.safetensors").write_bytes(b"weights two, re-saved")  # same name, other weights
    assert HFClassifier(str(model), HFOptions(device="cpu")).endpoint()["files"] != first["files"]


# -- cache files from before the endpoint was keyed ------------------------------------------------


def test_an_old_cache_file_loses_its_unkeyed_answers_and_keeps_its_memo(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the layout written before the endpoint column existed
        db.executescript("""
            CREATE TABLE responses (key TEXT PRIMARY KEY, plugin TEXT NOT NULL, model TEXT, response TEXT NOT NULL,
                                    latency_s REAL, created_at TEXT DEFAULT CURRENT_TIMESTAMP);
            CREATE TABLE prepared_samples (fingerprint TEXT PRIMARY KEY, context TEXT NOT NULL, prepared TEXT NOT NULL,
                                           created_at TEXT DEFAULT CURRENT_TIMESTAMP);
            INSERT INTO responses (key, plugin, model, response) VALUES ('k', 'openai', 'gpt-4o', '{"text": "crack"}');
            INSERT INTO prepared_samples (fingerprint, context, prepared) VALUES ('f', 'c', '{}');
        """)
    cache = ResponseCache(path)
    assert cache.entry_counts() == [] and cache.memo_count() == 1 and cache.get("k") is None
    cache.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == CACHE_FORMAT
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(HarnessError, match="newer harness"):
        ResponseCache(path)


def _prompt() -> Prompt:
    return Prompt(template="t", messages=[Message("user", [TextPart("Which class?")])],
                  candidates=[ClassInfo("crack", "crack")], hash="h", request_hash="r1")
