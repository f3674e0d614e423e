"""The values that flow through a run, forward only: a benchmark yields `Sample`s, a gate gives each a
`GateResult`, a flagged one becomes a `Prompt`, a classifier answers with a `Response`, and the runner
writes one `harness.record.Record` per (sample, model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

#: The label of a normal (defect-free) image, in records and metrics alike.
GOOD = "good"

#: The error kinds a record may carry. A failure is one of these, never an answer.
ErrorKind = Literal["bad_input", "unparseable", "refused", "backend_error", "timeout"]
ERROR_KINDS: tuple[str, ...] = ("bad_input", "unparseable", "refused", "backend_error", "timeout")


@dataclass(frozen=True)
class ClassInfo:
    """One candidate class: its folder key, the name shown to a model, a description."""

    key: str
    name: str
    description: str = ""


GOOD_CLASS = ClassInfo(GOOD, "good", "a normal part with no defect")


@dataclass(frozen=True)
class Sample:
    """One test image with its ground truth: ``label`` is the class key (``good`` for normal images),
    ``image`` and ``mask`` absolute paths, ``relpath`` the image path from the data root (for records)."""

    sample_id: str
    category: str
    image: Path
    relpath: str
    label: str
    display_name: str
    mask: Path | None = None

    @property
    def is_anomalous(self) -> bool:
        return self.label != GOOD


@dataclass
class Category:
    """Everything a run needs about one category of a benchmark."""

    name: str
    classes: list[ClassInfo]
    train_images: list[Path]
    test_samples: list[Sample]
    object_description: str = ""
    guidance: str = ""
    #: A fixed reference normal (a user class file's ``reference``); None: drawn from train_images.
    reference: Path | None = None

    def class_info(self, key: str) -> ClassInfo:
        if key == GOOD:
            return GOOD_CLASS
        for info in self.classes:
            if info.key == key:
                return info
        raise KeyError(f"category {self.name!r} has no class {key!r}")

    @property
    def labels(self) -> list[str]:
        """The category's label set, ``good`` first."""
        return [GOOD] + [c.key for c in self.classes]


@dataclass
class BenchmarkData:
    """A loaded benchmark: its categories in order, and where the data lives."""

    name: str
    root: Path
    categories: list[Category]
    protocol: str = "velm"
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def samples(self) -> list[Sample]:
        return [s for c in self.categories for s in c.test_samples]


@dataclass
class GateResult:
    """What a gate says about one sample.

    ``anomaly_map``: an HxW float array in [0, 1] aligned with the image, None when the gate does not
    localise; ``region``: the binary region of visual prompts; ``score_map``: the unnormalised
    per-pixel score at the image's size, which pixel AUROC ranks (``anomaly_map`` may be clipped).
    """

    score: float
    flagged: bool
    threshold: float | None
    anomaly_map: np.ndarray | None = None
    region: np.ndarray | None = None
    score_map: np.ndarray | None = None


@dataclass
class ImagePart:
    """A named image inside a prompt (``query``, ``reference``, ``outlined``, ``crop``)."""

    name: str
    image: Any  # PIL.Image.Image; typed loosely to keep PIL out of import time
    digest: str  # content hash of the pixels; part of cache and request keys


@dataclass
class TextPart:
    text: str


@dataclass
class Message:
    role: Literal["system", "user", "assistant"]
    parts: list[TextPart | ImagePart]


@dataclass
class Prompt:
    """A rendered prompt: chat messages plus the closed set of candidate classes, never the true label.

    ``hash`` identifies the rendered prompt; ``request_hash`` adds the image contents (the exact request).
    """

    template: str
    messages: list[Message]
    candidates: list[ClassInfo]
    hash: str
    request_hash: str

    @property
    def images(self) -> list[ImagePart]:
        return [p for m in self.messages for p in m.parts if isinstance(p, ImagePart)]


@dataclass
class KeyOnlyPrompt(Prompt):
    """A prompt known by its template, candidates and hashes only (recalled by `harness.run.prompt_memo`,
    answered from the response cache, never sent); ``shown_digests``: its image names, in order, to digests."""

    shown_digests: dict[str, str] = field(default_factory=dict)


@dataclass
class Response:
    """What a classifier returned for one prompt."""

    text: str
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    #: For option-scoring classifiers: class key -> score (higher is better).
    option_scores: dict[str, float] | None = None
    refused: bool = False
    #: The model name the server reported answering with (hosted backends), which may differ from the one asked for.
    served_model: str | None = None
    #: The backend constrained the reply to a JSON schema of the candidates (answer rule ``structured``).
    structured: bool = False
    #: Which of a model's replicas answered (a hosted backend given several base URLs): its base URL without
    #: credentials; None with a single server. Not part of what the model answered: no key includes it.
    replica: str | None = None


@dataclass
class SupportExample:
    """A labelled few-shot example (``--shots``), drawn from the test set and never scored: ``images`` holds
    "query" and, with a mask, "outlined" and "crop" of its ground-truth region."""

    label: ClassInfo
    images: dict[str, Any]


@dataclass
class Prepared:
    """A sample after the gate: what every model's record for it needs."""

    sample: Sample
    gate: GateResult | None
    bad_input: str | None = None
    prompts: dict[Any, Prompt] = field(default_factory=dict)  # keyed by (repeat, max_images)
    #: Where the run folder keeps what redraws its prompt images (harness.run.prompt_record); None: no prompt.
    images: dict[str, Any] | None = None

    @property
    def asks_a_model(self) -> bool:
        """Whether a model is asked about it: the image was read and the gate flagged it."""
        return self.bad_input is None and self.gate is not None and bool(self.gate.flagged)
