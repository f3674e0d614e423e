"""The plugin API: every hook a plugin may implement.

A plugin is a module (or object) with functions decorated by
``harness.hookimpl`` whose names match the hooks below. It is found through
the ``harness`` entry-point group of its distribution::

    [project.entry-points.harness]
    my_plugin = "my_package.my_module"

Registration hooks receive a ``register`` callable; call it once per thing the
plugin provides. Lifecycle hooks observe a run and must not change it.
Built-in implementations are ``trylast`` so a plugin can override them by name.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def register_benchmarks(register):
    """Register benchmarks: ``register(benchmark)`` with a `harness.datasets.Benchmark`.

    A benchmark names a dataset layout, its class lists with display names and
    descriptions, and its default scoring protocol.
    """


@hookspec
def register_gates(register):
    """Register detector gates: ``register(gate_class)`` with a `harness.gates.Gate` subclass.

    A gate is fitted on the training normals of one category and then scores
    test samples: anomaly score, flagged or not, threshold, optional anomaly map.
    """


@hookspec
def register_classifiers(register):
    """Register classifier backends: ``register(classifier_class)`` with a `harness.classifiers.Classifier` subclass.

    The class attribute ``plugin`` is the prefix of model specs it serves
    (``openai`` serves ``openai:gpt-4o``).
    """


@hookspec
def register_prompt_templates(register):
    """Register prompt templates: ``register(template)`` with a `harness.prompts.PromptTemplate`."""


@hookspec
def register_result_writers(register):
    """Register extra result formats: ``register(writer)`` with a `harness.results.ResultWriter`.

    ``run.json`` and ``samples.jsonl`` are always written; a writer adds a
    format that a user asks for with ``harness run --output-format NAME``.
    """


@hookspec
def register_analyses(register):
    """Register analyses: ``register(analysis)`` with an instance of a `harness.analyses.Analysis`.

    Each runs once after a run's last record, reads a `harness.analyses.FinishedRun`, and writes the
    run.json section named by its ``name`` (the core's own: metrics, decisions, class_order,
    gate_metrics, call_failures).
    """


@hookspec
def register_policies(register):
    """Register decision policies by name: ``register(name, path)`` with the path of a policy TOML file.

    ``harness run --policy NAME`` and ``harness act RUN --policy NAME`` find it
    (the file form is described in `harness.scoring.decisions`).
    """


@hookspec
def register_cost_matrices(register):
    """Register cost matrices by name: ``register(name, path)`` with the path of a cost-matrix TOML file.

    ``--costs NAME`` finds it (the file form is described in `harness.scoring.decisions`).
    """


@hookspec
def register_class_files(register):
    """Register class files by name: ``register(name, path)`` with the path of a class-description TOML file.

    A benchmark reads the class file of its name (``mvtec-ac``, ``visa-ac``, ...)
    through `harness.run.class_file.registered_class_file`; the form is that of a
    user's class file (`harness.run.class_file`).
    """


@hookspec
def register_commands(cli):
    """Add click commands to the ``harness`` command group: ``cli.add_command(...)``."""


@hookspec
def harness_run_started(run):
    """Called once when a run starts, with the run dict (``config`` and ``provenance``, as run.json will hold them)."""


@hookspec
def harness_sample_done(record):
    """Called after each record (one sample, one model) is written, with the record dict."""


@hookspec
def harness_run_finished(run, run_dir):
    """Called once when a run has finished and ``run.json`` holds its metrics."""
