"""Every command README.md and docs/plugins.md document runs as written, so the docs cannot drift.

`tests/doc_commands.py` extracts the documented commands. `PLAN` says, for each (the exact text after
normalisation), what this test does with it:

- `Run`: run it in-process through the CLI entry, as a new user would, from a sandbox laid out like a
  checkout (``repo/`` as the working directory with ``prompts/`` and ``examples/`` linked in, and
  ``../shared/data`` beside it); placeholders (RUN_ID, FILE, ...) become what earlier commands made.
  The commands run in `PLAN`'s order; the exit code is checked, and `check` asserts on output/files.
- `Covered`: another test runs it (named, and checked to exist).
- `Skip`: not run, with the reason.

A documented command without an entry fails (add it to `PLAN`), and so does an entry that names no
documented command (stale). Synopses with ``[optional]`` groups run in every form `expand_synopsis`
gives.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from conftest import SHARED_DATA, run_cli
from doc_commands import DocCommand, documented_commands, expand_synopsis
from harness.loopback import LoopbackServer

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "plugins.md"]
#: Repository folders the documented commands name by relative path.
LINKED = ("prompts", "examples")
PLACEHOLDER = re.compile(r"\b(RUN_ID|RUN_A|RUN_B|FILE|NAME|DATA_ROOT|SPEC_A|SPEC_B|SPEC)\b")


@dataclass(frozen=True)
class Run:
    """Run the command. `values` maps a placeholder to a key of the run's state (a list: one per use)."""

    values: dict[str, str | list[str]] = field(default_factory=dict)
    code: int = 0
    check: Callable[[dict, str, Path], None] | None = None  # (state, stdout, sandbox cwd)
    remember: str | None = None  # store the run folder this command creates under this state key
    stdin: str | None = None
    needs_shared_data: bool = False


@dataclass(frozen=True)
class Covered:
    """Another test runs this command: ``tests/test_x.py::test_name``."""

    test: str


@dataclass(frozen=True)
class Skip:
    """Not run, and why."""

    reason: str


# ----------------------------------------------------------------------------- checks


def new_run(state: dict, key: str) -> dict:
    return json.loads((state["cwd"] / "results" / state[key] / "run.json").read_text(encoding="utf-8"))


def check_demo_run(state, out, cwd):
    run = new_run(state, "demo_run")
    assert run["status"] == "finished" and run["benchmark"]["name"] == "demo"
    assert "random" in out


def check_policy_run(state, out, cwd):
    run = new_run(state, "policy_run")
    assert run["status"] == "finished"
    decisions = run["decisions"]
    assert decisions["policy"]["benchmark"] == "demo" and decisions["costs"]["path"].endswith("costs-example.toml")
    assert decisions["models"]["random"]["cost"] is not None


def check_bottle_run(state, out, cwd):
    run = new_run(state, "bottle_run")
    assert run["status"] == "finished" and list(run["benchmark"]["categories"]) == ["bottle"]


def check_list(state, out, cwd):
    for name in ("demo", "mvtec-ac", "oracle", "patchcore", "random", "velm", "csv"):
        assert name in out, f"harness list does not show {name}"


def check_leaderboard(state, out, cwd):
    board = (cwd / "results" / "LEADERBOARD.md").read_text(encoding="utf-8")
    assert "random" in board and "random" in out


def check_report(state, out, cwd):
    page = cwd / "report.html"
    assert state["demo_run"] in page.read_text(encoding="utf-8")
    page.unlink()  # the next form must write its own


def check_compare(state, out, cwd):
    assert "McNemar" in out
    if "--output" in state["argv"]:
        written = json.loads((cwd / "compare.json").read_text(encoding="utf-8"))
        assert written, "compare --output wrote an empty file"
        (cwd / "compare.json").unlink()  # the next form must write its own


def check_score(name):
    def check(state, out, cwd):
        runs = [json.loads(p.read_text(encoding="utf-8")) for p in (cwd / "results").glob("*/run.json")]
        assert any(f"imported:{name}" in run.get("metrics", {}) for run in runs), f"no run of imported:{name}"
    return check


def check_act(state, out, cwd):
    assert (cwd / "results" / state["demo_run"] / "decisions.json").is_file()


def check_table4(state, out, cwd):
    assert (cwd / "results" / state["demo_run"] / "table4.json").is_file()


def check_plugins(state, out, cwd):
    for plugin in ("datasets", "baselines", "openai", "prompts"):
        assert re.search(rf"│ {plugin} +│ anomaly-harness", out), f"harness plugins does not show {plugin}"


def check_cache_info(state, out, cwd):
    assert "openai:gpt-4o-mini" in out and state["loopback_url"] in out


