"""Act: from a predicted class to a decision on the part, and what wrong decisions cost.

A *decision policy* (TOML; README, "Act") gives every (category, class) a severity and an action::

    benchmark = "demo"               # optional; must match the run's benchmark
    description = "..."
    [actions]                        # optional; the action of each severity (`DEFAULT_ACTIONS`)
    moderate = "rework"
    [errors]                         # optional; what a failed record gets (never "pass")
    action = "review"
    [default]                        # optional default for anomaly classes not listed
    severity = "critical"
    [categories.tile]
    default = "critical"             # optional per-category default
    classes = { scratch = "negligible", crack = { severity = "critical", action = "scrap" } }

``good`` is always severity ``normal``, and no anomaly class may be. A *cost matrix* (TOML) prices
each (true action, action taken) pair: ``[cost.scrap] pass = 120`` (missing diagonal entries are 0;
every other pair the policy can produce must be given). Anything unknown is a `HarnessError` naming
the file and the key. A failed record has no predicted class: severity None, the policy's error
action, never a pass. Reports are computed in `harness.scoring.decision_report`.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.errors import HarnessError
from harness.plugins import Registry
from harness.types import GOOD

SEVERITIES: tuple[str, ...] = ("normal", "negligible", "moderate", "critical")
ACTIONS: tuple[str, ...] = ("pass", "rework", "scrap", "review")
DEFAULT_ACTIONS: dict[str, str] = {"normal": "pass", "negligible": "pass", "moderate": "rework", "critical": "scrap"}
#: The action a failed record gets unless the policy's ``[errors]`` says otherwise.
DEFAULT_ERROR_ACTION = "review"
#: Severities whose parts are fine to ship: scrapping one is overkill.
ACCEPTABLE: tuple[str, ...] = ("normal", "negligible")

_POLICY_KEYS = {"benchmark", "description", "actions", "errors", "default", "categories"}
_CATEGORY_KEYS = {"default", "classes"}
_ENTRY_KEYS = {"severity", "action"}
_COST_KEYS = {"unit", "description", "cost"}


@dataclass(frozen=True)
class Decision:
    """What a class means on the line: its severity (None for a failed record) and the action taken."""

    severity: str | None
    action: str


@dataclass
class Policy:
    """A parsed decision policy. Use `load_policy`; `check` it against a benchmark's label sets."""

    source: str
    benchmark: str | None = None
    description: str = ""
    actions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    error_action: str = DEFAULT_ERROR_ACTION
    default: Decision | None = None
    category_defaults: dict[str, Decision] = field(default_factory=dict)
    classes: dict[str, dict[str, Decision]] = field(default_factory=dict)
    sha256: str = ""

    def decide(self, category: str, label: str | None) -> Decision:
        """The decision for a class key of a category; ``label=None`` is a failed record."""
        if label is None:
            return Decision(None, self.error_action)
        if label == GOOD:
            return self.classes.get(category, {}).get(GOOD) or Decision("normal", self.actions["normal"])
        found = self.classes.get(category, {}).get(label) or self.category_defaults.get(category) or self.default
        if found is None:
            raise HarnessError(
                f"{self.source}: no severity for class {label!r} of category {category!r}; "
                f"list it under [categories.{category}.classes] or give a [default]"
            )
        return found

    def check(self, label_sets: dict[str, list[str]], benchmark: str, partial: bool = False) -> None:
        """Fail unless the policy fits the benchmark: its name, categories and classes, and every class resolves.

        ``partial`` (the run covers only some categories) skips policy categories the run lacks.
        """
        if self.benchmark is not None and self.benchmark != benchmark:
            raise HarnessError(f"{self.source}: key 'benchmark' is {self.benchmark!r}, but the run's benchmark is {benchmark!r}")
        for category in sorted(set(self.classes) | set(self.category_defaults)):
            if category not in label_sets:
                if partial:
                    continue
                raise HarnessError(
                    f"{self.source}: [categories.{category}] is not a category of benchmark {benchmark!r} "
                    f"(categories: {', '.join(sorted(label_sets))})"
                )
            for label in self.classes.get(category, {}):
                if label not in label_sets[category]:
                    raise HarnessError(
                        f"{self.source}: key categories.{category}.classes.{label}: category {category!r} of "
                        f"benchmark {benchmark!r} has no class {label!r} (classes: {', '.join(label_sets[category])})"
                    )
        for category, labels in label_sets.items():
            for label in labels:
                self.decide(category, label)

    def describe(self) -> dict[str, Any]:
        """Where the policy came from, for run.json and decisions.json."""
        return {"path": self.source, "sha256": self.sha256, "benchmark": self.benchmark, "description": self.description}


