"""`RunConfig`: everything that decides what a run computes, and its run.json round trip.

Each field is declared once with its `Setting`: `harness.run.run_options` makes the ``harness run``
flags and config-file keys from it, and ``to_json`` / ``from_json`` walk the same fields, so
``harness run --resume`` finishes a run exactly as it was started.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from harness.scoring.answers import MODES as ANSWER_MODES
from harness.run.redact import redact_value


@dataclass(frozen=True)
class Setting:
    """How one `RunConfig` field is set (its flag, its config key) and whether run.json records it."""

    help: str | None = None  # the flag's help; None: no flag (a config file or code sets it)
    flag: tuple[str, ...] = ()  # the option's names when not --field-name
    type: type | None = None  # int for whole numbers, float for other numbers; None: text
    minimum: int | None = None
    choices: tuple[str, ...] = ()
    multiple: bool = False
    is_flag: bool = False
    metavar: str | None = None
    default_text: str | None = None  # the default shown in help, when the value is not what a user should read
    path: bool = False  # relative paths in a config file are read from its folder
    absolute: bool = False  # a path recorded absolute, so a resume from elsewhere finds it
    split_commas: bool = False  # "a,b" on the command line or in a file is the list [a, b]
    config_key: bool | None = None  # settable in a config file; None: when it has a flag
    recorded: bool = True  # the run's folder, id, extra formats and cache switch are not what it computes
    to_json: Callable[[Any], Any] | None = None


def setting(default: Any = MISSING, *, factory: Any = MISSING, **how: Any) -> Any:
    """A dataclass field carrying its `Setting`."""
    return field(default=default, default_factory=factory, metadata={"setting": Setting(**how)})


def _text(value: Any) -> Any:
    return str(value) if value else None


@dataclass
class RunConfig:
    """Everything that decides what a run computes. Written to run.json as given (in field order)."""

    benchmark: str = setting("demo", help="Benchmark name (see `harness list`).", flag=("--benchmark", "-b"))
    data_root: Path | None = setting(None, help="Where the benchmark's data lives.", path=True, to_json=_text)
    categories: list[str] | None = setting(
        None, help="Evaluate only this category (repeatable).", flag=("--category",), multiple=True)
    gate: str = setting("oracle", help="Detector gate: oracle, none, ...")
    gate_options: dict[str, Any] = setting(factory=dict, to_json=redact_value, config_key=True)
    models: list[str] = setting(factory=list, help="Comma-separated model specs: PLUGIN or PLUGIN:MODEL_ID.",
                                flag=("--models", "-m"), split_commas=True)
    model_options: dict[str, dict[str, Any]] = setting(factory=dict, to_json=redact_value, config_key=True)
    prompt: str = setting("velm", help="Prompt template name.")
    seed: int = setting(0, help="Seed for reference choice, subsets, bootstrap.", type=int)
    limit: int | None = setting(None, help="At most N test images per category (seeded subset).",
                                type=int, minimum=1)
    n_boot: int = setting(1000)
    prices: Path | None = setting(
        None, help="TOML price table (USD per million tokens by model spec) extending the packaged one.", path=True,
        to_json=_text)
    #: Backoff between retries of transient errors: initial wait and cap, in seconds.
    retry_initial_s: float = setting(1.0)
    retry_max_s: float = setting(60.0)
    shots: int = setting(0, help="Draw K labelled examples per defect class from the test set (seeded) for few-shot "
                                 "models and prompts; they are scored for no model.", type=int, minimum=0)
    allow_partial: bool = setting(
        False, help="When the data root differs from a benchmark's released file list, evaluate only the files "
                    "present in both (the difference is recorded in run.json) instead of stopping.",
        is_flag=True)
    class_order: str = setting(
        "given", help="Candidate class order: given, or shuffle (with --repeats N: repeat 0 in the given order, "
                      "then N-1 seeded shuffles) to measure position bias.", choices=("given", "shuffle"))
    repeats: int = setting(1, help="Ask every model N times, once per class order (needs --class-order shuffle).",
                           type=int, minimum=1)
    policy: Path | str | None = setting(
        None, help="Decision policy TOML (or shipped: demo, mvtec-ac): every record gets the action of its predicted "
                   "and true class; run.json reports action accuracy, escapes, overkill.",
        metavar="FILE|NAME", to_json=_text)
    costs: Path | str | None = setting(
        None, help="Cost matrix TOML for --policy (true action x action taken), or shipped: costs-example.",
        metavar="FILE|NAME", to_json=_text)
    answers: str = setting(
        "lenient", help="How replies are read: lenient (every rule of harness/scoring/answers.py) or strict (only structured, "
                        "JSON, exact and final-answer readings; anything else is unparseable).",
        choices=ANSWER_MODES)
    classes: Path | None = setting(
        None, help="Class file (TOML) with your object, class names and descriptions, laid over the benchmark's.",
        default_text="DATA_ROOT/classes.toml when present", path=True, absolute=True, metavar="FILE", to_json=_text)
    batch: bool = setting(
        False, help="Send every model's flagged requests as provider batches (openai, anthropic: half price, answers "
                    "within 24 h); resumable with --resume. One model only: its option batch = true.", is_flag=True)
    batch_poll_s: float = setting(30.0, help="Seconds between polls of a run's provider batches.", type=float)
    results_dir: Path = setting(Path("results"), help="Where run folders go.", path=True, recorded=False)
    run_id: str | None = setting(
        None, help="Name of the run folder.",
        default_text="UTC time, benchmark and a random suffix, e.g. 20260101-120000-demo-1a2b3c", recorded=False)
    output_formats: list[str] = setting(factory=list, help="Extra result format (e.g. csv), repeatable.",
                                        flag=("--output-format",), multiple=True,
                                        recorded=False)
    use_cache: bool = setting(True, recorded=False)
    # Where the stages run does not change what they compute: run.json's provenance says which executor ran.
    executor: str = setting("local", help="Where the stages run: local, or an executor plugin's (ray).", recorded=False)
    ray_address: str | None = setting(None, help="With --executor ray: the cluster to join (HOST:PORT), or local to start a new one.",
                                      default_text="the local Ray instance, started if none runs", recorded=False)
    executor_options: dict[str, Any] = setting(factory=dict, config_key=True, recorded=False)

    @classmethod
    def from_json(cls, data: dict[str, Any], results_dir: Path, run_id: str) -> "RunConfig":
        """The config a run.json recorded, to resume that run exactly as it was started."""
        values: dict[str, Any] = {}
        for item in recorded_fields():
            if data.get(item.name) is None:
                continue  # missing in an older run.json, or None: the field's default
            value = data[item.name]
            values[item.name] = Path(value) if item.metadata["setting"].path else value
        return cls(**values, results_dir=results_dir, run_id=run_id)

    def to_json(self) -> dict[str, Any]:
        """The config as run.json records it: paths as strings, gate and model options redacted."""
        recorded = {}
        for item in recorded_fields():
            convert = item.metadata["setting"].to_json
            value = getattr(self, item.name)
            recorded[item.name] = convert(value) if convert else value
        return recorded


def recorded_fields() -> list[Field]:
    """The fields run.json records, in order."""
    return [f for f in fields(RunConfig) if f.metadata["setting"].recorded]


def default_of(item: Field) -> Any:
    """A field's default value (a fresh one for a factory)."""
    return item.default_factory() if item.default is MISSING else item.default
