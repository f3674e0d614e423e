"""`Record`: one line of samples.jsonl, what one model's answer about one sample became.

`harness run` and `harness score` both make records through `Record.of`; `Record.to_json` is the line
written, key for key and in order (the public contract of `harness.results.SCHEMA_VERSION`, and the
dict result writers and hooks see); `Record.from_json` reads one back, old run folders included. The
field lists (`RUN_FIELDS`, `JSON_FIELDS`) come from the class, so they cannot drift from it.

Readers read `Record`s: the analyses of a finished run (`harness.analyses.FinishedRun.records`) and the
scoring they use (metrics, position bias, decisions and Table 4, gate metrics, call failures), `harness
score`, and the readers of finished run folders (`load_records`, `RunFolder.typed_records`): `harness
act`, `harness compare`, the report's gallery, the conformance checks and the csv writer. Result writers
and the sample-done hook keep getting the JSON dicts, ``to_json``: their public contract (a third-party
writer may ``json.dumps`` them). `Record.of` derives ``outcome`` with `harness.scoring.label_scores`,
which reads the record by attribute without importing this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.scoring import label_scores
from harness.errors import HarnessError
from harness.results import SAMPLES_FILE, read_jsonl
from harness.types import Sample


@dataclass(slots=True, frozen=True)
class GateVerdict:
    """What the run's gate said about the sample: its name, score, whether it flagged it, at which threshold."""

    name: str | None
    score: float | None
    flagged: bool | None
    threshold: float | None


@dataclass(slots=True, frozen=True)
class PromptRef:
    """The prompt a model was shown: template name and the hash of the rendered prompt."""

    name: str | None
    hash: str | None


@dataclass(slots=True, frozen=True)
class RecordDecisions:
    """With ``--policy``: severity and action of the true class and of the predicted one (None: a failed record)."""

    severity_true: str | None
    action_true: str | None
    severity_predicted: str | None
    action_predicted: str | None


#: The keys of `RecordDecisions`, written flat into the record after ``outcome``.
DECISION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(RecordDecisions))
#: Keys an imported record (``harness score``) does not carry: it has no repeats, class order or option scores.
NOT_IMPORTED: frozenset[str] = frozenset({"repeat", "class_order", "option_scores"})


