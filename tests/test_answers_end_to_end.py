"""Answer reading end to end: real SDK clients against loopback servers, imported predictions, run.json counts.

A server that denies and declines classes ("There is no crack visible.", "I cannot tell whether this is
a scratch.") must never have those replies recorded as the class they deny; every record names the
rule that read it (``answer_rule``) and run.json counts the rules per model.
"""

from __future__ import annotations

import csv
import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from conftest import run_cli
from harness import plugins
from harness.record import records_from_json
from harness.scoring.metrics import answer_rule_counts
from harness.results import load_run
from harness.run.runner import Run, RunConfig
from harness.testing.loopback import Answer, LoopbackServer, Request

pytest.importorskip("openai")

#: What the server says, and how each reply must be recorded: (predicted_label, error, answer_rule).
#: The demo's tile category has the classes chip, crack, hole, scratch and stain.
REPLIES: dict[str, tuple[str | None, str | None, str]] = {
    "There is no crack visible.": (None, "unparseable", "none"),
    "I am sorry, I cannot tell whether this is a scratch.": (None, "refused", "refusal"),
    "Not a hole.": (None, "unparseable", "none"),
    "The tile is free of stain.": (None, "unparseable", "none"),
    "Is it a chip? No.": (None, "unparseable", "none"),
    "I'm unable to say if this is a crack or a chip.": (None, "refused", "refusal"),
    "This is not a scratch but a crack.": ("crack", None, "mention"),
    "No stain; the tile has a hole.": ("hole", None, "mention"),
    "The edge of the tile is broken off.\nFinal answer: chip": ("chip", None, "final_answer"),
    "scratch": ("scratch", None, "exact"),
}
#: The class each denying or declining reply names: it must never be the recorded prediction.
DENIED = {
    "There is no crack visible.": {"crack"},
    "I am sorry, I cannot tell whether this is a scratch.": {"scratch"},
    "Not a hole.": {"hole"},
    "The tile is free of stain.": {"stain"},
    "Is it a chip? No.": {"chip"},
    "I'm unable to say if this is a crack or a chip.": {"crack", "chip"},
    "This is not a scratch but a crack.": {"scratch"},
    "No stain; the tile has a hole.": {"stain"},
}
MODEL = "openai:gpt-4o"


pytestmark = pytest.mark.usefixtures("fake_api_keys")


def in_turn(request: Request) -> Answer:
    """Each request gets the next reply of `REPLIES`, whatever image it is about."""
    replies = list(REPLIES)
    return Answer(replies[request.index % len(replies)])


def run(tmp_path: Path, root: Path, server: LoopbackServer, spec: str = MODEL, base_url: str | None = None,
        use_cache: bool = False, **config) -> tuple[dict, list[dict]]:
    options = {"base_url": base_url or server.openai_base_url, "concurrency": 4, **config.pop("options", {})}
    run_config = RunConfig(
        benchmark="folder", data_root=root, models=[spec], categories=["tile"], model_options={spec: options},
        results_dir=tmp_path / "results", n_boot=50, use_cache=use_cache, **config,
    )
    result = Run(run_config, plugins.load_registry()).execute()
    return load_run(result.run_dir)


def test_denials_and_refusals_through_the_openai_sdk_are_never_the_class_they_deny(tmp_path, small_tree):
    with LoopbackServer(in_turn) as server:
        run_json, records = run(tmp_path, small_tree, server)
    called = [r for r in records if r["called"]]
    assert len(called) == server.count == 10  # 5 classes x 2 images, one request each
    assert {r["response"] for r in called} == set(REPLIES)  # every reply style was served
    for record in called:
        expected = REPLIES[record["response"]]
        assert (record["predicted_label"], record["error"], record["answer_rule"]) == expected, record["response"]
        assert record["predicted_label"] not in DENIED.get(record["response"], set())
        assert record["correct"] is (record["predicted_label"] == record["true_label"])
    declined = [r for r in called if r["error"] is not None]
    assert all(r["error_detail"] for r in declined)  # why it was not read, for the audit
    # Images the gate passed were not asked: no rule read them.
    assert all(r["answer_rule"] is None for r in records if not r["called"])
    counts = run_json["metrics"][MODEL]["answer_rules"]
    assert counts == dict(Counter(rule for _, _, rule in REPLIES.values())) == answer_rule_counts(records_from_json(records))
    assert counts == {"exact": 1, "final_answer": 1, "mention": 2, "refusal": 2, "none": 4}
    assert run_json["metrics"][MODEL]["outcomes"]["refused"] == 2
    assert run_json["metrics"][MODEL]["outcomes"]["unparseable"] == 4
    assert run_json["config"]["answers"] == "lenient"


