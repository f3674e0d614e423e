"""The plugin manager: first-party plugins, overriding built-ins, loud hook typos, real entry points."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import sys
import textwrap
import types
import uuid
from pathlib import Path

import pytest

import harness
from harness import hookspecs, plugins
from harness.classifiers import Classifier
from harness.errors import HarnessError, PluginError, UnknownNameError
from harness.gates import PassThroughGate
from harness.hookspecs import hookimpl
from harness.plugins import Registry, get_registry, load_registry, set_registry
from harness.testing import registry_with, scripted_classifier
from harness.types import Response

FIRST_PARTY = {
    "benchmarks": ("datasets", {"demo", "mvtec-ad", "mvtec-ac", "visa-ac", "visa", "folder", "manifest"}),
    "gates": ("builtin", {"oracle", "none"}),
    "classifiers": ("baselines", {"random"}),
    "templates": ("prompts", {"velm", "plain", "json"}),
    "writers": ("builtin", {"csv"}),
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


def plugin_module(**hooks) -> types.SimpleNamespace:
    """A plugin object holding the given hook implementations."""
    return types.SimpleNamespace(**hooks)


# -- first-party plugins ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(FIRST_PARTY))
def test_first_party_plugins_are_found_with_their_versions(registry, kind):
    plugin, names = FIRST_PARTY[kind]
    table = getattr(registry, kind)
    assert names <= set(table), f"missing {kind}: {names - set(table)}"
    for name in names:
        provided = table[name]
        assert provided.name == name
        assert provided.plugin == plugin
        assert provided.version == harness.__version__


def test_plugins_table_names_distribution_and_version(registry):
    dist_version = importlib.metadata.version("anomaly-harness")
    assert registry.plugins["builtin"] == ("anomaly-harness", harness.__version__)
    for name in ("datasets", "baselines", "prompts"):
        assert registry.plugins[name] == ("anomaly-harness", dist_version)
    assert registry.failures == []
    assert registry.shadowed == []


def test_first_party_plugins_come_through_entry_points(registry):
    group = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=plugins.ENTRY_POINT_GROUP)}
    assert group["datasets"] == "harness_datasets"
    assert group["baselines"] == "harness_baselines"
    assert group["prompts"] == "harness_prompts"
    assert group["imported"] == "harness_imported" and group["classfiles"] == "harness_classfiles"
    assert group["cachetools"] == "harness_cachetools"
    # without entry points only the core's own built-ins remain
    bare = load_registry(entry_points=False)
    assert set(bare.gates) == {"oracle", "none"}
    assert set(bare.writers) == {"csv"}
    assert bare.benchmarks == {} and bare.classifiers == {} and bare.templates == {}


def test_registered_objects_are_what_the_kinds_promise(registry):
    assert issubclass(registry.classifiers["random"].obj, Classifier)
    assert registry.classifiers["random"].obj.plugin == "random"
    assert registry.gates["none"].obj is PassThroughGate


def test_every_hook_is_documented():
    specs = [
        (name, obj)
        for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj) and hasattr(obj, "harness_spec")
    ]
    assert len(specs) >= 5
    for name, function in specs:
        assert (function.__doc__ or "").strip(), f"hook {name} has no docstring"
    assert {kind.hook for kind in plugins.PLUGIN_KINDS} <= {name for name, _ in specs}


# -- overriding and shadowing --------------------------------------------------------------------


def test_a_plugin_overrides_a_builtin_classifier_by_name_and_the_shadowing_is_recorded():
    Mine, module = scripted_classifier(lambda prompt: "scratch", plugin="random")
    registry = load_registry(extra_plugins=[("my-random", module)])
    provided = registry.classifiers["random"]
    assert provided.obj is Mine
    assert provided.plugin == "my-random"
    assert provided.version == "0"
    assert ("classifiers", "random", "baselines") in registry.shadowed
    # nothing else is disturbed
    assert all(p.plugin != "my-random" for name, p in registry.classifiers.items() if name != "random")
    assert registry.gates["oracle"].plugin == "builtin"


def test_a_plugin_overrides_a_builtin_gate():
    class MyOracle(PassThroughGate):
        name = "oracle"

    @hookimpl
    def register_gates(register):
        register(MyOracle)

    registry = load_registry(extra_plugins=[("mine", plugin_module(register_gates=register_gates))])
    assert registry.gates["oracle"].obj is MyOracle
    assert registry.gates["oracle"].plugin == "mine"
    assert registry.gates["none"].plugin == "builtin"
    assert registry.shadowed == [("gates", "oracle", "builtin")]


def test_two_names_from_one_plugin_the_second_is_shadowed():
    First, _ = scripted_classifier(lambda p: "a", plugin="dup")
    Second, _ = scripted_classifier(lambda p: "b", plugin="dup")

    @hookimpl
    def register_classifiers(register):
        register(First)
        register(Second)

    registry = load_registry(extra_plugins=[("twice", plugin_module(register_classifiers=register_classifiers))])
    assert registry.classifiers["dup"].obj is First
    assert ("classifiers", "dup", "twice") in registry.shadowed


# -- loud failures ----------------------------------------------------------------------------


def test_a_misspelled_hook_raises_plugin_error_naming_the_plugin():
    @hookimpl
    def register_clasifiers(register):  # sic
        pass

    with pytest.raises(PluginError) as caught:
        load_registry(extra_plugins=[("typo-plugin", plugin_module(register_clasifiers=register_clasifiers))])
    message = str(caught.value)
    assert "'typo-plugin'" in message
    assert "register_clasifiers" in message
    assert "hookspecs" in message
    assert isinstance(caught.value, HarnessError) and caught.value.exit_code == 2


def test_a_hook_with_an_unknown_argument_raises_plugin_error():
    @hookimpl
    def register_classifiers(register, extra):
        pass

    with pytest.raises(PluginError, match="'bad-args'"):
        load_registry(extra_plugins=[("bad-args", plugin_module(register_classifiers=register_classifiers))])


def test_a_registration_hook_that_raises_names_the_plugin_and_hook():
    @hookimpl
    def register_benchmarks(register):
        raise RuntimeError("boom")

    with pytest.raises(PluginError) as caught:
        load_registry(extra_plugins=[("exploding", plugin_module(register_benchmarks=register_benchmarks))])
    assert "'exploding'" in str(caught.value)
    assert "register_benchmarks" in str(caught.value)
    assert "RuntimeError: boom" in str(caught.value)


def test_registering_something_without_a_name_is_a_plugin_error():
    @hookimpl
    def register_gates(register):
        register(object())

    with pytest.raises(PluginError, match="no 'name' attribute"):
        load_registry(extra_plugins=[("nameless", plugin_module(register_gates=register_gates))])


def test_a_plugin_name_already_taken_is_a_plugin_error():
    _, module = scripted_classifier(lambda p: "x")
    with pytest.raises(PluginError, match="'datasets'"):
        load_registry(extra_plugins=[("datasets", module)])


# -- lookups ----------------------------------------------------------------------------------


def test_get_returns_what_was_registered(registry):
    assert registry.get("gates", "oracle") is registry.gates["oracle"]
    assert registry.get("benchmarks", "demo").plugin == "datasets"


def test_get_unknown_name_lists_the_registered_names(registry):
    with pytest.raises(UnknownNameError) as caught:
        registry.get("gates", "patchcroe")
    message = str(caught.value)
    assert "unknown gate 'patchcroe'" in message
    assert "none, oracle" in message
    assert "failed to load" not in message


def test_get_in_an_empty_kind_says_none():
    with pytest.raises(UnknownNameError, match="registered: none"):
        load_registry(entry_points=False).get("classifiers", "openai")


def test_get_registry_is_cached_and_set_registry_resets_it():
    first = get_registry()
    assert get_registry() is first
    set_registry(None)
    assert get_registry() is not first


def test_registry_with_installs_a_registry_for_the_block_only():
    Scripted, module = scripted_classifier(lambda p: "ok", plugin="scripted-x")
    before = get_registry()
    with registry_with(("scripted-x", module)) as registry:
        assert get_registry() is registry
        assert registry.get("classifiers", "scripted-x").obj is Scripted
    assert get_registry() is before


# -- real entry-point discovery ----------------------------------------------------------------


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Install a fake distribution (module files and a dist-info) on sys.path for one test.

    ``install(dist, version, entry_points={name: "module[:attr]"}, modules={module: source})``.
    Module names are made unique per test, so ``{mod}`` in sources and entry points is replaced.
    """
    created: list[str] = []

    def _install(dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> dict[str, str]:
        suffix = uuid.uuid4().hex[:8]
        names = {module: f"{module}_{suffix}" for module in modules}
        root = tmp_path / f"site-{dist}-{suffix}"
        root.mkdir()
        for module, source in modules.items():
            (root / f"{names[module]}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            created.append(names[module])
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
        lines = ["[harness]"]
        for name, target in entry_points.items():
            module, _, attr = target.partition(":")
            lines.append(f"{name} = {names.get(module, module)}{':' + attr if attr else ''}")
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        monkeypatch.syspath_prepend(str(root))  # also invalidates import caches
        importlib.invalidate_caches()
        return names

    yield _install
    for name in created:
        sys.modules.pop(name, None)


WORKING_PLUGIN = """
    from harness.classifiers import Classifier
    from harness.gates import PassThroughGate
    from harness.hookspecs import hookimpl
    from harness.types import Response


    class FakeGate(PassThroughGate):
        name = "fake-gate"


    class FakeClassifier(Classifier):
        plugin = "fake"

        async def classify(self, prompt):
            return Response(text="good")


    @hookimpl
    def register_gates(register):
        register(FakeGate)


    @hookimpl
    def register_classifiers(register):
        register(FakeClassifier)
"""


def test_entry_point_plugin_is_discovered_and_listed_with_its_version(install):
    install("fake-plugin", "0.1", {"fake": "fake_plugin_mod"}, {"fake_plugin_mod": WORKING_PLUGIN})
    assert "fake" in {ep.name for ep in importlib.metadata.entry_points(group="harness")}

    registry = load_registry()
    assert registry.failures == []
    assert registry.plugins["fake"] == ("fake-plugin", "0.1")
    gate = registry.get("gates", "fake-gate")
    assert (gate.plugin, gate.version) == ("fake", "0.1")
    classifier = registry.get("classifiers", "fake")
    assert (classifier.plugin, classifier.version) == ("fake", "0.1")
    assert issubclass(classifier.obj, Classifier)
    # the first-party plugins are still there
    assert {"random"} <= set(registry.classifiers)
    assert {"oracle", "none", "fake-gate"} <= set(registry.gates)
    assert "demo" in registry.benchmarks


def test_entry_point_plugin_with_a_module_attribute_target(install):
    source = textwrap.dedent(WORKING_PLUGIN) + "\n\nclass Plugin:\n    register_gates = staticmethod(register_gates)\n"
    install("fake-attr", "2.3", {"fakeattr": "fake_attr_mod:Plugin"}, {"fake_attr_mod": source})
    registry = load_registry()
    assert registry.get("gates", "fake-gate").plugin == "fakeattr"
    assert registry.plugins["fakeattr"] == ("fake-attr", "2.3")
    assert "fake" not in registry.classifiers  # Plugin exposes only register_gates


def test_entry_point_plugin_overrides_a_builtin(install):
    source = """
        from harness.gates import PassThroughGate
        from harness.hookspecs import hookimpl

        class BetterOracle(PassThroughGate):
            name = "oracle"

        @hookimpl
        def register_gates(register):
            register(BetterOracle)
    """
    install("better-oracle", "1.0", {"better": "better_mod"}, {"better_mod": source})
    registry = load_registry()
    assert registry.gates["oracle"].plugin == "better"
    assert registry.gates["oracle"].version == "1.0"
    assert ("gates", "oracle", "builtin") in registry.shadowed


def test_a_plugin_missing_a_dependency_is_recorded_and_the_others_still_load(install):
    install(
        "fake-broken",
        "0.3",
        {"broken": "broken_mod"},
        {"broken_mod": "import harness_missing_sdk_xyz  # the plugin's optional SDK\n"},
    )
    install("fake-plugin", "0.1", {"fake": "fake_plugin_mod"}, {"fake_plugin_mod": WORKING_PLUGIN})

    registry = load_registry()
    assert len(registry.failures) == 1
    failure = registry.failures[0]
    assert failure.plugin == "broken"
    assert failure.distribution == "fake-broken"
    assert "ModuleNotFoundError" in failure.error
    assert "harness_missing_sdk_xyz" in failure.error
    assert failure.hint.startswith("pip install harness_missing_sdk_xyz")
    assert "fake-broken" in failure.hint
    assert "broken" not in registry.plugins

    # everything else loaded
    assert registry.get("gates", "fake-gate").plugin == "fake"
    assert {"random"} <= set(registry.classifiers)
    assert {"demo", "mvtec-ac"} <= set(registry.benchmarks)
    assert {"velm", "plain", "json"} <= set(registry.templates)

    with pytest.raises(UnknownNameError) as caught:
        registry.get("classifiers", "no-such-backend")
    message = str(caught.value)
    assert "fake" in message and "random" in message
    assert "failed to load: broken" in message


def test_a_plugin_raising_import_error_is_recorded_with_a_reinstall_hint(install):
    install("fake-libfoo", "0.2", {"libfoo": "libfoo_mod"}, {"libfoo_mod": 'raise ImportError("libfoo.so: cannot open")\n'})
    registry = load_registry()
    [failure] = registry.failures
    assert failure.plugin == "libfoo"
    assert failure.error == "ImportError: libfoo.so: cannot open"
    assert "reinstall fake-libfoo" in failure.hint
    assert "demo" in registry.benchmarks


def test_a_plugin_crashing_on_import_is_recorded(install):
    install("fake-crash", "0.1", {"crash": "crash_mod"}, {"crash_mod": "1 / 0\n"})
    [failure] = load_registry().failures
    assert failure.plugin == "crash"
    assert failure.error.startswith("ZeroDivisionError")


def test_an_entry_point_naming_a_missing_module_suggests_a_reinstall_not_pip_install_of_it(install):
    # a typo in the plugin's own entry point: "pip install <that name>" would fetch an unrelated package
    install("fake-typo", "0.1", {"typo": "fake_typo_modul"}, {})
    [failure] = load_registry().failures
    assert failure.plugin == "typo"
    assert "ModuleNotFoundError" in failure.error
    assert failure.hint.startswith("reinstall fake-typo")
    assert "pip install fake_typo_modul" not in failure.hint


def test_an_entry_point_plugin_with_a_misspelled_hook_fails_loudly(install):
    source = """
        from harness.hookspecs import hookimpl

        @hookimpl
        def register_clasifiers(register):
            pass
    """
    install("fake-typo-hook", "0.1", {"typohook": "typo_hook_mod"}, {"typo_hook_mod": source})
    with pytest.raises(PluginError, match="'typohook'.*register_clasifiers"):
        load_registry()


def test_a_scripted_classifier_registered_as_plugin_answers():
    import asyncio

    Scripted, module = scripted_classifier(lambda prompt: Response(text="hole", tokens_in=3), plugin="s")
    registry = load_registry(extra_plugins=[("s", module)], entry_points=False)
    classifier = registry.get("classifiers", "s").obj(None, Scripted.Options())
    prompt = object()
    response = asyncio.run(classifier.classify(prompt))
    assert response == Response(text="hole", tokens_in=3)
    assert Scripted.prompts == [prompt]


def test_one_module_behind_two_entry_points_is_a_plugin_error_not_a_traceback(install):
    install("fake-twice", "0.1", {"twice_a": "twice_mod", "twice_b": "twice_mod"}, {"twice_mod": WORKING_PLUGIN})
    with pytest.raises(PluginError, match="'twice_b'.*fake-twice"):
        load_registry()


def test_the_cores_own_plugin_comes_through_its_entry_point_and_a_missing_one_says_to_reinstall(monkeypatch):
    import importlib.metadata

    from harness.errors import PluginError

    registry = plugins.load_registry(entry_points=False)
    assert registry.plugins["builtin"][0] == "anomaly-harness" and "oracle" in registry.gates
    real = importlib.metadata.entry_points

    def without_builtin(**selection):
        return [ep for ep in real(**selection) if ep.name != "builtin"]

    monkeypatch.setattr(importlib.metadata, "entry_points", without_builtin)
    with pytest.raises(PluginError, match="reinstall anomaly-harness"):
        plugins.load_registry(entry_points=False)