def check_cache_info_json(state, out, cwd):
    if "--json" in state["argv"]:
        assert "openai:gpt-4o-mini" in json.dumps(json.loads(out))
    else:
        check_cache_info(state, out, cwd)


def check_filtered_clear(state, out, cwd):
    # The documented filter names another endpoint than the loopback's: nothing of ours is removed.
    assert "removed 0 cached responses" in out


def check_clear_all(state, out, cwd):
    removed = re.search(r"removed (\d+) cached responses", out)
    assert removed and int(removed.group(1)) > 0, out


def check_classes_init(state, out, cwd):
    assert (cwd / "my_data" / "classes.toml").is_file()


def check_classes_check(state, out, cwd):
    assert "classes.toml" in out


# ----------------------------------------------------------------------------- the plan

PLAN: dict[str, Run | Covered | Skip] = {
    "make demo": Skip("creates .venv and pip-installs torch and the project; it runs the first "
                      "`harness run` and `harness leaderboard` entries below"),
    "make test": Skip("creates .venv and runs this test suite"),
    "harness run --benchmark demo --gate oracle --models random": Run(remember="demo_run", check=check_demo_run),
    "harness run --benchmark demo --models random --policy demo --costs costs-example":
        Run(remember="policy_run", check=check_policy_run),
    "harness run --benchmark mvtec-ad --data-root ../shared/data/mvtec_ad --category bottle --gate oracle "
    "--models random": Run(remember="bottle_run", check=check_bottle_run, needs_shared_data=True),
    "harness list": Run(check=check_list),
    "harness leaderboard": Run(check=check_leaderboard),
    "harness report RUN_ID ... -o report.html": Run({"RUN_ID": "demo_run", "...": "policy_run"}, check=check_report),
    "harness report RUN_ID [RUN_ID ...] -o report.html":
        Run({"RUN_ID": ["demo_run", "policy_run"]}, check=check_report),
    "harness compare RUN_A RUN_B": Run({"RUN_A": "demo_run", "RUN_B": "policy_run"}, check=check_compare),
    "harness compare RUN_A RUN_B [--model SPEC | --model SPEC_A=SPEC_B] [--protocol anomalous] "
    "[--output compare.json]": Run({"RUN_A": "demo_run", "RUN_B": "policy_run", "SPEC": "spec",
                                    "SPEC_A": "spec", "SPEC_B": "spec"}, check=check_compare),
    "harness score --benchmark mvtec-ac --predictions FILE --format velm --name NAME":
        Run({"FILE": "velm_file", "NAME": "score_name"}, check=check_score("mine")),
    "harness score --benchmark mvtec-ac --predictions gpt4o.json --format velm --name velm-gpt-4o":
        Run(check=check_score("velm-gpt-4o")),
    "harness act RUN_ID --policy demo --costs costs-example": Run({"RUN_ID": "demo_run"}, check=check_act),
    "harness act RUN_ID --table4 --seeds 5": Run({"RUN_ID": "demo_run"}, check=check_table4),
    "harness plugins": Run(check=check_plugins),
    "harness cache info": Run(check=check_cache_info),
    "harness cache info [--json]": Run(check=check_cache_info_json),
    "harness cache clear --model openai:gpt-4o-mini --endpoint http://localhost:8000/v1":
        Run(check=check_filtered_clear),
    "harness cache clear": Run(stdin="y\n", check=check_clear_all),
    "harness classes init DATA_ROOT": Run({"DATA_ROOT": "data_root"}, check=check_classes_init),
    "harness classes check --data-root DATA_ROOT": Run({"DATA_ROOT": "data_root"}, check=check_classes_check),
    # "Your own images, start to finish": followed in every layout and format, against a loopback server.
    **{command: Covered("tests/test_own_images_walkthrough.py::test_the_walkthrough_on_every_layout_with_mixed_formats")
       for command in (
           "harness classes init DATA", "harness classes check --data-root DATA",
           "harness run --benchmark folder --data-root DATA --gate patchcore "
           "--models openai:gpt-4o,anthropic:claude-sonnet-4-5",
           "harness report RUN_ID -o report.html")},
    "harness run --benchmark mvtec-ac --data-root DATA_ROOT --gate oracle --models openai:Qwen/Qwen2.5-VL-7B-Instruct":
        Skip("needs vLLM servers of an open VLM on GPUs; tests/test_openai_replicas.py runs replicas as one model "
             "against loopback servers"),
    **{command: Skip("needs a Ray cluster of several machines (and an open VLM's weights); "
                     "tests/test_ray_executor.py runs these on a local Ray instance")
       for command in (
           "harness run --benchmark mvtec-ac --data-root DATA --gate patchcore --models hf:/models/Qwen2-VL-7B-Instruct "
           "--config ray.toml --executor ray --ray-address HEAD_HOST:6379",
           "harness sweep SWEEP.toml --executor ray --ray-address HEAD_HOST:6379 --parallel 4")},
    "harness classes init DATA_ROOT --benchmark visa-ac": Covered(
        "tests/test_classes_layouts.py::test_visa_ac_on_a_partial_original_tree_lists_the_released_classes_and_says_it_is_partial"),
    "harness batches RUN_ID [--cancel]": Covered(
        "tests/test_batches_command.py::test_a_killed_batch_run_is_shown_then_resumed_without_submitting_again"),
    "harness sweep SWEEP.toml": Covered("tests/test_sweep.py::test_a_sweep_runs_every_cell_then_a_second_one_skips_them_all"),
    "harness sweep SWEEP.toml [--dry-run] [--parallel N] [--results-dir DIR]":
        Covered("tests/test_sweep.py::test_a_failing_cell_is_reported_and_the_others_finish"),
    "pip install ./examples/harness-echo":
        Covered("tests/test_example_plugin.py::test_pip_installed_it_with_its_metadata_and_left_the_source_clean"),
    "harness run --benchmark demo --gate oracle --models echo":
        Covered("tests/test_example_plugin.py::test_harness_run_with_models_echo"),
    "pip install ./examples/harness-echo ./harness-meandiff ./harness-csvbench":
        Covered("tests/test_docs.py::test_the_three_walk_through_packages_install_and_run_together"),
    "harness run --benchmark csv --data-root my_data --gate meandiff --models echo":
        Covered("tests/test_docs.py::test_the_three_walk_through_packages_install_and_run_together"),
}