def test_strict_answers_keep_only_uninterpreted_readings_and_resume_keeps_the_mode(tmp_path, small_tree):
    with LoopbackServer(in_turn) as server:
        run_json, records = run(tmp_path, small_tree, server, answers="strict")
    by_reply = {r["response"]: r for r in records if r["called"]}
    assert by_reply["scratch"]["answer_rule"] == "exact"
    assert by_reply["The edge of the tile is broken off.\nFinal answer: chip"]["predicted_label"] == "chip"
    for reply in ("This is not a scratch but a crack.", "I am sorry, I cannot tell whether this is a scratch."):
        record = by_reply[reply]
        assert (record["predicted_label"], record["error"], record["answer_rule"]) == (None, "unparseable", "none")
        assert "--answers strict" in record["error_detail"]
    assert run_json["metrics"][MODEL]["answer_rules"] == {"exact": 1, "final_answer": 1, "none": 8}
    assert run_json["config"]["answers"] == "strict"
    assert RunConfig.from_json(run_json["config"], tmp_path, "x").answers == "strict"  # what --resume rebuilds


def test_a_refusal_the_backend_flags_stays_refused_in_strict_mode(tmp_path, small_tree):
    with LoopbackServer(Answer(refusal="I can't help with that.")) as server:
        run_json, records = run(tmp_path, small_tree, server, answers="strict")
    called = [r for r in records if r["called"]]
    assert called and all((r["error"], r["answer_rule"]) == ("refused", "refusal") for r in called)
    assert run_json["metrics"][MODEL]["answer_rules"] == {"refusal": len(called)}


def test_structured_output_is_read_by_the_structured_rule_also_from_the_cache(tmp_path, small_tree):
    def answer(request: Request) -> Answer:
        return Answer(json.dumps({"class": request.schema_enum[0]}))

    spec = "openai:gpt-4o-answers-structured"  # a model of its own: the session cache is shared by tests
    options = {"structured_output": True, "temperature": 0}
    with LoopbackServer(answer) as server:
        first, records = run(tmp_path / "a", small_tree, server, spec=spec, use_cache=True, options=options)
        sent = server.count
        second, cached = run(tmp_path / "b", small_tree, server, spec=spec, use_cache=True, options=options)
    assert sent == 10 and server.count == sent  # the second run was answered from the cache
    assert all(r["cached"] for r in cached if r["called"])
    for run_json in (first, second):
        assert run_json["metrics"][spec]["answer_rules"] == {"structured": 10}


def test_the_anthropic_tool_answer_is_structured_and_a_prose_reply_is_not(tmp_path, small_tree):
    pytest.importorskip("anthropic")
    spec = "anthropic:claude-loopback-test"
    with LoopbackServer('{"class": "stain"}') as server:
        tool, _ = run(tmp_path / "t", small_tree, server, spec=spec, base_url=server.anthropic_base_url,
                      options={"structured_output": True})
    with LoopbackServer("There is no crack; it is a stain.") as server:
        prose, records = run(tmp_path / "p", small_tree, server, spec=spec, base_url=server.anthropic_base_url)
    assert tool["metrics"][spec]["answer_rules"] == {"structured": 10}
    assert prose["metrics"][spec]["answer_rules"] == {"mention": 10}
    assert {r["predicted_label"] for r in records if r["called"]} == {"stain"}


