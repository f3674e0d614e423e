"""``--executor ray``: the same records and metrics as the local executor, actors killed and worker processes
that exit survived with every sample recorded once, resume after the driver stopped, and the clear errors.

One local Ray instance serves the session (`ray_cluster` in conftest.py); each run here starts its own
gate actors and model replicas on it, as a real run would.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest

from conftest import HARNESS, kill_after_records, run_cli
from harness import plugins
from harness.errors import HarnessError
from harness.gates import FittedGate, OracleGate
from harness.options import Options
from harness.results import load_run
from harness.run.run_config import RunConfig
from harness.run.runner import Run
from harness.testing import plugin_of

#: What differs between two runs of the same inputs: clocks, and the executor in the provenance.
TIMES = {"latency_s", "queued_s"}


def run_with(executor: str, registry=None, progress=None, **settings):
    registry = registry or plugins.load_registry()
    config = RunConfig(n_boot=50, use_cache=False, executor=executor, **settings)
    run = registry.get("executors", executor).obj(config, registry, progress=progress)
    return run, run.execute()


def comparable(records):
    """Records keyed by (sample, model, repeat), without their clocks; every key once."""
    keys = Counter((r["sample_id"], r["model"], r["repeat"]) for r in records)
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
    return {(r["sample_id"], r["model"], r["repeat"]): {k: v for k, v in r.items() if k not in TIMES} for r in records}


def without_times(value):
    """run.json metrics without latency figures (the only ones that depend on the clock)."""
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if "latency" not in k and k not in TIMES}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def assert_same_run(local, ray_result):
    assert comparable(ray_result.records) == comparable(local.records)
    assert without_times(ray_result.run["metrics"]) == without_times(local.run["metrics"])
    assert ray_result.run["config"] == local.run["config"], "where the stages ran is not part of the config"
    assert ray_result.run["provenance"]["executor"]["name"] == "ray"
    assert local.run["provenance"]["executor"] == {"name": "local"}


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    import tiny_vlms

    return tiny_vlms.build("llava", tmp_path_factory.mktemp("tiny-llava"))


def test_the_tiny_benchmark_with_random_knn_and_a_tiny_hf_model_gives_the_same_records(
        ray_cluster, harness_tiny_benchmark, tiny_llava, tmp_path):
    hf = f"hf:{tiny_llava}"
    settings = dict(benchmark="folder", data_root=harness_tiny_benchmark.root, shots=1, models=["random", "knn", hf],
                    model_options={hf: {"max_new_tokens": 4, "dtype": "float32", "device": "cpu"}})
    _, local = run_with("local", results_dir=tmp_path / "local", **settings)
    ray_run, on_ray = run_with("ray", results_dir=tmp_path / "ray", **settings)
    assert_same_run(local, on_ray)
    assert {r["model"] for r in on_ray.records} == {"random", "knn", hf}
    assert any(r["called"] and r["model"] == hf for r in on_ray.records), "the replica answered"
    assert sum(ray_run.pools[hf].answered) == sum(1 for r in on_ray.records if r["model"] == hf and r["called"])
    executor = on_ray.run["provenance"]["executor"]
    assert executor["replicas"] == {hf: 1} and executor["gate_resources"] == {"num_cpus": 1.0, "num_gpus": 0.0}


def test_the_demo_gives_the_same_records_and_metrics(ray_cluster, tmp_path):
    settings = dict(benchmark="demo", models=["random"], limit=12)
    _, local = run_with("local", results_dir=tmp_path / "local", **settings)
    _, on_ray = run_with("ray", results_dir=tmp_path / "ray", **settings)
    assert_same_run(local, on_ray)
    assert len(on_ray.records) == 36


def test_a_replica_killed_mid_run_is_restarted_and_every_sample_recorded_once(
        ray_cluster, harness_tiny_benchmark, tiny_llava, tmp_path):
    hf = f"hf:{tiny_llava}"
    settings = dict(benchmark="folder", data_root=harness_tiny_benchmark.root, gate="none", models=[hf], limit=5,
                    model_options={hf: {"max_new_tokens": 4, "dtype": "float32", "device": "cpu", "batch_size": 2}})
    _, local = run_with("local", results_dir=tmp_path / "local", **settings)
    registry = plugins.load_registry()
    config = RunConfig(n_boot=50, use_cache=False, executor="ray", results_dir=tmp_path / "ray",
                       executor_options={"replicas": 2, "replica_cpus": 0.5, "gate_cpus": 0.5}, **settings)
    killed = {}

    def kill_one(category, done, total):
        if done == 3 and not killed:
            pool = run.pools[hf]
            killed["answered"] = pool.answered[0]
            ray_cluster.kill(pool.handles[0], no_restart=False)  # Ray restarts it; its calls in flight are retried

    run = registry.get("executors", "ray").obj(config, registry, progress=kill_one)
    on_ray = run.execute()
    assert killed, "the replica was killed mid-run"
    assert run.pools[hf].answered[0] > killed["answered"], "the restarted replica answered again"
    assert not [r["error_detail"] for r in on_ray.records if r["error"] in ("backend_error", "timeout")]
    assert_same_run(local, on_ray)


class ExitOnceOptions(Options):
    marker: str  # a file that does not exist yet: the first worker to score creates it, then exits


class ExitOnceGate(OracleGate):
    """The oracle, except that the first worker to score with it exits (os._exit) mid-batch."""

    name = "exit-once"
    Options = ExitOnceOptions

    def fit(self, category):
        return ExitOnceFitted(super().fit(category), Path(self.options.marker))


class ExitOnceFitted(FittedGate):
    def __init__(self, inner, marker):
        self.inner, self.marker = inner, marker

    def score(self, sample, image):
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies without a word, as on a crash or an OOM kill
        return self.inner.score(sample, image)

    def info(self):
        return self.inner.info()


def test_a_worker_process_that_exits_is_retried_and_every_sample_recorded_once(
        ray_cluster, harness_tiny_benchmark, tmp_path):
    registry = plugins.load_registry(extra_plugins=[("exit-once", plugin_of(gates=[ExitOnceGate]))])
    marker = tmp_path / "exited"
    settings = dict(benchmark="folder", data_root=harness_tiny_benchmark.root, models=["random"])
    _, local = run_with("local", results_dir=tmp_path / "local", **settings)
    config = RunConfig(n_boot=50, use_cache=False, executor="ray", results_dir=tmp_path / "ray", gate="exit-once",
                       gate_options={"marker": str(marker)}, **settings)
    on_ray = registry.get("executors", "ray").obj(config, registry).execute()
    assert marker.exists() and int(marker.read_text()) != os.getpid(), "a worker exited"
    assert comparable(on_ray.records) == {
        key: {**record, "gate": {**record["gate"], "name": "exit-once"}} for key, record in comparable(local.records).items()
    }


def test_a_run_whose_driver_stopped_is_resumed_on_ray(ray_cluster, harness_tiny_benchmark, tmp_path):
    settings = dict(benchmark="folder", data_root=harness_tiny_benchmark.root, gate="none", models=["random"])
    _, local = run_with("local", results_dir=tmp_path / "local", **settings)

    def stop(category, done, total):
        if done == 4:
            raise RuntimeError("the driver stopped")

    with pytest.raises(RuntimeError, match="driver stopped"):
        run_with("ray", results_dir=tmp_path / "ray", run_id="stopped", progress=stop, **settings)
    run, partial = load_run(tmp_path / "ray" / "stopped")
    assert run["status"] == "failed" and 0 < len(partial) < len(local.records)
    config = RunConfig.from_json(run["config"], tmp_path / "ray", "stopped")
    config.use_cache, config.executor = False, "ray"
    resumed = plugins.load_registry().get("executors", "ray").obj(config, plugins.load_registry()).execute(resume=True)
    assert comparable(resumed.records) == comparable(local.records)
    run, records = load_run(tmp_path / "ray" / "stopped")
    assert run["status"] == "finished" and run["resumed"][-1]["executor"]["name"] == "ray"
    assert comparable(records) == comparable(local.records)


def test_an_unknown_executor_names_the_known_ones(tmp_path, capsys):
    code, _, err = run_cli("run", "--benchmark", "demo", "--models", "random", "--executor", "dask",
                           "--results-dir", tmp_path, capsys=capsys)
    assert code == 2 and "unknown executor 'dask'" in err and "local, ray" in err


def test_ray_missing_says_which_pip_command_installs_it(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # import ray now fails as if not installed
    with pytest.raises(HarnessError, match=r"pip install 'anomaly-harness\[ray\]'"):
        plugins.load_registry().get("executors", "ray").obj(
            RunConfig(models=["random"], executor="ray", results_dir=tmp_path), plugins.load_registry())


def test_executor_options_are_checked_before_anything_runs(tmp_path):
    registry = plugins.load_registry()
    with pytest.raises(HarnessError, match="replicas"):
        registry.get("executors", "ray").obj(
            RunConfig(models=["random"], executor="ray", executor_options={"replicas": 0}, results_dir=tmp_path), registry)
    assert issubclass(registry.get("executors", "local").obj, Run)


def test_a_sweep_on_ray_runs_its_cells_there_and_a_second_one_skips_them(ray_cluster, harness_tiny_benchmark, tmp_path,
                                                                         capsys):
    sweep = tmp_path / "grid.toml"
    sweep.write_text(f'benchmark = "folder"\ndata-root = "{harness_tiny_benchmark.root}"\nresults-dir = "runs"\n'
                     '[sweep]\nname = "grid"\ngate = ["oracle", "none"]\nmodels = "random"\n', encoding="utf-8")
    code, out, err = run_cli("sweep", sweep, "--executor", "ray", capsys=capsys)
    assert code == 0, err
    runs = sorted((tmp_path / "runs").glob("grid-*"))
    assert len(runs) == 2 and re.findall(r"│ (finished|skipped) +│", out) == ["finished"] * 2
    for folder in runs:
        run, records = load_run(folder)
        assert run["status"] == "finished" and run["provenance"]["executor"]["name"] == "ray"
        assert len(records) == len(harness_tiny_benchmark.load(harness_tiny_benchmark.root).samples)
    code, out, err = run_cli("sweep", sweep, "--executor", "ray", capsys=capsys)
    assert code == 0, err
    assert re.findall(r"│ (finished|skipped) +│", out) == ["skipped"] * 2
    code, out, _ = run_cli("sweep", sweep, "--dry-run", capsys=capsys)
    assert "2 cells of sweep grid (2 finished)" in out, "where cells ran is no part of their ids"


def test_executor_options_for_the_local_executor_are_refused_not_ignored(tmp_path):
    registry = plugins.load_registry()
    with pytest.raises(HarnessError, match="executor 'local' takes none"):
        Run(RunConfig(models=["random"], executor_options={"replicas": 2}, results_dir=tmp_path), registry)


@pytest.mark.skipif(os.name != "posix", reason="kill -9 needs POSIX signals")
def test_a_driver_killed_mid_run_is_resumed_on_ray_with_every_sample_once(ray_cluster, small_tree, tmp_path,
                                                                          slow_openai_url):
    # A real driver process joins the session's cluster and is killed with SIGKILL (no cleanup, no
    # run.json update); its actors die with it, and `harness run --resume` on Ray finishes the run.
    import subprocess

    address = ray_cluster.get_runtime_context().gcs_address
    (tmp_path / "run.toml").write_text(f'[model-options."openai:gpt-4o"]\nbase_url = "{slow_openai_url}"\nconcurrency = 1\n')
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-ray-kill-0001"}
    common = ["--results-dir", "runs", "--executor", "ray", "--ray-address", address, "--no-cache"]
    driver = subprocess.Popen([*HARNESS, "run", "--benchmark", "folder", "--data-root", str(small_tree), "--gate", "none",
                               "--models", "openai:gpt-4o", "--config", "run.toml", "--run-id", "killed", *common],
                              env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    left = kill_after_records(driver, tmp_path / "runs" / "killed" / "samples.jsonl", 8, timeout_s=90)
    assert 8 <= left < 36, "the driver was killed part-way through the run"
    again = subprocess.run([*HARNESS, "run", "--resume", "killed", "--config", "run.toml", *common],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    run, records = load_run(tmp_path / "runs" / "killed")
    assert run["status"] == "finished" and run["resumed"][-1]["executor"]["name"] == "ray"
    ids = [r["sample_id"] for r in records]
    assert len(ids) == len(set(ids)) == 36, "every sample exactly once"
    assert {r["response"] for r in records if r["called"]} == {"crack"}
    assert not [r["sample_id"] for r in records if r["error"] in ("backend_error", "timeout")], "no call was lost"


def test_a_cluster_that_cannot_be_joined_is_named_with_the_reason_and_the_way_out():
    # Ray raises a bare RuntimeError (several lines) when the running instance has another Ray or Python.
    from harness_ray.cluster import connect

    class RunningElsewhere:
        @staticmethod
        def is_initialized():
            return False

        @staticmethod
        def init(**kwargs):
            raise RuntimeError("Version mismatch: The cluster was started with:\n    Ray: 2.60.0\n    Python: 3.11.2\n")

    with pytest.raises(HarnessError, match=r"cannot join the Ray cluster at 10\.0\.0\.1:6379: Version mismatch: The cluster "
                                           r"was started with: Ray: 2\.60\.0 Python: 3\.11\.2\..*--ray-address local"):
        connect(RunningElsewhere, "10.0.0.1:6379")