# ----------------------------------------------------------------------------- helpers


def all_documented() -> dict[str, list[DocCommand]]:
    found: dict[str, list[DocCommand]] = {}
    for doc in DOCS:
        for command in documented_commands(doc):
            found.setdefault(command.text, []).append(command)
    return found


def concrete(text: str, run: Run, state: dict) -> list[list[str]]:
    """The argument lists of `text` (every form of a synopsis), placeholders replaced from `state`."""
    forms = []
    for form in ([text] if "..." in run.values else expand_synopsis(text)):
        uses: dict[str, int] = {}

        def value(match: re.Match) -> str:
            if match.group(0) not in run.values:
                raise AssertionError(f"{text}: PLAN gives no value for {match.group(0)}")
            key = run.values[match.group(0)]
            if isinstance(key, list):
                index = uses.get(match.group(0), 0)
                uses[match.group(0)] = index + 1
                key = key[index]
            return str(state[key])

        words = shlex.split(form)[1:]  # without the leading "harness"
        # A bare "..." (more of the same) takes its own value when PLAN gives one.
        words = [str(state[run.values[w]]) if w == "..." and w in run.values else PLACEHOLDER.sub(value, w)
                 for w in words]
        forms.append(words)
    return forms


@pytest.fixture
def sandbox(tmp_path, monkeypatch, small_tree):
    """A checkout-like working directory, loopback hosted APIs, and inputs the commands name.

    HARNESS_CACHE_DIR is the session's cache here (conftest's `private_cache`), so the demo is generated
    at most once per session; the commands then get a cache of their own that links to it.
    """
    from harness_datasets import demo
    from harness_datasets.benchmarks import MVTecACBenchmark

    repo = tmp_path / "repo"
    repo.mkdir()
    for name in LINKED:
        (repo / name).symlink_to(ROOT / name, target_is_directory=True)
    if SHARED_DATA.is_dir():
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared" / "data").symlink_to(SHARED_DATA, target_is_directory=True)
    # A cache of our own (`harness cache clear` empties it), sharing the session's generated demo.
    cache = tmp_path / "cache"
    cache.mkdir()
    demo_root = demo.default_demo_root()
    if not demo.is_complete(demo_root):
        demo.generate_demo(demo_root)
    (cache / demo_root.name).symlink_to(demo_root, target_is_directory=True)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(repo)

    shutil.copytree(small_tree, repo / "my_data", ignore=shutil.ignore_patterns("classes.toml"))
    bottle = MVTecACBenchmark().released(["bottle"]).categories[0]
    names = {c.key: c.name for c in bottle.classes} | {"good": "good"}
    predictions = {f"bottle_{s.label}_{Path(s.relpath).stem}": names[s.label] for s in bottle.test_samples}
    (tmp_path / "velm.json").write_text(json.dumps(predictions), encoding="utf-8")
    (repo / "gpt4o.json").write_text(json.dumps(predictions), encoding="utf-8")

    server = LoopbackServer("scratch", max_seconds=300)
    server.start()
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-readme-test-0000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-readme-test-0000")
    state = {"cwd": repo, "velm_file": tmp_path / "velm.json", "score_name": "mine", "data_root": "my_data",
             "spec": "random", "loopback_url": server.openai_base_url}
    try:
        yield state
    finally:
        server.stop()


