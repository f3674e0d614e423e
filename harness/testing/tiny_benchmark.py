"""A tiny benchmark for plugin tests: two categories, four defect classes, 20 small images.

`write_tiny_benchmark` draws it (seeded, about 50 ms) in the MVTec-AD layout::

    ROOT/widget/train/good/000.png
    ROOT/widget/test/{good,scratch,hole}/000.png
    ROOT/widget/ground_truth/{scratch,hole}/000_mask.png
    ROOT/tile/...                     (classes crack and stain)

so the same folder also reads as ``--benchmark folder``. `TinyBenchmark` is a
`harness.datasets.Benchmark` named ``tiny`` that loads it; it belongs to the
core's test kit and needs no dataset plugin. The defects are drawn so that they
are visible (a bright line, a dark disc, a dark zigzag, a coloured blob), but no
claim is made that any model should classify them well: the benchmark exists to
exercise a plugin's contract, not to rank models.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

from harness.datasets import Benchmark
from harness.prompts import render_prompt, template_from_text
from harness.types import BenchmarkData, Category, ClassInfo, Prompt, Sample

SIZE = 64
#: category -> (base colour, {class key: description})
CATEGORIES: dict[str, tuple[tuple[int, int, int], dict[str, str]]] = {
    "widget": ((150, 150, 160), {"scratch": "a thin bright line across the surface",
                                 "hole": "a round dark hole"}),
    "tile": ((190, 170, 140), {"crack": "a dark jagged line", "stain": "a blotch of a different colour"}),
}
TRAIN_PER_CATEGORY = 3
GOOD_PER_CATEGORY = 2
PER_DEFECT = 2
_DONE_MARKER = ".tiny-benchmark-v1"

#: A prompt template for the tiny benchmark (and the conformance check): reference, query,
#: outlined query and the numbered candidate classes with their descriptions.
TINY_TEMPLATE = template_from_text("conformance", """{# conformance check: reference, query, outlined query, candidate classes #}
[[system]]
You inspect manufactured parts for defects.
[[user]]
{% if has_image("reference") %}
A normal {{ category }}: {{ image("reference") }}
{% endif %}
The part to inspect: {{ image("query") }}
{% if has_image("outlined") %}
The same part with the suspicious region outlined: {{ image("outlined") }}
{% endif %}
Which class is it?
{% for c in classes %}
{{ c.number }}. {{ c.name }}: {{ c.description }}
{% endfor %}
Answer with the class name only.
""", origin="harness.testing.tiny_benchmark")


def write_tiny_benchmark(root: str | Path, seed: int = 0) -> Path:
    """Draw the tiny benchmark into ``root`` (created if needed) and return ``root``.

    Idempotent: a folder that already holds it is left as it is.
    """
    root = Path(root)
    if (root / _DONE_MARKER).exists():
        return root
    rng = random.Random(seed)
    for category, (colour, classes) in CATEGORIES.items():
        for index in range(TRAIN_PER_CATEGORY):
            _save(_base(colour, rng), root / category / "train" / "good" / f"{index:03d}.png")
        for index in range(GOOD_PER_CATEGORY):
            _save(_base(colour, rng), root / category / "test" / "good" / f"{index:03d}.png")
        for label in classes:
            for index in range(PER_DEFECT):
                image = _base(colour, rng)
                mask = Image.new("L", image.size, 0)
                _draw_defect(label, ImageDraw.Draw(image), ImageDraw.Draw(mask), rng)
                _save(image, root / category / "test" / label / f"{index:03d}.png")
                _save(mask, root / category / "ground_truth" / label / f"{index:03d}_mask.png")
    (root / _DONE_MARKER).write_text("written by harness.testing.tiny_benchmark\n", encoding="utf-8")
    return root


def _base(colour: tuple[int, int, int], rng: random.Random) -> Image.Image:
    """A flat part with a little seeded noise, so no two images are byte-identical."""
    image = Image.new("RGB", (SIZE, SIZE), colour)
    pixels = image.load()
    for _ in range(120):
        x, y = rng.randrange(SIZE), rng.randrange(SIZE)
        shift = rng.randint(-12, 12)
        pixels[x, y] = tuple(max(0, min(255, c + shift)) for c in colour)
    return image


def _draw_defect(label: str, image: ImageDraw.ImageDraw, mask: ImageDraw.ImageDraw, rng: random.Random) -> None:
    x, y = rng.randint(12, 40), rng.randint(12, 40)
    for draw, ink in ((image, None), (mask, 255)):
        if label == "scratch":
            draw.line((x, y, x + 20, y + 6), fill=ink or (250, 250, 250), width=2)
        elif label == "hole":
            draw.ellipse((x, y, x + 10, y + 10), fill=ink or (20, 20, 20))
        elif label == "crack":
            draw.line((x, y, x + 6, y + 8, x + 2, y + 14, x + 9, y + 20), fill=ink or (40, 30, 20), width=2)
        else:  # stain
            draw.ellipse((x, y, x + 14, y + 9), fill=ink or (90, 130, 60))


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


class TinyBenchmark(Benchmark):
    """``tiny``: the test kit's benchmark. Built with a root, it needs no ``--data-root``."""

    name = "tiny"
    description = "two categories, four defect classes, 20 small drawn images (for plugin tests)"
    layout = "ROOT/CATEGORY/{train/good,test/LABEL,ground_truth/LABEL}/NNN[_mask].png (see harness.testing.tiny_benchmark)"

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else None
        self.requires_data_root = root is None

    def load(self, root: Path | None, categories: Sequence[str] | None = None) -> BenchmarkData:
        root = Path(root) if root is not None else self.root
        if root is None:
            raise self.layout_error(Path("."), "benchmark 'tiny' needs --data-root")
        unknown = sorted(set(categories or ()) - set(CATEGORIES))
        if unknown:
            raise self.layout_error(root, f"unknown category {', '.join(unknown)}; tiny has {', '.join(CATEGORIES)}")
        if not (root / _DONE_MARKER).exists():
            raise self.layout_error(root, "no tiny benchmark here (write one with harness.testing.write_tiny_benchmark)")
        chosen = [c for c in CATEGORIES if not categories or c in categories]
        return BenchmarkData(name=self.name, root=root, categories=[self._category(root, c) for c in chosen])

    @staticmethod
    def _category(root: Path, name: str) -> Category:
        classes = [ClassInfo(key, key, description) for key, description in CATEGORIES[name][1].items()]
        samples = []
        for label in ["good", *CATEGORIES[name][1]]:
            for image in sorted((root / name / "test" / label).glob("*.png")):
                mask = root / name / "ground_truth" / label / f"{image.stem}_mask.png"
                relpath = image.relative_to(root).as_posix()
                samples.append(Sample(
                    sample_id=relpath, category=name, image=image, relpath=relpath, label=label,
                    display_name=label, mask=mask if mask.exists() else None,
                ))
        return Category(
            name=name, classes=classes, test_samples=samples,
            train_images=sorted((root / name / "train" / "good").glob("*.png")),
            object_description=f"a flat {name} seen from above",
        )


def tiny_prompt(data_root: str | Path) -> Prompt:
    """A rendered prompt for one anomalous image of the tiny benchmark at ``data_root`` (written if absent)."""
    from harness.images import load_rgb

    root = write_tiny_benchmark(data_root)
    category = TinyBenchmark(root).load(root).categories[0]
    sample = next(s for s in category.test_samples if s.is_anomalous)
    return render_prompt(TINY_TEMPLATE, category=category, candidates=list(category.classes),
                         images={"query": load_rgb(sample.image)})
