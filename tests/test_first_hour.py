"""What a new user meets in the first hour: documented options and messages behave as the README says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import HarnessError

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_debug_works_after_the_subcommand_as_documented(tmp_path, capsys):
    # With --debug the HarnessError propagates (a traceback) instead of becoming "error: ..." and exit 2.
    with pytest.raises(HarnessError, match="nonesuch"):
        run_cli("run", "--benchmark", "nonesuch", "--models", "random", "--results-dir", tmp_path, "--debug",
                capsys=capsys)
    code, _, err = run_cli("run", "--benchmark", "nonesuch", "--models", "random", "--results-dir", tmp_path,
                           capsys=capsys)
    assert code == 2 and "nonesuch" in err


def _write_config(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_config_file_sets_the_flags_the_readme_says_it_can(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    config = _write_config(tmp_path / "configs" / "run.toml", (
        'benchmark = "demo"\nmodels = ["random"]\nlimit = 2\nno-cache = true\noutput-format = "csv"\n'
        'results-dir = "out"\nrun-id = "from-config"\n'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = run_cli("run", "--config", config, capsys=capsys)
    assert code == 0, err
    # results-dir is read from the config file's folder, not the working directory (as documented).
    assert not (elsewhere / "out").exists()
    run_dir = tmp_path / "configs" / "out" / "from-config"
    assert (run_dir / "run.json").is_file()
    assert list(run_dir.glob("*.csv")), "output-format = \"csv\" wrote no CSV"
    assert not (tmp_path / "cache" / "responses.sqlite").exists(), "no-cache = true still opened the cache"


def test_a_configs_data_root_and_class_file_are_read_from_the_configs_folder(tmp_path, capsys, monkeypatch, small_tree):
    import shutil

    shutil.copytree(small_tree, tmp_path / "line" / "images")
    (tmp_path / "line" / "classes.toml").write_text(
        '[label]\nobject = "a printed paper label on a jar"\n', encoding="utf-8")
    config = _write_config(tmp_path / "line" / "run.toml", (
        'benchmark = "folder"\ndata-root = "images"\nclasses = "classes.toml"\ncategories = ["label"]\n'
        'models = ["random"]\nresults-dir = "runs"\nrun-id = "beside-its-data"\nno-cache = true\n'))
    monkeypatch.chdir(tmp_path)  # not the config's folder: the relative paths must not be read from here
    code, _, err = run_cli("run", "--config", config, capsys=capsys)
    assert code == 0, err
    run = json.loads((tmp_path / "line" / "runs" / "beside-its-data" / "run.json").read_text())
    assert Path(run["benchmark"]["data_root"]) == (tmp_path / "line" / "images").resolve()
    assert Path(run["benchmark"]["class_file"]["path"]) == (tmp_path / "line" / "classes.toml").resolve()


def test_a_config_gate_threshold_reaches_the_gate(tmp_path, capsys):
    config = _write_config(tmp_path / "run.toml", 'gate = "oracle"\ngate-threshold = 0.5\nmodels = ["random"]\n')
    code, _, err = run_cli("run", "--config", config, "--results-dir", tmp_path, capsys=capsys)
    # The oracle gate has no threshold: the error is the gate's, not an unknown config key.
    assert code == 2 and "unknown key" not in err and "threshold" in err


@pytest.mark.parametrize("key", ["resume", "retry-errors"])
def test_command_line_only_flags_in_a_config_are_named(tmp_path, capsys, key):
    config = _write_config(tmp_path / "run.toml", f'{key} = "x"\n')
    code, _, err = run_cli("run", "--config", config, "--results-dir", tmp_path, capsys=capsys)
    assert code == 2 and "only be given on the command line" in err and key in err and "run.toml" in err


def test_the_table_after_a_run_ranks_models_by_accuracy_not_by_models_order(tmp_path, capsys):
    # Seeds 1 and 2 of the random baseline score 39.3% and 36.0% on the demo; list the worse one first.
    config = _write_config(tmp_path / "run.toml", (
        'models = ["random:b", "random:a"]\n[model-options."random:a"]\nseed = 1\n'
        '[model-options."random:b"]\nseed = 2\n'))
    code, out, err = run_cli("run", "--config", config, "--results-dir", tmp_path, capsys=capsys)
    assert code == 0, err
    first = next(line for line in out.splitlines() if line.startswith("│ 1 "))
    second = next(line for line in out.splitlines() if line.startswith("│ 2 "))
    assert "random:a" in first and "random:b" in second


def test_without_category_a_released_benchmark_names_the_category_flags_to_add(tmp_path, capsys):
    from test_ac_release import released_tree

    root = released_tree(tmp_path / "ac", "mvtec-ac", ["bottle"])  # only bottle on disk, like ../shared/data
    code, _, err = run_cli("run", "--benchmark", "mvtec-ac", "--data-root", root, "--models", "random",
                           "--results-dir", tmp_path / "results", capsys=capsys)
    message = " ".join(err.split())  # rich wraps long lines
    assert code == 2
    assert "without --category a run means every released category; add --category bottle" in message
    code, _, err = run_cli("run", "--benchmark", "mvtec-ac", "--data-root", root, "--models", "random",
                           "--category", "bottle", "--results-dir", tmp_path / "results", capsys=capsys)
    assert code == 0, err


def test_the_readme_names_outcomes_as_the_records_spell_them():
    from harness.scoring import metrics

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for outcome in ("correct", "wrong_class", "gate_miss", "gate_false_alarm"):
        assert outcome in metrics.OUTCOMES and f"`{outcome}`" in readme
    assert "wrong class, gate miss" not in readme


def _jsonl(path, lines: list[dict]):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_score_matches_the_documented_image_forms_and_names_the_expected_ones_for_others(tmp_path, capsys):
    predictions = _jsonl(tmp_path / "p.jsonl", [
        {"category": "bottle", "image": "bottle/test/broken_large/000.png", "predicted_label": "broken large"},
        {"category": "bottle", "image": "test/broken_large/001.png", "predicted_label": "broken large"},
        {"category": "bottle", "image": "/data/mvtec/bottle/test/broken_large/002.png", "predicted_label": "good"},
    ])
    code, _, err = run_cli("score", "--benchmark", "mvtec-ac", "--category", "bottle", "--predictions", predictions,
                           "--format", "jsonl", "--name", "x", "--results-dir", tmp_path / "r", capsys=capsys)
    message = " ".join(err.split())
    assert code == 0, err
    assert "1 prediction key(s) name no image" in message and "/data/mvtec/bottle" in message
    assert "'bottle/test/broken_large/000.png' (the path from the data root" in message
    run = json.loads(next((tmp_path / "r").glob("*/run.json")).read_text())
    assert run["imported"]["n_scored"] == 2

    only_absolute = _jsonl(tmp_path / "abs.jsonl", [
        {"category": "bottle", "image": "/data/mvtec/bottle/test/broken_large/002.png", "predicted_label": "good"}])
    code, _, err = run_cli("score", "--benchmark", "mvtec-ac", "--category", "bottle", "--predictions", only_absolute,
                           "--format", "jsonl", "--name", "x", "--results-dir", tmp_path / "r", capsys=capsys)
    assert code == 2 and "absolute paths and paths from other folders match nothing" in " ".join(err.split())


def test_score_prints_macro_f1_on_one_scale_in_both_tables(tmp_path, capsys):
    predictions = _jsonl(tmp_path / "p.jsonl", [
        {"category": "bottle", "image": f"bottle/test/{label}/00{i}.png", "predicted_label": label.replace("_", " ")}
        for label in ("broken_large", "contamination") for i in range(3)])
    code, out, err = run_cli("score", "--benchmark", "mvtec-ac", "--category", "bottle", "--predictions", predictions,
                             "--format", "jsonl", "--name", "x", "--results-dir", tmp_path / "r", capsys=capsys)
    assert code == 0, err
    run = json.loads(next((tmp_path / "r").glob("*/run.json")).read_text())
    macro_f1 = run["metrics"]["imported:x"]["protocols"]["velm"]["macro_f1"]
    shown = f"{macro_f1:.3f}"
    # The run table and the per-category table (its bottle row and its mean row) print the same figure.
    assert out.count(shown) >= 3, out
    assert f"{100 * macro_f1:.1f}" not in out.replace(f"{100 * run['metrics']['imported:x']['protocols']['velm']['accuracy']:.1f}", "")


def test_run_id_is_documented_with_its_real_default(capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "| `--run-id` |" in readme
    code, out, _ = run_cli("run", "--help", capsys=capsys)
    assert code == 0 and "time-benchmark-random" not in out and "random suffix" in " ".join(out.split())


def test_list_verbose_shows_factory_defaults_not_pydantic_undefined(capsys):
    code, out, _ = run_cli("list", "--verbose", capsys=capsys)
    assert code == 0 and "extra_headers (dict, default {})" in out and "PydanticUndefined" not in out


@pytest.mark.parametrize("gate", ["oracle", "none"])
def test_gate_threshold_on_a_gate_without_one_says_so(tmp_path, capsys, gate):
    code, _, err = run_cli("run", "--gate", gate, "--gate-threshold", "0.5", "--models", "random",
                           "--results-dir", tmp_path, capsys=capsys)
    message = " ".join(err.split())
    assert code == 2 and f"gate '{gate}' has no threshold" in message and "Extra inputs" not in message


def test_an_unknown_option_names_the_options_there_are(tmp_path, capsys):
    config = _write_config(tmp_path / "run.toml", 'models = ["random"]\n[model-options."random"]\nsed = 3\n')
    code, _, err = run_cli("run", "--config", config, "--results-dir", tmp_path, capsys=capsys)
    message = " ".join(err.split())
    assert code == 2 and "sed: not an option of model 'random' (its options: " in message and "seed" in message


def test_no_such_policy_lists_policies_only(tmp_path, capsys):
    code, _, err = run_cli("run", "--models", "random", "--policy", "no-such", "--results-dir", tmp_path,
                           capsys=capsys)
    message = " ".join(err.split())
    assert code == 2 and "shipped policy files: demo, mvtec-ac)" in message and "costs-example" not in message


def test_a_missing_data_root_is_named_once(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    code, _, err = run_cli("run", "--benchmark", "folder", "--data-root", missing, "--models", "random",
                           "--results-dir", tmp_path / "r", capsys=capsys)
    assert code == 2 and "data root does not exist" in err
    assert "".join(err.split()).count(str(missing).replace(" ", "")) == 1


def test_compare_names_the_output_file_and_says_repeats_are_compared_on_repeat_0(tmp_path, capsys):
    for run_id, seed in (("a", 1), ("b", 2)):
        config = _write_config(tmp_path / f"{run_id}.toml", (
            'models = ["random"]\nclass-order = "shuffle"\nrepeats = 2\n'
            f'[model-options."random"]\nseed = {seed}\n'))
        code, _, err = run_cli("run", "--config", config, "--run-id", run_id, "--results-dir", tmp_path, capsys=capsys)
        assert code == 0, err
    output = tmp_path / "cmp.json"
    code, out, err = run_cli("compare", "a", "b", "--results-dir", tmp_path, "--output", output, capsys=capsys)
    text = " ".join(out.split())
    assert code == 0, err
    assert "more (all of them in " in text and "with --output FILE" not in text
    assert "run a asked each model 2 times (--repeats); compared on repeat 0" in text


def test_the_readme_act_examples_use_a_policy_for_a_run_a_newcomer_can_make():
    import tomllib

    using_it = README_TEXT().split("\n## Using it\n", 1)[1].split("\n```\n", 1)[0]
    act_lines = [line for line in using_it.splitlines() if line.startswith("harness act")]
    assert act_lines and all("--policy demo" in line for line in act_lines)
    policy = tomllib.loads((ROOT / "prompts" / "policies" / "demo.toml").read_text(encoding="utf-8"))
    assert policy["benchmark"] == "demo"


def README_TEXT() -> str:  # noqa: N802 (read at call time: other tests may not need it)
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_published_demo_runs_name_no_machine_path_and_come_from_a_clean_tree():
    from harness.results import SCHEMA_VERSION

    published = sorted((ROOT / "results").glob("*/run.json"))
    assert published, "results/ should hold the published demo runs"
    for path in published:
        text = path.read_text(encoding="utf-8")
        run = json.loads(text)
        assert run["benchmark"]["name"] == "demo" and run["benchmark"]["data_root"] is None, path
        assert run["provenance"]["git"]["dirty"] is False, f"{path}: made from a dirty tree"
        assert run["schema_version"] == SCHEMA_VERSION, path
        assert str(Path.home()) not in text and "/tmp/" not in text, f"{path} names a machine path"