# ----------------------------------------------------------------------------- tests


def test_the_extractor_reads_shell_blocks_as_documented(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Text.\n\n```bash\n$ harness list   # a comment\nharness run --benchmark demo \\\n"
        "    --models 'a # b'\necho no\n```\n\n```toml\nharness = 1\n```\n\n"
        "    harness leaderboard\n\nA paragraph\n    harness not-a-block\n", encoding="utf-8")
    assert [(c.text, c.line) for c in documented_commands(page)] == [
        ("harness list", 4), ("harness run --benchmark demo --models 'a # b'", 5), ("harness leaderboard", 14)]
    assert expand_synopsis("harness x A [--b B | --c] [--d ...]") == [
        "harness x A", "harness x A --b B --d", "harness x A --c --d"]


def test_every_documented_command_has_an_entry():
    missing = [f"{c.file}:{c.line}: {text}" for text, uses in all_documented().items() if text not in PLAN
               for c in uses[:1]]
    assert not missing, "documented commands with no entry in PLAN (add one):\n" + "\n".join(missing)


def test_every_entry_names_a_documented_command():
    stale = [text for text in PLAN if text not in all_documented()]
    assert not stale, "PLAN entries that no doc shows any more (remove or update them):\n" + "\n".join(stale)


def test_make_demo_runs_only_commands_run_here():
    """`make demo` is skipped (it installs packages); the harness commands in its recipe run above."""
    recipe, inside = [], False
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        if line.startswith("demo:"):
            inside = True
        elif inside and line.startswith("\t"):
            recipe.append(line.strip().replace("$(BIN)/", ""))
        elif inside:
            break
    harness_lines = [line for line in recipe if line.startswith("harness ")]
    assert harness_lines, f"no harness command found in the Makefile's demo recipe: {recipe}"
    for line in harness_lines:
        assert isinstance(PLAN.get(line), Run), f"`make demo` runs {line!r}, which this test does not run"


def test_covered_commands_name_tests_that_exist():
    for text, entry in PLAN.items():
        if isinstance(entry, Covered):
            path, name = entry.test.split("::")
            assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8"), f"{text}: {entry.test} not found"


def test_documented_commands_run_as_written(sandbox, capsys, monkeypatch):
    """The `Run` entries in order; one failure message per broken command, all of them at once."""
    state = sandbox
    # Something for `harness cache info` to show: one hosted model's answers, from the loopback server.
    code, out, err = run_cli("run", "--benchmark", "demo", "--models", "openai:gpt-4o-mini", "--limit", "1",
                             "--results-dir", state["cwd"].parent / "setup-results", capsys=capsys)
    assert code == 0, out + err
    failures: list[str] = []
    skipped: list[str] = []
    for text, entry in PLAN.items():
        if not isinstance(entry, Run):
            continue
        if entry.needs_shared_data and not SHARED_DATA.is_dir():
            skipped.append(text)
            continue
        for argv in concrete(text, entry, state):
            before = {p.name for p in (state["cwd"] / "results").glob("*")}
            monkeypatch.setattr(sys, "stdin", io.StringIO(entry.stdin or ""))
            code, out, err = run_cli(*argv, capsys=capsys)
            shown = "harness " + " ".join(argv)
            if code != entry.code:
                failures.append(f"{shown}: exit {code}, expected {entry.code}\n{out[-1500:]}\n{err[-1500:]}")
                continue
            if entry.remember:
                made = sorted({p.name for p in (state["cwd"] / "results").glob("*")} - before - {"LEADERBOARD.md"})
                assert len(made) == 1, f"{shown} made run folders {made}, expected one"
                state[entry.remember] = made[0]
            if entry.check:
                state["argv"] = argv
                try:
                    entry.check(state, out, state["cwd"])
                except (AssertionError, OSError, ValueError, KeyError) as error:
                    failures.append(f"{shown}: {type(error).__name__}: {error}\n{out[-1500:]}\n{err[-1500:]}")
    assert not failures, "\n\n".join(failures)
    if skipped:
        pytest.skip(f"{SHARED_DATA} is absent; not run: " + "; ".join(skipped))