def test_the_csv_writer_has_the_answer_rule(tmp_path, small_tree):
    with LoopbackServer(in_turn) as server:
        run_json, records = run(tmp_path, small_tree, server, output_formats=["csv"])
    rows = list(csv.DictReader(Path(run_json["outputs"]["csv"]).open(encoding="utf-8")))
    assert Counter(row["answer_rule"] for row in rows) == Counter(r["answer_rule"] or "" for r in records)


def test_the_run_config_file_sets_the_mode_and_a_bad_value_names_the_file(tmp_path, small_tree, capsys):
    config = tmp_path / "run.toml"
    config.write_text(textwrap.dedent(f"""
        benchmark = "folder"
        data-root = "{small_tree}"
        models = ["random"]
        limit = 2
        answers = "strict"
    """))
    code, _, err = run_cli("run", "--config", config, "--results-dir", tmp_path / "r", "--run-id", "s", capsys=capsys)
    assert code == 0, err
    run_json, records = load_run(tmp_path / "r" / "s")
    assert run_json["config"]["answers"] == "strict"
    assert set(run_json["metrics"]["random"]["answer_rules"]) == {"exact"}  # random names a class exactly
    config.write_text(config.read_text().replace('"strict"', '"loose"'))
    code, _, err = run_cli("run", "--config", config, "--results-dir", tmp_path / "r", capsys=capsys)
    err = " ".join(err.split())  # the console wraps long lines
    assert code == 2 and "run.toml: answers 'loose'" in err and "lenient, strict" in err
    code, _, err = run_cli("run", "--answers", "loose", capsys=capsys)
    assert code == 2 and "--answers" in err


def test_imported_predictions_follow_the_same_reading_rules(tmp_path, capsys):
    lines = [
        ("bottle/broken_large/000", "broken large"),
        ("bottle/broken_large/001", "Broken_Large"),
        ("bottle/broken_small/000", "There is no broken small; it is broken large."),
        ("bottle/contamination/000", "There is no contamination."),
        ("bottle/contamination/001", "Reasoning: dark particles inside.\nFinal answer: contamination"),
        ("bottle/good/000", "normal"),
        ("bottle/good/001", "I cannot tell whether this bottle is good."),
    ]
    path = tmp_path / "bottle.jsonl"
    path.write_text("".join(json.dumps({"sample_id": s, "predicted_label": p}) + "\n" for s, p in lines))
    readings = {}
    for mode in ("lenient", "strict"):
        code, _, err = run_cli("score", "-b", "mvtec-ac", "--predictions", path, "--format", "jsonl", "--name", "mine",
                               "--category", "bottle", "--results-dir", tmp_path / "results", "--run-id", mode,
                               "--answers", mode, capsys=capsys)
        assert code == 0, err
        run_json, records = load_run(tmp_path / "results" / mode)
        assert run_json["config"]["answers"] == mode
        readings[mode] = {r["sample_id"]: (r["predicted_label"], r["error"], r["answer_rule"]) for r in records}
        assert run_json["metrics"]["imported:mine"]["answer_rules"] == answer_rule_counts(records_from_json(records))
    assert readings["lenient"] == {
        "bottle/broken_large/000": ("broken_large", None, "exact"),
        "bottle/broken_large/001": ("broken_large", None, "exact"),
        "bottle/broken_small/000": ("broken_large", None, "mention"),
        "bottle/contamination/000": (None, "unparseable", "none"),
        "bottle/contamination/001": ("contamination", None, "final_answer"),
        "bottle/good/000": ("good", None, "exact"),
        "bottle/good/001": (None, "refused", "refusal"),
    }
    strict = {key: value for key, value in readings["lenient"].items() if value[2] in ("exact", "final_answer", "none")}
    strict |= {"bottle/broken_small/000": (None, "unparseable", "none"), "bottle/good/001": (None, "unparseable", "none")}
    assert readings["strict"] == strict