@dataclass
class CostMatrix:
    """Cost of taking an action on a part whose true class calls for another: ``cost[true][taken]``."""

    source: str
    unit: str
    cost: dict[str, dict[str, float]]
    sha256: str = ""

    def of(self, true_action: str, taken: str) -> float:
        return self.cost.get(true_action, {}).get(taken, 0.0 if true_action == taken else math.nan)

    def check(self, policy: Policy, label_sets: dict[str, list[str]]) -> None:
        """Fail unless every (true action, action taken) pair the policy can produce has a price."""
        used = {policy.decide(c, label).action for c, labels in label_sets.items() for label in labels}
        missing = [
            f"cost.{t}.{p}" for t in sorted(used) for p in sorted(used | {policy.error_action})
            if t != p and p not in self.cost.get(t, {})
        ]
        if missing:
            raise HarnessError(
                f"{self.source}: missing cost(s) {', '.join(missing)} that policy {policy.source} can produce"
            )

    def describe(self) -> dict[str, Any]:
        return {"path": self.source, "sha256": self.sha256, "unit": self.unit, "cost": self.cost}


def _read_toml(path: Path, what: str) -> tuple[dict[str, Any], str]:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise HarnessError(f"{path}: {what} not found") from None
    except OSError as error:
        raise HarnessError(f"{path}: cannot read {what} ({error})") from None
    try:
        return tomllib.loads(raw.decode("utf-8")), hashlib.sha256(raw).hexdigest()
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise HarnessError(f"{path}: {what} is not valid TOML ({error})") from None


