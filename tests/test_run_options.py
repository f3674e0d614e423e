"""One declaration per run setting: flags, config keys, defaults and the run.json round trip agree."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from harness.run.run_config import RunConfig, default_of, recorded_fields
from harness.run.run_options import CONFIG_KEYS, config_keys_of, config_values, load_config_file, settable_fields

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]

# A value unlike each field's default, as a config file would give it.
NON_DEFAULT = {
    "benchmark": "folder", "data_root": "tree", "categories": ["bottle"], "gate": "patchcore",
    "gate_options": {"coreset_ratio": 0.05}, "models": ["random", "knn"], "model_options": {"random": {"seed": 3}},
    "prompt": "plain", "seed": 7, "limit": 5, "prices": "prices.toml", "shots": 2, "allow_partial": True,
    "class_order": "shuffle", "repeats": 3, "policy": "demo", "costs": "costs-example", "answers": "strict",
    "classes": "classes.toml", "results_dir": "out", "run_id": "r1", "output_formats": ["csv"], "batch": True,
    "batch_poll_s": 2.5, "executor": "ray", "ray_address": "10.0.0.1:6379", "executor_options": {"replicas": 2},
}


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def test_every_settable_field_has_a_non_default_example_here():
    assert {f.name for f in settable_fields()} == set(NON_DEFAULT)


def test_a_config_file_sets_every_setting_and_relative_paths_are_read_from_its_folder(tmp_path):
    lines, tables = [], []
    for name, value in NON_DEFAULT.items():
        key = name.replace("_", "-")
        if isinstance(value, dict):
            for sub, options in value.items():
                if isinstance(options, dict):
                    tables.append(f'[{key}."{sub}"]\n' + "".join(f"{k} = {_toml(v)}\n" for k, v in options.items()))
                else:
                    tables.append(f"[{key}]\n{sub} = {_toml(options)}\n")
        else:
            lines.append(f"{key} = {_toml(value)}")
    path = tmp_path / "conf" / "run.toml"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n" + "\n".join(tables), encoding="utf-8")
    config = RunConfig(**config_values({}, load_config_file(path), path))
    folder = path.parent
    for item in settable_fields():
        value = getattr(config, item.name)
        assert value != default_of(item), item.name
    assert config.data_root == folder / "tree" and config.results_dir == folder / "out"
    assert config.classes == (folder / "classes.toml").resolve() and config.prices == folder / "prices.toml"
    assert config.policy == "demo"  # a shipped name, not a path


def test_a_flag_wins_over_the_config_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('seed = 7\nmodels = "random,knn"\n', encoding="utf-8")
    values = config_values({"seed": 3, "models": None}, load_config_file(path), path)
    assert values == {"seed": 3, "models": ["random", "knn"]}


def test_config_keys_are_the_field_names_and_the_flag_names():
    assert {"categories", "category", "output-formats", "output-format", "gate-options", "gate-threshold",
            "no-cache", "data-root", "run-id"} <= CONFIG_KEYS
    recorded_only = {f.name for f in fields(RunConfig)} - {f.name for f in settable_fields()}
    assert recorded_only == {"n_boot", "retry_initial_s", "retry_max_s", "use_cache"}
    assert not any(key in CONFIG_KEYS for name in recorded_only for key in (name.replace("_", "-"),) if name != "use_cache")


def test_run_json_round_trip_keeps_every_recorded_setting(tmp_path):
    config = RunConfig(**{name: (Path(v) if name in ("data_root", "prices", "classes", "results_dir") else v)
                          for name, v in NON_DEFAULT.items()})
    again = RunConfig.from_json(config.to_json(), config.results_dir, config.run_id)
    for item in recorded_fields():
        assert getattr(again, item.name) == getattr(config, item.name), item.name
    assert again.output_formats == []  # extra formats belong to one invocation, not to what the run computes


def test_every_run_flag_is_in_the_readme_table_with_the_default_the_code_has(capsys):
    code, help_text, _ = run_cli("run", "--help", capsys=capsys)
    assert code == 0
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("`harness run` options."):readme.index("### The PatchCore gate")]
    flags = set(re.findall(r"(--[a-z][a-z-]+)", help_text)) - {"--help"}
    documented = set(re.findall(r"`(--[a-z][a-z-]+)", section)) | set(re.findall(r"`--[^`]* (--[a-z-]+)", section))
    assert flags - documented == set(), "flags of `harness run` missing from README's options section"
    for item in settable_fields():
        default = default_of(item)
        if isinstance(default, str) and default:
            flag = "--" + item.name.replace("_", "-")
            row = next(line for line in section.splitlines() if line.startswith(f"| `{flag}"))
            assert f"`{default}`" in row.rsplit("|", 2)[-2], (item.name, row)
