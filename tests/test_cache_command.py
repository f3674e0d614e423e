"""``harness cache info`` and ``harness cache clear``, on a cache filled by runs against two loopback servers."""

from __future__ import annotations

import io
import json

import pytest

pytest.importorskip("openai")

from conftest import run_cli

from harness import plugins
from harness.backend_kit import public_base_url
from harness.run.cache import default_path
from harness.run.runner import Run, RunConfig
from harness.testing.loopback import Answer, LoopbackServer

SPEC = "openai:gpt-4o-mini"


@pytest.fixture(autouse=True)
def environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cache-command-0123456789")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))


def run(tmp_path, root, run_id: str, options: dict) -> list[dict]:
    config = RunConfig(benchmark="folder", data_root=root, models=[SPEC], categories=["tile"],
                       model_options={SPEC: options}, results_dir=tmp_path / "results", run_id=run_id, n_boot=50)
    return [r for r in Run(config, plugins.load_registry()).execute().records if r["called"]]


def info(capsys) -> dict:
    code, out, err = run_cli("cache", "info", "--json", capsys=capsys)
    assert code == 0, err
    return json.loads(out)


def test_info_and_clear_by_model_and_endpoint(tmp_path, small_tree, capsys, monkeypatch):
    with LoopbackServer(Answer("crack")) as a, LoopbackServer(Answer("stain")) as b:
        asked = len(run(tmp_path, small_tree, "a", {"base_url": a.openai_base_url}))
        monkeypatch.setenv("OPENAI_BASE_URL", b.openai_base_url)
        assert len(run(tmp_path, small_tree, "b", {})) == asked > 0
        monkeypatch.delenv("OPENAI_BASE_URL")

        before = info(capsys)
        assert before["path"] == str(default_path()) and before["size_bytes"] > 0
        assert before["entries"] == 2 * asked and before["memo_entries"] > 0
        by_endpoint = {g["endpoint"]["base_url"]: g["entries"] for g in before["groups"] if g["spec"] == SPEC}
        url_a, url_b = public_base_url(a.openai_base_url), public_base_url(b.openai_base_url)
        assert by_endpoint == {url_a: asked, url_b: asked}

        code, out, _ = run_cli("cache", "info", capsys=capsys)  # the table people read
        assert code == 0 and url_a in out and url_b in out and str(default_path()) in " ".join(out.split())

        code, out, _ = run_cli("cache", "clear", "--model", SPEC, "--endpoint", a.openai_base_url + "/", capsys=capsys)
        assert code == 0 and f"removed {asked} cached responses" in out
        after = info(capsys)
        assert after["entries"] == asked and [g["endpoint"]["base_url"] for g in after["groups"]] == [url_b]

        code, out, _ = run_cli("cache", "clear", "--model", "openai:other-model", capsys=capsys)
        assert code == 0 and "removed 0 cached responses (none matched" in out

        sent = a.count
        again = run(tmp_path, small_tree, "a-again", {"base_url": a.openai_base_url})
        assert not any(r["cached"] for r in again) and a.count == sent + asked  # its entries are gone: asked again


def test_clear_everything_asks_first(tmp_path, small_tree, capsys, monkeypatch):
    with LoopbackServer(Answer("crack")) as server:
        asked = len(run(tmp_path, small_tree, "a", {"base_url": server.openai_base_url}))
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, out, _ = run_cli("cache", "clear", capsys=capsys)
    assert code == 1 and "nothing removed" in out and info(capsys)["entries"] == asked

    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, out, _ = run_cli("cache", "clear", capsys=capsys)
    assert code == 0 and f"removed {asked} cached responses and " in out
    emptied = info(capsys)
    assert (emptied["entries"], emptied["memo_entries"], emptied["groups"]) == (0, 0, [])

    code, out, _ = run_cli("cache", "clear", "--yes", capsys=capsys)
    assert code == 0 and "removed 0 cached responses" in out


def test_a_missing_cache_is_a_clear_error_and_is_not_created(capsys):
    for command in (["info"], ["clear", "--yes"]):
        code, out, err = run_cli("cache", *command, capsys=capsys)
        assert code == 2 and "no response cache at" in " ".join((out + err).split())
    assert not default_path().exists()