def _unknown_keys(table: dict[str, Any], allowed: set[str], where: str, source: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise HarnessError(f"{source}: unknown key(s) {', '.join(where + k for k in unknown)}; "
                           f"expected some of {', '.join(sorted(allowed))}")


def _choice(value: Any, allowed: tuple[str, ...], key: str, source: str, what: str) -> str:
    if value not in allowed:
        raise HarnessError(f"{source}: key {key} is {value!r}, not a known {what}; expected one of {', '.join(allowed)}")
    return value


def _entry(value: Any, key: str, policy: Policy, good: bool = False) -> Decision:
    """A class entry or default: a severity string or a {severity, action} table."""
    source = policy.source
    if isinstance(value, str):
        value = {"severity": value}
    if not isinstance(value, dict):
        raise HarnessError(f"{source}: key {key} must be a severity string or a table with 'severity' and 'action'")
    _unknown_keys(value, _ENTRY_KEYS, key + ".", source)
    if "severity" not in value:
        raise HarnessError(f"{source}: key {key} has no 'severity'")
    severity = _choice(value["severity"], SEVERITIES, key + ".severity", source, "severity")
    if good and severity != "normal":
        raise HarnessError(f"{source}: key {key}: class 'good' is always severity 'normal', not {severity!r}")
    if not good and severity == "normal":
        raise HarnessError(f"{source}: key {key}: severity 'normal' is reserved for 'good'; use 'negligible' for a harmless defect")
    action = value.get("action", policy.actions[severity])
    return Decision(severity, _choice(action, ACTIONS, key + ".action", source, "action"))


def load_policy(path: Path) -> Policy:
    """Read and validate a decision policy file (see the module docstring for the format)."""
    data, sha = _read_toml(path, "decision policy")
    policy = Policy(source=str(path), sha256=sha)
    _unknown_keys(data, _POLICY_KEYS, "", policy.source)
    for key in ("benchmark", "description"):
        if key in data and not isinstance(data[key], str):
            raise HarnessError(f"{path}: key {key} must be a string")
    policy.benchmark = data.get("benchmark")
    policy.description = data.get("description", "")
    actions = _table(data, "actions", path)
    _unknown_keys(actions, set(SEVERITIES), "actions.", policy.source)
    for severity, action in actions.items():
        policy.actions[severity] = _choice(action, ACTIONS, f"actions.{severity}", policy.source, "action")
    errors = _table(data, "errors", path)
    _unknown_keys(errors, {"action"}, "errors.", policy.source)
    policy.error_action = _choice(errors.get("action", DEFAULT_ERROR_ACTION), ACTIONS, "errors.action", policy.source, "action")
    if policy.error_action == "pass":
        raise HarnessError(f"{path}: key errors.action may not be 'pass': a failed answer must never pass a part")
    if "default" in data:
        policy.default = _entry(data["default"], "default", policy)
    for category, table in _table(data, "categories", path).items():
        where = f"categories.{category}"
        if not isinstance(table, dict):
            raise HarnessError(f"{path}: key {where} must be a table with 'default' and/or 'classes'")
        _unknown_keys(table, _CATEGORY_KEYS, where + ".", policy.source)
        if "default" in table:
            policy.category_defaults[category] = _entry(table["default"], where + ".default", policy)
        classes = _table(table, "classes", path, where + ".")
        policy.classes[category] = {
            label: _entry(value, f"{where}.classes.{label}", policy, good=label == GOOD) for label, value in classes.items()
        }
    return policy


def _table(data: dict[str, Any], key: str, path: Path, prefix: str = "") -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise HarnessError(f"{path}: key {prefix}{key} must be a table")
    return value


def load_costs(path: Path) -> CostMatrix:
    """Read and validate a cost matrix file: ``[cost.<true action>] <action taken> = number``."""
    data, sha = _read_toml(path, "cost matrix")
    _unknown_keys(data, _COST_KEYS, "", str(path))
    unit = data.get("unit", "")
    if not isinstance(unit, str):
        raise HarnessError(f"{path}: key unit must be a string")
    cost: dict[str, dict[str, float]] = {}
    for true_action, row in _table(data, "cost", path).items():
        _choice(true_action, ACTIONS, f"cost.{true_action}", str(path), "action")
        if not isinstance(row, dict):
            raise HarnessError(f"{path}: key cost.{true_action} must be a table of action taken -> cost")
        for taken, value in row.items():
            key = f"cost.{true_action}.{taken}"
            _choice(taken, ACTIONS, key, str(path), "action")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise HarnessError(f"{path}: key {key} must be a finite number, not {value!r}")
        cost[true_action] = {taken: float(value) for taken, value in row.items()}
    return CostMatrix(source=str(path), unit=unit, cost=cost, sha256=sha)


def resolve_file(value: str | Path, registered: Mapping[str, Any], what: str) -> Path:
    """A policy or cost file given as a path, or by the name a plugin registered it under.

    ``registered`` is ``registry.policies`` or ``registry.costs``. An existing file wins; a bare name
    (no folder, no ``.toml``) is looked up; anything else is a `HarnessError` listing the names.
    """
    path = Path(value).expanduser()
    if path.is_file():
        return path
    text = str(value)
    if "/" not in text and "\\" not in text and not text.endswith(".toml"):
        if text in registered:
            return registered[text].obj.path
        raise HarnessError(f"{what} {text!r}: no such file, and no shipped {what} of that name "
                           f"(shipped {what} files: {', '.join(sorted(registered)) or 'none'})")
    raise HarnessError(f"{path}: {what} not found")


def load_decision_files(policy: str | None, costs: str | None, registry: Registry) -> tuple[Policy | None, CostMatrix | None]:
    """The policy and cost matrix ``--policy`` and ``--costs`` name, None where not given.

    A cost matrix without a policy is refused. Shared by ``harness run`` and ``harness act``.
    """
    if costs and not policy:
        raise HarnessError("--costs prices the actions of a decision policy: add --policy FILE")
    loaded = load_policy(resolve_file(policy, registry.policies, "policy")) if policy else None
    matrix = load_costs(resolve_file(costs, registry.costs, "cost matrix")) if costs else None
    return loaded, matrix


def check_decision_files(
    policy: Policy | None, costs: CostMatrix | None, label_sets: dict[str, list[str]], benchmark: str, partial: bool,
) -> None:
    """Fail unless the policy fits the benchmark and the costs price its actions (nothing to check without a policy)."""
    if policy is None:
        return
    policy.check(label_sets, benchmark, partial=partial)
    if costs is not None:
        costs.check(policy, label_sets)
