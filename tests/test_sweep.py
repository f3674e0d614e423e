"""``harness sweep``: the cells of a sweep file are ordinary runs; a second sweep skips finished cells and
resumes unfinished ones; a failing cell is reported while the others finish."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from conftest import HARNESS, kill_after_records, run_cli
from harness.errors import HarnessError
from harness.results import load_run
from harness_sweep.sweep_file import load_sweep


def write_sweep(folder: Path, small_tree: Path, axes: str, shared: str = "") -> Path:
    """A sweep over the small tree (folder benchmark); ``shared`` settings go before ``[sweep]``."""
    path = folder / "grid.toml"
    path.write_text(f'benchmark = "folder"\ndata-root = "{small_tree}"\nresults-dir = "runs"\n{shared}\n'
                    f'[sweep]\nname = "grid"\n{axes}\n', encoding="utf-8")
    return path


GRID = 'gate = ["oracle", "none"]\nseed = [0, 1]\nmodels = "random"'


def states(output: str) -> dict[str, str]:
    """run id -> state from the rows of the summary table (printed after the leaderboard)."""
    return dict(re.findall(r"│ \d+ +│ (\S+) +│ (\w+) +│", output.split("Sweep grid")[-1]))


def test_the_dry_run_lists_the_cross_product_in_order_and_runs_nothing(tmp_path, small_tree, capsys):
    sweep = write_sweep(tmp_path, small_tree, GRID)
    code, out, err = run_cli("sweep", sweep, "--dry-run", capsys=capsys)
    assert code == 0, err
    lines = [line.split() for line in out.splitlines() if line.startswith("new ")]
    assert [(line[4], line[7]) for line in lines] == [  # gate before seed, each in the file's order
        ("gate=oracle", "seed=0"), ("gate=oracle", "seed=1"), ("gate=none", "seed=0"), ("gate=none", "seed=1")]
    ids = [line[1] for line in lines]
    assert len(set(ids)) == 4 and ids[0].startswith("grid-folder-all-oracle-random-velm-s0-k0-")
    assert "4 cells of sweep grid (4 new)" in out
    assert not (tmp_path / "runs").exists()
    assert [cell.run_id for cell in load_sweep(sweep).cells] == ids, "ids are stable from one reading to the next"


def test_a_sweep_runs_every_cell_then_a_second_one_skips_them_all(tmp_path, small_tree, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = write_sweep(tmp_path, small_tree, GRID)
    code, out, err = run_cli("sweep", sweep, capsys=capsys)
    assert code == 0, err
    cells = load_sweep(sweep).cells
    assert set(states(out).values()) == {"finished"} and len(states(out)) == 4
    runs = tmp_path / "runs"
    written = {}
    for cell in cells:
        run, records = load_run(runs / cell.run_id)
        assert run["status"] == "finished" and run["config"]["gate"] == cell.config.gate
        assert run["config"]["seed"] == cell.config.seed and len(records) == 36
        written[cell.run_id] = ((runs / cell.run_id / "run.json").read_bytes(),
                                (runs / cell.run_id / "samples.jsonl").stat().st_mtime_ns)
    assert (runs / "LEADERBOARD.md").is_file() and "random" in (runs / "LEADERBOARD.md").read_text()

    code, out, err = run_cli("sweep", sweep, capsys=capsys)
    assert code == 0, err
    assert set(states(out).values()) == {"skipped"} and len(states(out)) == 4
    for cell in cells:
        assert ((runs / cell.run_id / "run.json").read_bytes(),
                (runs / cell.run_id / "samples.jsonl").stat().st_mtime_ns) == written[cell.run_id], "a cell ran again"
    code, out, _ = run_cli("sweep", sweep, "--dry-run", capsys=capsys)
    assert "4 cells of sweep grid (4 finished)" in out


def test_a_killed_cell_is_resumed_and_ends_with_every_sample_once(tmp_path, small_tree, capsys):
    sweep = write_sweep(tmp_path, small_tree, 'seed = [0, 1]\nmodels = "random"', shared='gate = "none"')
    assert run_cli("sweep", sweep, capsys=capsys)[0] == 0
    killed, finished = load_sweep(sweep).cells
    folder = tmp_path / "runs" / killed.run_id
    # As a kill leaves it: 10 records and half of the 11th, run.json still saying "running".
    lines = (folder / "samples.jsonl").read_text().splitlines(keepends=True)
    (folder / "samples.jsonl").write_text("".join(lines[:10]) + lines[10][: len(lines[10]) // 2])
    run = json.loads((folder / "run.json").read_text())
    run["status"], run["metrics"] = "running", {}
    (folder / "run.json").write_text(json.dumps(run))
    untouched = (tmp_path / "runs" / finished.run_id / "run.json").read_bytes()

    _, listing, _ = run_cli("sweep", sweep, "--dry-run", capsys=capsys)
    assert f"resume    {killed.run_id}" in listing and f"finished  {finished.run_id}" in listing
    code, out, err = run_cli("sweep", sweep, capsys=capsys)
    assert code == 0, err
    assert states(out) == {killed.run_id: "resumed", finished.run_id: "skipped"}
    run, records = load_run(folder)
    assert run["status"] == "finished" and run["resumed"][0]["records_kept"] == 10
    assert len(records) == len(lines) and Counter(r["sample_id"] for r in records).most_common(1)[0][1] == 1
    assert (tmp_path / "runs" / finished.run_id / "run.json").read_bytes() == untouched


@pytest.mark.parametrize("parallel", ["1", "2"])
def test_a_failing_cell_is_reported_and_the_others_finish(tmp_path, small_tree, capsys, parallel):
    # random:bad's options are wrong: its cell fails; the random cells run after it (or, with --parallel 2,
    # in their own processes meanwhile).
    sweep = write_sweep(tmp_path, small_tree, 'gate = "none"\nmodels = ["random", "random:bad"]\nseed = [0, 1]',
                        shared='[model-options."random:bad"]\nseed = "x"')
    code, out, err = run_cli("sweep", sweep, "--parallel", parallel, capsys=capsys)
    assert code == 1
    cells = load_sweep(sweep).cells
    bad = [cell.run_id for cell in cells if cell.config.models == ["random:bad"]]
    assert {run_id: state for run_id, state in states(out).items() if state == "failed"}.keys() == set(bad)
    for run_id in bad:
        assert re.search(rf"failed: {re.escape(run_id)} \(exit 2\): invalid options for model 'random:bad': seed", err)
    for cell in cells:
        if cell.run_id not in bad:
            assert load_run(tmp_path / "runs" / cell.run_id)[0]["status"] == "finished"


def test_an_unknown_executor_is_a_clear_error(tmp_path, small_tree, capsys):
    # (--executor ray: tests/test_ray_executor.py)
    code, _, err = run_cli("sweep", write_sweep(tmp_path, small_tree, GRID), "--executor", "dask", capsys=capsys)
    assert code == 2 and "unknown executor 'dask'" in err and "local, ray" in err
    assert not (tmp_path / "runs").exists()


def test_paths_are_read_from_the_file_and_ids_follow_the_settings(tmp_path, small_tree):
    (tmp_path / "data").symlink_to(small_tree, target_is_directory=True)
    path = tmp_path / "s.toml"
    path.write_text('benchmark = "folder"\ndata-root = "data"\n[sweep]\nmodels = [["random"], "random"]\n')
    with pytest.raises(HarnessError, match=r"s.toml: \[sweep\]: the cells .* are the same run"):
        load_sweep(path)
    path.write_text('benchmark = "folder"\ndata-root = "data"\n[sweep]\nmodels = [["random", "random:b"], "random"]\n')
    first = load_sweep(path)
    assert [c.config.models for c in first.cells] == [["random", "random:b"], ["random"]]
    assert first.cells[0].config.data_root == tmp_path / "data" and first.results_dir == Path("results")
    assert first.cells[0].run_id.startswith("s-folder-all-oracle-random+random_b-velm-s0-k0-")
    path.write_text(path.read_text().replace('[sweep]', 'limit = 3\n[sweep]'))
    assert {c.run_id for c in load_sweep(path).cells}.isdisjoint(c.run_id for c in first.cells), "limit changes results"
    path.write_text(path.read_text().replace('[sweep]', 'results-dir = "elsewhere"\n[sweep]'))
    moved = load_sweep(path)
    assert moved.results_dir == tmp_path / "elsewhere" and load_sweep(path, Path("x")).results_dir == Path("x")


@pytest.mark.parametrize("text, message", [
    ('limit = 3\n', r"no \[sweep\] table"),
    ('[sweep]\ngates = ["oracle"]\nlimit = 3\n', r"\[sweep\]: unknown key\(s\) limit; .*before \[sweep\]"),
    ('colour = "red"\n[sweep]\nseed = [0]\n', r"unknown key\(s\) colour"),
    ('[sweep]\nseed = [0, "one"]\n', r"\[sweep\] seed: entry 2 is 'one'; expected a whole number"),
    ('[sweep]\ngate = []\n', r"\[sweep\] gate is empty"),
    ('[sweep]\ngate = ["a"]\ngates = ["b"]\n', r"give gate or gates"),
    ('seed = 1\n[sweep]\nseeds = [0]\n', r"seeds is both in \[sweep\] and at the top level \(seed\)"),
    ('run-id = "x"\n[sweep]\nseed = [0]\n', r"run-id: each cell's run id is made from the sweep"),
    ('[model-options."openai:gpt-4o"]\n[sweep]\nmodels = ["random"]\n', r"model-options: 'openai:gpt-4o' is run by no cell"),
    ('[gate-options]\nthreshold = 1\n[sweep]\ngate = ["oracle"]\n', r"gate-options: with gate in \[sweep\].*'threshold'"),
    ('[sweep\n', r"not valid TOML"),
])
def test_bad_sweep_files_name_the_file_and_key(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, _, err = run_cli("sweep", path, "--dry-run", capsys=capsys)
    assert code == 2
    assert re.search(rf"{re.escape(str(path))}: .*{message}", " ".join(err.split())), err


@pytest.mark.skipif(os.name != "posix", reason="kill -9 needs POSIX signals")
def test_a_sweep_killed_mid_cell_resumes_that_cell_on_the_next_sweep(tmp_path, small_tree, slow_openai_url):
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-sweep-kill-0001"}
    # One request at a time, so the kill lands mid-cell; no cache, so the resume really calls the server.
    sweep = write_sweep(tmp_path, small_tree, 'models = "openai:gpt-4o"',
                        shared=f'gate = "none"\nno-cache = true\n[model-options."openai:gpt-4o"]\n'
                               f'base_url = "{slow_openai_url}"\nconcurrency = 1')
    (cell,) = load_sweep(sweep).cells
    process = subprocess.Popen([*HARNESS, "sweep", str(sweep)], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    left = kill_after_records(process, tmp_path / "runs" / cell.run_id / "samples.jsonl", 8)
    assert 8 <= left < 36, "the sweep was killed part-way through its cell"
    again = subprocess.run([*HARNESS, "sweep", str(sweep)], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert states(again.stdout) == {cell.run_id: "resumed"}
    run, records = load_run(tmp_path / "runs" / cell.run_id)
    assert run["status"] == "finished" and len(run["resumed"]) == 1
    ids = [r["sample_id"] for r in records]
    assert len(ids) == len(set(ids)) == 36, "every sample exactly once"


def test_the_readme_example_is_a_sweep_of_sixteen_cells(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    example = readme.split("### Sweeps", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "bottle.toml").write_text(example, encoding="utf-8")
    cells = load_sweep(tmp_path / "bottle.toml").cells
    assert len(cells) == 16 and cells[0].config.data_root == tmp_path / "../shared/data/mvtec_ad"
    assert re.fullmatch(r"bottle-mvtec-ad-bottle-oracle-random-velm-s0-k3-[0-9a-f]{8}", cells[0].run_id)
    assert cells[-1].config.models == ["random", "knn"] and cells[-1].config.model_options == {"knn": {}}