@dataclass(slots=True)
class Record:
    """One (sample, model, repeat): the sample, what was asked, what came back, how it reads and what it cost.

    Field order is the key order of the JSON line.
    """

    # The sample and its ground truth (`harness.types.Sample`; ``image`` is the path from the data root).
    sample_id: str
    benchmark: str
    category: str
    image: str
    true_label: str
    # What the gate said (None: no gate, as for an imported record) and which model was asked.
    gate: GateVerdict | None
    model: str
    served_model: str | None  # the model name the server reported answering with
    # Which of the model's replicas answered (several base URLs), without credentials; None with one server.
    # Keyword-only so that it can sit beside served_model and still default to None (`Record.of` callers need not pass it).
    replica: str | None = field(default=None, kw_only=True)
    # What the model was shown (None: no prompt, the gate passed the sample or nothing was asked).
    prompt: PromptRef | None
    prompt_images: dict[str, Any] | None  # harness.run.prompt_record's account of the prompt's images
    repeat: int  # the class-order repeat (0 unless ``--repeats``)
    class_order: list[str] | None  # the class keys in the order the prompt listed them
    # What came back and how it reads.
    called: bool | None
    response: str | None
    option_scores: dict[str, float | None] | None  # an option-scoring model's score per class key
    predicted_label: str | None
    answer_rule: str | None  # the reading rule that decided (harness.scoring.answers); None when nothing was read
    correct: bool | None
    error: str | None  # None or one of harness.types.ERROR_KINDS: a failure is never an answer
    error_detail: str | None
    error_transient: bool | None  # whether the failure was transient (asked again by --resume); None without error
    # What the call took and cost.
    latency_s: float | None
    queued_s: float | None
    attempts: int | None
    attempts_total: int | None  # with the attempts of the records a resume replaced
    cached: bool | None
    # The provider batch that answered (``harness run --batch``); None: asked live. Keyword-only, as ``replica``.
    batch_id: str | None = field(default=None, kw_only=True)
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    # An imported record's key in the predictions file (``harness score``); None for a run's own records.
    imported_key: str | None = None
    # Whom an error is attributed to (metrics.OUTCOMES), and with ``--policy`` the decisions.
    outcome: str | None = None
    decisions: RecordDecisions | None = None
    #: Keys of a read line that no field holds (a newer schema's, a plugin's), kept so `to_json` gives them back.
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, sample: Sample, benchmark: str, model: str, *, predicted_label: str | None, error: str | None,
           error_detail: str | None, transient: bool = False, gate_passes_all: bool = False, **rest: Any) -> "Record":
        """The one way records are made: the sample's fields, ``correct``, ``error_transient`` and ``outcome``
        derived; ``rest`` gives the others. ``gate_passes_all``: a defect named on a good image is the model's
        mistake (`harness.scoring.label_scores.outcome_of`)."""
        record = cls(
            sample_id=sample.sample_id, benchmark=benchmark, category=sample.category, image=sample.relpath,
            true_label=sample.label, model=model, predicted_label=predicted_label, error=error,
            error_detail=error_detail, correct=error is None and predicted_label == sample.label,
            error_transient=None if error is None else bool(transient), **rest,
        )
        record.outcome = label_scores.outcome_of(record, gate_passes_all)
        return record

    def to_json(self) -> dict[str, Any]:
        """The samples.jsonl line as a dict: the keys in field order, decisions flat, an imported record's absent keys left out."""
        out: dict[str, Any] = {}
        imported = self.imported_key is not None
        for name in FIELDS:
            value = getattr(self, name)
            if name == "gate" or name == "prompt":
                out[name] = None if value is None else _as_dict(value)
            elif name == "decisions":
                if value is not None:
                    out.update(_as_dict(value))
            elif name == "imported_key":
                if imported:
                    out[name] = value
            elif not (imported and name in NOT_IMPORTED):
                out[name] = value
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Record":
        """A record read back from a line: a missing field is None (a missing ``repeat`` 0); unknown keys go to ``extra``."""
        if not isinstance(data, dict):
            raise HarnessError(f"a record is a JSON object, not {type(data).__name__}")
        values: dict[str, Any] = {name: data.get(name) for name in FIELDS if name not in ("decisions", "extra")}
        repeat = data.get("repeat") or 0
        if type(repeat) is not int:  # not int(repeat): "1" or 1.5 is no class-order repeat
            raise HarnessError(f"record {data.get('sample_id')!r}: repeat is {repeat!r}, expected a whole number")
        values["repeat"] = repeat
        for name, kind in (("gate", GateVerdict), ("prompt", PromptRef)):
            value = data.get(name)
            if value is not None and not isinstance(value, dict):
                raise HarnessError(f"record {data.get('sample_id')!r}: {name} is {value!r}, expected an object or null")
            values[name] = None if value is None else kind(*(value.get(f.name) for f in fields(kind)))
        if any(name in data for name in DECISION_FIELDS):
            values["decisions"] = RecordDecisions(*(data.get(name) for name in DECISION_FIELDS))
        known = set(FIELDS) | set(DECISION_FIELDS)
        values["extra"] = {key: value for key, value in data.items() if key not in known}
        return cls(**values)


def _as_dict(value: Any) -> dict[str, Any]:
    """A nested record part as its JSON object, keys in field order."""
    return {f.name: getattr(value, f.name) for f in fields(value)}


#: `Record`'s field names in order (``extra`` aside): the key order of a line, before decisions are made flat.
FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Record) if f.name != "extra")

#: The keys of a samples.jsonl line, in order (decisions flat); `Record.to_json` writes a subset of them.
JSON_FIELDS: tuple[str, ...] = tuple(
    key for name in FIELDS for key in (DECISION_FIELDS if name == "decisions" else (name,))
)
#: The keys every record of `harness run` carries: all but an imported record's key and the ``--policy`` decisions.
RUN_FIELDS: tuple[str, ...] = tuple(key for key in JSON_FIELDS if key != "imported_key" and key not in DECISION_FIELDS)


def records_from_json(lines: list[dict[str, Any]], path: Path | None = None) -> list[Record]:
    """`Record.from_json` of each line, in order; ``path``: the samples.jsonl they were read from, named with
    the line in the message of a line that is no record."""
    records = []
    for index, line in enumerate(lines):
        try:
            records.append(Record.from_json(line))
        except HarnessError as error:
            raise HarnessError(f"{path}: {error} ({_where(path, index)})" if path else f"record {index + 1}: {error}") from None
    return records


def load_records(run_dir: Path) -> list[Record]:
    """The records of a run folder's samples.jsonl as `Record`s (a killed run's truncated last line skipped)."""
    path = run_dir / SAMPLES_FILE
    return records_from_json(read_jsonl(path), path)


def _where(path: Path, index: int) -> str:
    """``line N`` of the ``index``-th record of ``path`` (`read_jsonl` skips blank lines); read only on an error."""
    try:
        numbers = [n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if text.strip()]
        return f"line {numbers[index]}"
    except (OSError, IndexError):  # records not read from this file as it is now (a run's own, still in memory)
        return f"record {index + 1}"
