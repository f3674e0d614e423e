"""The test kit: the conformance check (first-party classifiers pass, broken ones fail by name) and the pytest fixtures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import harness.testing.pytest_plugin
from harness.classifiers import Classifier, ClassifierOptions
from harness.errors import HarnessError
from harness.plugins import get_registry
from harness.testing import PluginRegistrar, TinyBenchmark, plugin_of, scripted_classifier, write_tiny_benchmark
from harness.testing.conformance import check_classifier, error_from_wire, tiny_prompt
from harness.testing.loopback import Fault, LoopbackServer
from harness.types import Prompt, Response
from harness_baselines.random_classifier import RandomClassifier


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_benchmark(tmp_path_factory.mktemp("tiny"))


def failed(report) -> dict[str, str]:
    return {check.name: check.detail for check in report.failures}


class FirstCandidate(Classifier):
    """A well-behaved in-process classifier that broken variants below start from."""

    plugin = "first"
    description = "answers the first candidate"

    async def classify(self, prompt: Prompt) -> Response:
        return Response(text=prompt.candidates[0].name)


# -- first-party classifiers pass ---------------------------------------------------------------


def test_random_conforms(tiny):
    report = check_classifier(RandomClassifier, options={"seed": 3}, bad_options=[{"seed": "x"}, {"concurrency": 0}],
                              data_root=tiny)
    report.raise_for_failures()
    assert report.names() == ["declaration", "options", "retries-declared", "records-complete", "permanent-error", "timeout"]


def test_a_plugin_module_with_one_classifier_can_be_checked_directly(tiny):
    import harness_baselines

    report = check_classifier(harness_baselines, data_root=tiny)
    assert report.classifier == "random" and report.ok, str(report)
    two = plugin_of(classifiers=[RandomClassifier, FirstCandidate])
    with pytest.raises(ValueError, match="registers 2 classifiers \\(random, first\\); pass the one to check"):
        check_classifier(two, data_root=tiny)


def test_something_that_is_no_classifier_fails_the_declaration(tiny):
    report = check_classifier(object, data_root=tiny)
    assert report.names() == ["declaration"]
    assert "not a harness.classifiers.Classifier subclass" in failed(report)["declaration"]


def test_knn_conforms_with_its_support_examples(tiny):
    pytest.importorskip("torch")
    from harness_patchcore import KnnClassifier

    report = check_classifier(KnnClassifier, options={"device": "cpu", "image_size": 64}, bad_options=[{"k": 0}],
                              data_root=tiny)
    report.raise_for_failures()


def sdk_errors(classifier_factory, server, prompt):
    """Real SDK exceptions, raised by the real client against faults on the wire."""
    def error(fault):
        return error_from_wire(classifier_factory(), server, fault, prompt)

    transient = [error(Fault.rate_limited()), error(Fault.server_error(503)), error(Fault.overloaded()), error(Fault.reset())]
    permanent = [error(Fault.unauthorized), error(Fault.error(400, "bad request")), error(Fault.error(404))]
    return transient, permanent


def test_openai_conforms_against_the_loopback_server(tiny, monkeypatch):
    pytest.importorskip("openai")
    from harness_openai import OpenAIClassifier, OpenAIOptions

    key = "sk-conformance-openai-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with LoopbackServer(max_seconds=120) as server:
        options = {"base_url": server.openai_base_url, "timeout_s": 5}
        transient, permanent = sdk_errors(lambda: OpenAIClassifier("gpt-4o", OpenAIOptions(**options)), server, tiny_prompt(tiny))
        assert [type(e).__name__ for e in permanent] == ["AuthenticationError", "BadRequestError", "NotFoundError"]
        report = check_classifier(
            OpenAIClassifier, "gpt-4o", options, transient_errors=transient, permanent_errors=permanent,
            bad_options=[{"temperature": 5}, {"api_key_env": "sk-pasted-key"}, {"extra_headers": {"Authorization": "x"}}],
            server=server, secrets=[key], data_root=tiny,
        )
    report.raise_for_failures()
    assert {"wire-permanent", "wire-transient", "wire-malformed", "wire-refusal", "no-secret"} <= set(report.names())
    assert report.names().count("transient-retried") == 4


def test_anthropic_conforms_against_the_loopback_server(tiny, monkeypatch):
    pytest.importorskip("anthropic")
    from harness_anthropic.classifier import AnthropicClassifier, AnthropicOptions

    key = "sk-ant-conformance-0123456789"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    with LoopbackServer(max_seconds=120) as server:
        options = {"base_url": server.anthropic_base_url, "timeout_s": 5}
        transient, permanent = sdk_errors(
            lambda: AnthropicClassifier("claude-loopback-test", AnthropicOptions(**options)), server, tiny_prompt(tiny))
        report = check_classifier(
            AnthropicClassifier, "claude-loopback-test", options, transient_errors=transient, permanent_errors=permanent,
            server=server, secrets=[key], data_root=tiny,
        )
    report.raise_for_failures()


# -- broken classifiers fail, by name ------------------------------------------------------------


def test_a_well_behaved_classifier_passes(tiny):
    check_classifier(FirstCandidate, data_root=tiny).raise_for_failures()


def test_retrying_everything_fails_retries_declared(tiny):
    class RetriesBugs(FirstCandidate):
        def should_retry(self, error):
            return True

    problems = failed(check_classifier(RetriesBugs, data_root=tiny))
    assert "should_retry(ValueError) is True" in problems["retries-declared"]
    assert "should_retry(RuntimeError) is True" in problems["retries-declared"]
    assert "permanent-error" in problems  # and the injected permanent error was tried twice
    assert "tried 2 times" in problems["permanent-error"]


def test_a_transient_error_not_declared_fails_both_checks(tiny):
    class Overloaded(Exception):
        pass

    problems = failed(check_classifier(FirstCandidate, transient_errors=[Overloaded("busy")], data_root=tiny))
    assert "should_retry(Overloaded) is False" in problems["retries-declared"]
    assert "attempts 1, expected 2" in problems["transient-retried"]


def test_options_that_accept_anything_or_lack_descriptions_fail(tiny):
    from pydantic import ConfigDict, Field

    class LaxOptions(ClassifierOptions):
        model_config = ConfigDict(extra="ignore", frozen=True)
        level: int = Field(1, ge=0)  # no description

    class Lax(FirstCandidate):
        Options = LaxOptions

    problems = failed(check_classifier(Lax, bad_options=[{"level": -1}], data_root=tiny))
    assert "{'conformance_no_such_option': 1} was accepted" in problems["options"]
    assert "options without a description: level" in problems["options"]
    assert "{'level': -1}" not in problems["options"]  # that one was rejected, naming the option


def test_a_bad_option_that_is_accepted_fails(tiny):
    problems = failed(check_classifier(FirstCandidate, bad_options=[{"concurrency": 3}], data_root=tiny))
    assert "{'concurrency': 3} was accepted" in problems["options"]


def test_a_classifier_that_never_answers_a_candidate_fails_records_complete(tiny):
    class Chatty(FirstCandidate):
        async def classify(self, prompt):
            return Response(text="It is hard to say from these pictures.")

    problems = failed(check_classifier(Chatty, data_root=tiny))
    # "hard to say" is an inability: read as a refusal, which is no answer either.
    assert "no sample was answered: refused x12" in problems["records-complete"]


def test_a_sync_classify_fails_the_declaration_and_stops_there(tiny):
    class Sync(FirstCandidate):
        def classify(self, prompt):  # type: ignore[override]
            return Response(text="x")

    report = check_classifier(Sync, data_root=tiny)
    assert report.names() == ["declaration"]
    assert "classify must be `async def`" in failed(report)["declaration"]


def test_a_missing_model_id_fails_the_declaration(tiny):
    class NeedsId(FirstCandidate):
        requires_model_id = True

    assert "no model_id" in failed(check_classifier(NeedsId, data_root=tiny))["declaration"]


def test_a_secret_in_the_provenance_fails_no_secret(tiny):
    class Leaky(FirstCandidate):
        def describe(self):
            return {"spec": self.spec, "api_key": "hunter2-secret-value"}

    problems = failed(check_classifier(Leaky, secrets=["hunter2-secret-value"], data_root=tiny))
    assert "a secret is written in run.json" in problems["no-secret"]


def test_a_backend_that_turns_http_errors_into_answers_fails_the_wire_checks(tiny, monkeypatch):
    pytest.importorskip("openai")
    from harness_openai import OpenAIClassifier

    class Swallowing(OpenAIClassifier):
        async def classify(self, prompt):
            try:
                return await super().classify(prompt)
            except Exception:  # the bug: a failure becomes an answer
                return Response(text=prompt.candidates[0].name)

    monkeypatch.setenv("OPENAI_API_KEY", "sk-conformance-swallow-0123")
    with LoopbackServer(max_seconds=120) as server:
        report = check_classifier(Swallowing, "gpt-4o", {"base_url": server.openai_base_url}, server=server, data_root=tiny)
    problems = failed(report)
    assert "recorded None, expected one of ['backend_error']" in problems["wire-permanent"]
    assert "wire-malformed" in problems
    assert "wire-refusal" not in problems  # a refusal still raised nothing and was recorded as refused


def test_the_report_reads_as_a_checklist_and_raises_with_every_failure(tiny):
    class RetriesBugs(FirstCandidate):
        def should_retry(self, error):
            return True

    report = check_classifier(RetriesBugs, data_root=tiny)
    assert not report.ok
    text = str(report)
    assert text.startswith("conformance of first: 2 check(s) failed")
    assert "  PASS declaration" in text and "  FAIL retries-declared:" in text
    with pytest.raises(AssertionError, match="FAIL permanent-error"):
        report.raise_for_failures()


def test_error_from_wire_refuses_a_classifier_that_does_not_raise(tiny):
    Scripted, _ = scripted_classifier(lambda prompt: "fine")
    with LoopbackServer() as server:
        with pytest.raises(AssertionError, match="instead of raising"):
            error_from_wire(Scripted(None, Scripted.Options()), server, Fault.unauthorized, tiny_prompt(tiny))


# -- the tiny benchmark and the pytest fixtures ---------------------------------------------------


def test_the_pytest_plugin_is_loaded_through_its_entry_point(request):
    plugin = request.config.pluginmanager.get_plugin("harness")
    # The entry point names the new home; an install made before the move names the shim, which re-exports it.
    assert plugin is not None and plugin.__name__ in ("harness.testing.pytest_plugin", "harness.pytest_plugin")
    for fixture in ("harness_plugins", "harness_tiny_benchmark", "harness_loopback"):
        assert getattr(plugin, fixture) is getattr(harness.testing.pytest_plugin, fixture)


def test_tiny_benchmark_fixture(harness_tiny_benchmark):
    data = harness_tiny_benchmark.load(None)
    assert [c.name for c in data.categories] == ["widget", "tile"]
    assert len(data.samples) == 12
    assert {s.label for s in data.samples} == {"good", "scratch", "hole", "crack", "stain"}
    assert all(s.mask and s.mask.exists() for s in data.samples if s.is_anomalous)
    assert all(len(c.train_images) == 3 for c in data.categories)
    with pytest.raises(HarnessError, match="unknown category nut"):
        harness_tiny_benchmark.load(None, ["nut"])
    with pytest.raises(HarnessError, match="no tiny benchmark here"):
        TinyBenchmark().load(harness_tiny_benchmark.root / "widget")


def test_harness_plugins_registers_for_one_test_and_unregisters(harness_plugins, harness_tiny_benchmark):
    assert "first" not in get_registry().classifiers
    registry = harness_plugins.register(plugin_of(classifiers=[FirstCandidate], benchmarks=[harness_tiny_benchmark]),
                                        name="mine")
    assert get_registry() is registry
    assert registry.get("classifiers", "first").plugin == "mine"
    assert registry.get("benchmarks", "tiny").obj is harness_tiny_benchmark
    assert "random" in registry.classifiers  # entry points are still there
    after = harness_plugins.unregister("mine")
    assert "first" not in after.classifiers and get_registry() is after
    with pytest.raises(KeyError):
        harness_plugins.unregister("mine")


def test_plugin_registrar_restores_the_previous_registry():
    before = get_registry()
    with PluginRegistrar(entry_points=False) as registrar:
        registry = registrar.register(plugin_of(classifiers=[FirstCandidate]))
        assert set(registry.classifiers) == {"first"}
        with pytest.raises(ValueError, match="already registered"):
            registrar.register(plugin_of(), name="test-plugin-1")
    assert get_registry() is before


def test_harness_loopback_fixture_serves_the_real_sdk(harness_loopback, monkeypatch):
    openai = pytest.importorskip("openai")
    harness_loopback.responder = lambda request: "scratch"

    async def ask():
        client = openai.AsyncOpenAI(base_url=harness_loopback.openai_base_url, api_key="sk-test", max_retries=0)
        try:
            return await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        finally:
            await client.close()

    assert asyncio.run(ask()).choices[0].message.content == "scratch"
    assert [r.outcome for r in harness_loopback.requests] == ["answer"]


def test_runs_are_kept_in_a_fresh_folder_of_work_dir(tiny, tmp_path):
    for _ in range(2):  # the same work_dir twice: no "already holds a run"
        check_classifier(FirstCandidate, data_root=tiny, work_dir=tmp_path).raise_for_failures()
    kept = sorted(tmp_path.iterdir())
    assert len(kept) == 2
    runs = sorted(p.name for p in kept[0].iterdir())
    assert runs == ["conformance-1", "conformance-2", "conformance-3"]  # answers, permanent error, timeout
    assert all((kept[0] / run / "run.json").is_file() for run in runs)
