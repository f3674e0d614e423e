"""Act: decision policies, cost matrices, decision reports and the paper's Table 4 setting.

The scripted run answers by the true class of each query image (looked up by
pixel digest), so every figure below is computed by hand from the table in
`TILE_SCRIPT`.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness import plugins
from harness.cli import main
from harness.scoring.decision_report import (
    decision_report, group_accuracy, negligible_count, record_decisions, table4, table4_policy, table4_split,
)
from harness.scoring.decisions import (
    ACTIONS, check_decision_files, load_costs, load_decision_files, load_policy, resolve_file,
)
from harness.errors import HarnessError
from harness.images import load_rgb
from harness.prompts import image_digest
from harness.record import Record, load_records
from harness.results import load_run
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier
from harness.types import GOOD

TILE_POLICY = """
    description = "hand-computed test policy"
    [default]
    severity = "critical"
    [categories.tile.classes]
    scratch = "negligible"
    stain = "negligible"
    hole = "moderate"
    chip = "critical"
    crack = { severity = "critical", action = "scrap" }
"""

# true class -> what the scripted model answers (an exception becomes backend_error).
TILE_SCRIPT = {
    "scratch": "crack",                       # pass -> scrap: overkill
    "stain": "it is blue",                    # unparseable -> review
    "hole": RuntimeError("HTTP 400 bad request"),  # backend_error -> review
    "chip": "scratch",                        # scrap -> pass: escape
    "crack": "chip",                          # scrap -> scrap: right action, wrong class
}


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def shipped(name: str, what: str = "policy") -> Path:
    registry = plugins.get_registry()
    return resolve_file(name, registry.policies if what == "policy" else registry.costs, what)


def label_sets_of(class_file: str) -> dict[str, list[str]]:
    from harness_datasets.classes import load_class_file

    parsed = load_class_file(class_file)
    return {c: [GOOD, *info.classes] for c, info in parsed.categories.items()}


@pytest.fixture
def tile_run(tmp_path, small_tree):
    """The tile category of the small tree through TILE_SCRIPT, with TILE_POLICY and the shipped costs."""
    truth = {image_digest(load_rgb(p)): p.parent.name for p in (small_tree / "tile" / "test").rglob("*.png")}

    def script(prompt):
        query = next(part for part in prompt.images if part.name == "query")
        return TILE_SCRIPT[truth[query.digest]]

    _, plugin = scripted_classifier(script)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    policy = write(tmp_path / "tile-policy.toml", TILE_POLICY)
    config = RunConfig(benchmark="folder", data_root=small_tree, categories=["tile"], models=["scripted"],
                       prompt="plain", results_dir=tmp_path / "results", run_id="tile", n_boot=100,
                       policy=policy, costs="costs-example")
    return Run(config, registry).execute(), policy


def test_decision_report_of_a_scripted_run_matches_hand_computation(tile_run):
    result, _ = tile_run
    report = result.run["decisions"]["models"]["scripted"]
    # 12 images: good 2 (pass->pass), scratch 2 (pass->scrap), stain 2 (pass->review, failed),
    # hole 2 (rework->review, failed), chip 2 (scrap->pass), crack 2 (scrap->scrap).
    assert report["n"] == 12 and report["n_errors"] == 4
    assert report["action_accuracy"] == pytest.approx(4 / 12)
    assert (report["escapes"], report["n_critical"], report["escape_rate"]) == (2, 4, 0.5)
    assert (report["overkills"], report["n_acceptable"]) == (2, 6)
    assert report["overkill_rate"] == pytest.approx(2 / 6)
    assert report["review_rate"] == pytest.approx(4 / 12)
    assert report["actions"] == {
        "pass": {"pass": 2, "review": 2, "scrap": 2}, "rework": {"review": 2}, "scrap": {"pass": 2, "scrap": 2},
    }
    assert report["severity_accuracy"] == {"normal": 1.0, "negligible": 0.0, "moderate": 0.0, "critical": 0.5}
    # costs-example: pass->scrap 10, pass->review 0.5, rework->review 0.5, scrap->pass 200.
    assert report["cost"]["total"] == pytest.approx(2 * 10 + 2 * 0.5 + 2 * 0.5 + 2 * 200)
    assert report["cost"]["per_image"] == pytest.approx(422 / 12) and report["cost"]["unit"] == "EUR"
    assert report["categories"]["tile"]["escapes"] == 2
    assert result.run["config"]["policy"].endswith("tile-policy.toml")
    assert len(result.run["decisions"]["policy"]["sha256"]) == 64


def test_every_record_carries_its_decisions_and_failures_are_never_passed(tile_run):
    result, _ = tile_run
    _, records = load_run(result.run_dir)
    assert len(records) == 12
    for record in records:
        assert {"severity_true", "action_true", "severity_predicted", "action_predicted"} <= set(record)
        if record["error"] is not None:
            assert record["action_predicted"] == "review" and record["severity_predicted"] is None
    by_true = {r["true_label"]: r for r in records}
    assert by_true["chip"]["action_predicted"] == "pass" and by_true["chip"]["action_true"] == "scrap"
    assert by_true["hole"]["error"] == "backend_error" and by_true["stain"]["error"] == "unparseable"
    assert by_true[GOOD]["action_predicted"] == "pass" and by_true[GOOD]["severity_true"] == "normal"


def test_act_applies_a_policy_afterwards_without_touching_the_run(tile_run, capsys):
    result, policy = tile_run
    samples = (result.run_dir / "samples.jsonl").read_bytes()
    run_json = (result.run_dir / "run.json").read_bytes()
    code = _cli("act", "tile", "--results-dir", result.run_dir.parent, "--policy", policy, "--costs", "costs-example")
    out = capsys.readouterr().out
    assert code == 0 and "33.3" in out and "50.0 (2/4)" in out and "422.00 EUR" in out
    written = json.loads((result.run_dir / "decisions.json").read_text())
    assert written["decisions"]["models"] == result.run["decisions"]["models"]
    assert (result.run_dir / "samples.jsonl").read_bytes() == samples
    assert (result.run_dir / "run.json").read_bytes() == run_json


def test_an_error_action_of_scrap_is_honoured_and_still_never_correct(tile_run, tmp_path):
    result, _ = tile_run
    policy = write(tmp_path / "strict.toml", TILE_POLICY + '\n[errors]\naction = "scrap"\n')
    report = decision_report(load_records(result.run_dir), load_policy(policy))
    # The two failed hole images (true rework) and stain images (true pass) are now scrapped: the
    # stain ones count as overkill, and none of the four counts as a correct action.
    assert report["n_errors"] == 4 and report["review_rate"] == 0.0
    assert report["overkills"] == 4
    assert report["action_accuracy"] == pytest.approx(4 / 12)


def test_act_needs_something_to_do_and_a_known_run(tile_run, capsys):
    result, _ = tile_run
    assert _cli("act", "tile", "--results-dir", result.run_dir.parent) == 2
    assert "nothing to do" in capsys.readouterr().err
    assert _cli("act", "nope", "--results-dir", result.run_dir.parent, "--table4") == 2
    assert "not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("body, words", [
    ('colour = "red"\n', ["unknown key", "colour"]),
    ('[default]\nseverity = "fatal"\n', ["default.severity", "fatal", "negligible"]),
    ('[default]\nseverity = "critical"\naction = "burn"\n', ["default.action", "burn"]),
    ('[errors]\naction = "pass"\n', ["errors.action", "never pass"]),
    ('[categories.tile.classes]\nscrach = "negligible"\n', ["categories.tile.classes.scrach", "scratch"]),
    ('[default]\nseverity = "critical"\n[categories.tyle.classes]\nscratch = "negligible"\n', ["categories.tyle", "not a category"]),
    ('[categories.tile.classes]\ncrack = "normal"\n', ["categories.tile.classes.crack", "reserved for 'good'"]),
    ('[categories.tile.classes]\ngood = "critical"\n', ["categories.tile.classes.good", "always severity 'normal'"]),
    ('[categories.tile]\ncolour = "x"\n', ["categories.tile.colour"]),
    ('[categories.tile.classes]\ncrack = { severity = "critical", when = "always" }\n', ["categories.tile.classes.crack.when"]),
    ('[categories.tile.classes]\nscratch = "negligible"\n', ["no severity for class", "'chip'", "[default]"]),
    ('benchmark = "mvtec-ac"\n[default]\nseverity = "critical"\n', ["benchmark", "mvtec-ac", "demo"]),
    ("[default\n", ["not valid TOML"]),
])
def test_policy_errors_name_the_file_and_the_key(tmp_path, body, words):
    path = write(tmp_path / "bad-policy.toml", body)
    labels = {"tile": [GOOD, "chip", "crack", "hole", "scratch", "stain"]}
    with pytest.raises(HarnessError) as error:
        load_policy(path).check(labels, "demo")
    message = str(error.value)
    assert str(path) in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("body, words", [
    ('[cost.pass]\nscrap = "ten"\n', ["cost.pass.scrap", "finite number"]),
    ('[cost.pass]\nburn = 1\n', ["cost.pass.burn", "not a known action"]),
    ('[cost.pass]\nscrap = 10\n', ["missing cost", "cost.pass.review", "cost.scrap.pass"]),
    ('currency = "EUR"\n', ["unknown key", "currency"]),
])
def test_cost_matrix_errors_name_the_file_and_the_key(tmp_path, body, words):
    path = write(tmp_path / "bad-costs.toml", body)
    policy = load_policy(write(tmp_path / "p.toml", TILE_POLICY))
    with pytest.raises(HarnessError) as error:
        load_costs(path).check(policy, {"tile": [GOOD, "chip", "crack", "hole", "scratch", "stain"]})
    assert str(path) in str(error.value)
    for word in words:
        assert word in str(error.value)


def test_a_bad_policy_stops_a_run_before_any_model_is_called(tmp_path, small_tree, capsys):
    bad = write(tmp_path / "typo.toml", '[default]\nseverity = "critical"\n[categories.tile.classes]\nscrach = "negligible"\n')
    code = _cli("run", "--benchmark", "folder", "--data-root", small_tree, "--models", "random",
                "--policy", bad, "--results-dir", tmp_path / "results")
    err = capsys.readouterr().err
    assert code == 2 and "typo.toml" in err and "scrach" in err
    assert not (tmp_path / "results").exists()


def test_unknown_shipped_name_lists_the_shipped_ones_of_its_kind():
    with pytest.raises(HarnessError, match=r"shipped policy files: demo, mvtec-ac\)"):
        shipped("no-such-policy")


def test_run_and_act_read_policy_and_costs_alike(tmp_path):
    registry = plugins.get_registry()
    with pytest.raises(HarnessError, match="--costs prices the actions of a decision policy"):
        load_decision_files(None, "costs-example", registry)
    assert load_decision_files(None, None, registry) == (None, None)
    policy, costs = load_decision_files(str(write(tmp_path / "p.toml", TILE_POLICY)), "costs-example", registry)
    assert policy.source == str(tmp_path / "p.toml") and costs.sha256 == load_costs(shipped("costs-example", "cost matrix")).sha256
    tile = {"tile": [GOOD, "chip", "crack", "hole", "scratch", "stain"]}
    check_decision_files(policy, costs, tile, "folder", partial=False)
    check_decision_files(None, None, {"x": ["nothing", "to", "check"]}, "any", partial=False)
    # A category the policy names but the run lacks is unknown, unless the run covers only some categories.
    with pytest.raises(HarnessError, match="tile"):
        check_decision_files(policy, None, {"other": [GOOD, "dent"]}, "folder", partial=False)
    check_decision_files(policy, None, {"other": [GOOD, "dent"]}, "folder", partial=True)
    cheap = load_costs(write(tmp_path / "c.toml", '[cost.pass]\nscrap = 10\n'))
    with pytest.raises(HarnessError, match="missing cost"):
        check_decision_files(policy, cheap, tile, "folder", partial=False)


# --------------------------------------------------------------------------- shipped files


@pytest.mark.parametrize("name", ["demo", "mvtec-ac"])
def test_shipped_policies_fit_their_benchmarks_class_lists(name):
    labels = label_sets_of(name)
    policy = load_policy(shipped(name))
    assert policy.benchmark == name
    policy.check(labels, name)
    load_costs(shipped("costs-example", "cost matrix")).check(policy, labels)
    # Every category is covered, and each has at least one class a line would ship.
    severities = {c: {policy.decide(c, label).severity for label in ls} for c, ls in labels.items()}
    assert all({"normal", "critical"} <= s for s in severities.values())
    assert policy.error_action in ACTIONS and policy.error_action != "pass"


def test_shipped_files_are_registered_by_the_prompts_plugin():
    registry = plugins.get_registry()
    assert {"demo", "mvtec-ac"} <= set(registry.policies) and "costs-example" not in registry.policies
    assert set(registry.costs) >= {"costs-example"}
    assert registry.policies["demo"].plugin == registry.costs["costs-example"].plugin == "prompts"


# --------------------------------------------------------------------------- Table 4


LABELS_X = [GOOD, "a", "b"]                              # 2 anomaly classes -> 1 negligible
LABELS_Y = [GOOD, "p", "q", "r", "s", "t"]               # 5 anomaly classes -> 2 negligible


def rec(category, true, predicted=None, error=None, model="m"):
    return Record.from_json({"sample_id": f"{category}/{true}/{predicted}/{error}", "category": category,
                             "true_label": true, "predicted_label": predicted, "error": error, "model": model})


def test_negligible_count_follows_the_paper():
    assert [negligible_count(n) for n in (1, 2, 3, 4, 5, 7)] == [1, 1, 1, 1, 2, 2]


def test_table4_split_is_deterministic_per_seed_and_varies_across_seeds():
    labels = {"x": LABELS_X, "y": LABELS_Y}
    assert table4_split(labels, 3) == table4_split(labels, 3)
    splits = [table4_split(labels, seed) for seed in range(12)]
    assert all(len(s["x"]) == 1 and len(s["y"]) == 2 for s in splits)
    assert len({tuple(s["y"]) for s in splits}) > 1
    # A category's draw does not depend on the other categories of the run.
    assert table4_split({"y": LABELS_Y}, 3)["y"] == table4_split(labels, 3)["y"]


def test_group_accuracy_with_a_given_split():
    records = [
        rec("x", GOOD, GOOD), rec("x", GOOD, "b"),           # normal: 1 of 2
        rec("x", "a", "b"), rec("x", "a", "a"),              # a negligible: predicted b (critical) is wrong
        rec("x", "b", "b"), rec("x", "b", error="refused"),  # b critical: a failure is wrong
    ]
    accuracy = group_accuracy(records, table4_policy({"x": ["a"]}, 0))
    assert accuracy == {"x": {"normal": 0.5, "negligible": 0.5, "critical": 0.5}}
    # Naming another class of the same group counts: the decision is the same.
    y = [rec("y", "p", "q"), rec("y", "r", "s"), rec("y", "t", GOOD)]
    accuracy = group_accuracy(y, table4_policy({"y": ["p", "q"]}, 0))
    assert accuracy == {"y": {"negligible": 1.0, "critical": 0.5}}


def test_table4_means_over_seeds_then_categories():
    # Category x gives 0.5 in every group whichever class is negligible (worked out in the test above
    # for {a}; for {b}: a->a critical right, a->b wrong, b->b right, b->error wrong).
    x = [rec("x", GOOD, GOOD), rec("x", GOOD, "a"), rec("x", "a", "a"), rec("x", "a", "b"),
         rec("x", "b", "b"), rec("x", "b", error="unparseable")]
    # Category y: every anomalous image right, one of two good images called a defect.
    y = [rec("y", GOOD, GOOD), rec("y", GOOD, "p")] + [rec("y", c, c) for c in "pqrst"]
    result = table4(x + y, {"x": LABELS_X, "y": LABELS_Y}, seeds=5)
    assert result["categories"]["x"] == {"normal": 0.5, "negligible": 0.5, "critical": 0.5}
    assert result["categories"]["y"] == {"normal": 0.5, "negligible": 1.0, "critical": 1.0}
    assert result["accuracy"] == {"normal": 0.5, "negligible": 0.75, "critical": 0.75}
    assert result["mean"] == pytest.approx(2 / 3)
    assert sorted(result["splits"]) == ["0", "1", "2", "3", "4"]
    assert result["std_over_seeds"] == {"normal": 0.0, "negligible": 0.0, "critical": 0.0}


def test_table4_where_the_split_matters_is_reproducible(tile_run):
    result, _ = tile_run
    records = load_records(result.run_dir)
    labels = {c: info["labels"] for c, info in result.run["benchmark"]["categories"].items()}
    first, again = table4(records, labels, seeds=5), table4(records, labels, seeds=5)
    assert first == again
    # Recompute one seed by hand from its split: tile has 5 classes, so 2 are negligible.
    split = first["splits"]["0"]["tile"]
    assert len(split) == 2
    predicted_group = {"scratch": "crack", "chip": "scratch", "crack": "chip"}  # the parseable answers
    neg = [c for c in ("scratch", "stain", "hole", "chip", "crack") if c in split]
    crit = [c for c in ("scratch", "stain", "hole", "chip", "crack") if c not in split]

    def hits(group_classes, group_name):
        right = 0
        for c in group_classes:
            answer = predicted_group.get(c)  # None: stain and hole failed
            if answer is not None and (answer in split) == (group_name == "negligible"):
                right += 2
        return right / (2 * len(group_classes))

    seed0 = first["per_seed"][0]
    assert seed0["normal"] == 1.0
    assert seed0["negligible"] == pytest.approx(hits(neg, "negligible"))
    assert seed0["critical"] == pytest.approx(hits(crit, "critical"))


def test_act_table4_writes_table4_json(tile_run, capsys):
    result, _ = tile_run
    assert _cli("act", str(result.run_dir), "--table4", "--seeds", "3") == 0
    out = capsys.readouterr().out
    assert "Table 4" in out and "99.3" in out
    written = json.loads((result.run_dir / "table4.json").read_text())
    assert written["table4"]["seeds"] == 3 and "scripted" in written["table4"]["models"]


def test_record_decisions_of_a_failed_record_is_review_by_default(tmp_path):
    policy = load_policy(write(tmp_path / "p.toml", TILE_POLICY))
    failed = rec("tile", "crack", error="timeout")
    assert record_decisions(failed, policy) == {
        "severity_true": "critical", "action_true": "scrap", "severity_predicted": None, "action_predicted": "review",
    }


def _cli(*args) -> int:
    try:
        main([str(a) for a in args])
        return 0
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1


def test_policy_and_costs_are_recorded_so_a_resumed_run_keeps_them(tmp_path):
    config = RunConfig(benchmark="demo", models=["random"], policy="demo", costs=tmp_path / "c.toml")
    recorded = config.to_json()
    assert recorded["policy"] == "demo" and recorded["costs"] == str(tmp_path / "c.toml")
    again = RunConfig.from_json(recorded, tmp_path, "x")
    assert (again.policy, again.costs) == ("demo", str(tmp_path / "c.toml"))
