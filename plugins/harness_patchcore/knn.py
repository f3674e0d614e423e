"""``knn``: a few-shot nearest-neighbour baseline on ImageNet CNN features.

It needs ``--shots K``: the core hands it labelled support examples of each
category (`Classifier.set_support`) before that category's samples. Support
examples and prompts are embedded the same way (`region_view`), whatever
images they carry, so that a support example and a query showing the same
defect look alike:

1. the region: where ``outlined`` (the query with the region's contour drawn
   on it) differs from ``query``. Both come from one image, at one size, so
   the difference is exactly the contour -- the gate's region for a prompt,
   the ground-truth mask for a support example;
2. the view: a crop of the clean ``query`` around that region, boxed as the
   visual prompts box it (`harness.visual.crop_box`: margin, square, at
   least an eighth of the image); without ``outlined``, an image named
   ``crop``; without either, the whole ``query``;
3. the embedding: the EfficientNet-Lite0 stride-16 feature map of the view
   (the patchcore gate's backbone and packaged weights, loaded from disk,
   never downloaded), global average pooled and L2-normalised.

(The first version embedded a support example's ``crop`` but a prompt's
``query`` when its template showed no crop -- the ``velm`` template shows
``outlined``, not ``crop`` -- so defect close-ups were compared with whole
images, and the baseline scored below chance.)

A prompt gets the class of its nearest support embeddings by cosine
similarity: the k nearest among the candidates' examples, majority vote, ties
broken by the mean similarity of the tied classes' neighbours.

``option_scores`` is what the core reads the prediction from (its arg-max),
so it always agrees with the vote: with k = 1 it is each candidate's best
similarity (in [-1, 1]); with k > 1 it is ``votes + 0.5 * similarity`` (the
mean similarity of the class's neighbours among the k, or its best
similarity when it got no vote), which orders classes by votes first.
Candidates without support examples get no score and are never predicted.

Torch and the backbone package are imported at first use (`runtime`).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Literal

import numpy as np
from pydantic import Field

from harness.classifiers import Capabilities, Classifier, ClassifierOptions
from harness.errors import HarnessError
from harness.types import ClassInfo, Prompt, Response
from harness.visual import crop_box

from harness_patchcore.runtime import import_torch, prepare_device

#: Without a region (no ``outlined``), the image embedded: ``crop`` when present, else ``query``.
IMAGE_PREFERENCE = ("crop", "query")
BACKBONE = "efficientnet_lite0"
#: A pixel belongs to the drawn contour when some channel of ``outlined`` differs from ``query`` by more than
#: this (resampling of the two copies leaves differences of a few levels elsewhere).
OUTLINE_DIFFERENCE = 48


class KnnSupportError(HarnessError):
    """The knn baseline was asked to classify without support examples."""


class KnnOptions(ClassifierOptions):
    concurrency: int = Field(1, ge=1, description="requests in flight at once (embedding is local and serial)")
    k: int = Field(1, ge=1, description="neighbours that vote (capped at the number of support examples)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where to compute: auto picks cuda when torch sees a GPU, else cpu"
    )
    image_size: int = Field(224, ge=32, description="images are resized (squashed) to image_size x image_size")


def pick_image(images: dict[str, Any]) -> Any:
    """Without a region: ``crop`` when present, else ``query``."""
    for name in IMAGE_PREFERENCE:
        if images.get(name) is not None:
            return images[name]
    raise HarnessError(f"the knn baseline needs an image named 'crop' or 'query'; got {sorted(images)}")


def outlined_region(images: dict[str, Any]) -> np.ndarray | None:
    """The (H, W) mask of the contour drawn on ``outlined`` over ``query``, or None when there is none."""
    query, outlined = images.get("query"), images.get("outlined")
    if query is None or outlined is None or query.size != outlined.size:
        return None
    a = np.asarray(query.convert("RGB"), dtype=np.int16)
    b = np.asarray(outlined.convert("RGB"), dtype=np.int16)
    drawn = (np.abs(a - b) > OUTLINE_DIFFERENCE).any(axis=2)
    return drawn if drawn.any() else None


def region_view(images: dict[str, Any]) -> Any:
    """The image embedded for a prompt or support example (steps 1-2 of the module docstring)."""
    region = outlined_region(images)
    if region is None:
        return pick_image(images)
    query = images["query"].convert("RGB")
    box = crop_box(query.size, region)
    return query.crop(box) if box is not None else query


def _image_digest(image: Any) -> str:
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.size}".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def vote(
    similarities: np.ndarray, labels: list[str], candidates: list[ClassInfo], k: int
) -> tuple[str, dict[str, float]]:
    """The predicted candidate key and the option scores (see the module docstring).

    ``similarities[i]`` is the query's cosine similarity to support example i,
    whose class key is ``labels[i]``. Examples of non-candidate classes are
    ignored; at least one example must belong to a candidate.
    """
    keys = [c.key for c in candidates]
    usable = [i for i, label in enumerate(labels) if label in keys]
    if not usable:
        raise KnnSupportError("none of the knn support examples belongs to a candidate class")
    sims = similarities[usable]
    usable_labels = [labels[i] for i in usable]
    best = {key: float(max(s for s, l in zip(sims, usable_labels) if l == key))
            for key in keys if key in usable_labels}
    k = min(k, len(usable))
    order = np.argsort(-sims, kind="stable")[:k]
    votes: dict[str, list[float]] = {}
    for index in order:
        votes.setdefault(usable_labels[index], []).append(float(sims[index]))
    winner = max(votes, key=lambda key: (len(votes[key]), float(np.mean(votes[key]))))
    if k == 1:
        return winner, best
    scores = {
        key: (len(votes[key]) + 0.5 * float(np.mean(votes[key]))) if key in votes else 0.5 * best[key]
        for key in best
    }
    return winner, scores


class KnnClassifier(Classifier):
    """Few-shot k-nearest-neighbour baseline on global CNN features (needs ``--shots``)."""

    plugin = "knn"
    description = "few-shot k-nearest-neighbour baseline on EfficientNet-Lite0 features (needs --shots K)"
    Options = KnnOptions
    requires_model_id = False
    needs_support = True
    capabilities = Capabilities(max_images=None)

    def __init__(self, model_id: str | None, options: KnnOptions):
        super().__init__(model_id, options)
        self._backbone: Any = None
        self._category: str | None = None
        self._examples: list[Any] = []
        self._labels: list[str] = []
        self._names: dict[str, str] = {}
        #: (the support list embedded, its (n, D) L2-normalised embeddings); None until the first classify
        self._embedded: tuple[list[Any], np.ndarray] | None = None
        self._fingerprint = ""
        self._lock = asyncio.Lock()

    def set_support(self, category: str, examples: list[Any]) -> None:
        """Keep ``category``'s support examples; they are embedded at the first `classify`."""
        self._category = category
        self._examples = list(examples)
        self._labels = [e.label.key for e in self._examples]
        self._names = {e.label.key: e.label.name for e in self._examples}
        self._embedded = None
        digest = hashlib.sha256(category.encode())
        for example, label in zip(self._examples, self._labels):
            digest.update(f"\0{label}\0{_image_digest(region_view(example.images))}".encode())
        self._fingerprint = digest.hexdigest()

    def answer_options(self) -> dict[str, Any]:
        # The answer depends on the support set, so the response cache key must too.
        options = super().answer_options()
        options["support"] = self._fingerprint
        return options

    async def classify(self, prompt: Prompt) -> Response:
        if not self._examples:
            where = f" (category {self._category!r} has none)" if self._category is not None else ""
            raise KnnSupportError(f"--shots K is required for the knn baseline{where}")
        parts = {part.name: part.image for part in prompt.images}
        image = region_view(parts)
        examples, labels = self._examples, self._labels
        async with self._lock:  # one embedding at a time; the support once per category
            if self._embedded is None or self._embedded[0] is not examples:
                embeddings = await asyncio.to_thread(self._embed, [region_view(e.images) for e in examples])
                self._embedded = (examples, embeddings)
            support = self._embedded[1]
            query = (await asyncio.to_thread(self._embed, [image]))[0]
        winner, scores = vote(support @ query, labels, prompt.candidates, self.options.k)
        name = next((c.name for c in prompt.candidates if c.key == winner), self._names.get(winner, winner))
        return Response(text=name, option_scores=scores, tokens_in=None)

    def _load(self) -> Any:
        if self._backbone is None:
            from harness_patchcore.backbones import load_backbone

            device = prepare_device(self.options.device)
            self._backbone = load_backbone(BACKBONE, None, device, self.options.image_size, half=False)
        return self._backbone

    def _embed(self, images: list[Any]) -> np.ndarray:
        """(N, D) float32 L2-normalised global features of ``images``."""
        from harness_patchcore.features import preprocess, to_batch

        torch = import_torch()
        backbone = self._load()
        size = self.options.image_size
        rows = []
        for start in range(0, len(images), 32):
            crops = [preprocess(image, size, size) for image in images[start : start + 32]]
            with torch.inference_mode():
                deep = backbone.extract(to_batch(torch, crops, backbone))[1]
                pooled = deep.float().mean(dim=(2, 3))
                pooled = torch.nn.functional.normalize(pooled, dim=1)
            rows.append(pooled.cpu().numpy())
        return np.concatenate(rows).astype(np.float32, copy=False)

    async def aclose(self) -> None:
        self._backbone = None

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["backbone"] = BACKBONE
        return info
