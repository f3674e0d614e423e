"""The benchmarks this plugin registers: MVTec-AD, MVTec-AC, VisA-AC, VisA, any folder, and the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from harness.datasets import Benchmark
from harness.types import BenchmarkData

from harness_datasets import demo
from harness_datasets.classes import ClassFile, load_class_file
from harness_datasets.mvtec import MVTEC_LAYOUT, load_mvtec_layout
from harness_datasets.visa import VISA_LAYOUT, load_visa_split


class MVTecStyleBenchmark(Benchmark):
    """A benchmark in the MVTec folder layout whose class names come from a class file.

    ``class_file`` overrides the packaged file (tests, or a user with their own
    class descriptions); without either, names are derived from folder names.
    """

    layout = MVTEC_LAYOUT
    #: Name of the packaged class file (``prompts/classes/<name>.toml``); None for none.
    class_file_name: str | None = None

    def __init__(self, class_file: ClassFile | None = None) -> None:
        self._class_file = class_file

    def class_file(self) -> ClassFile | None:
        """The class file in force: the one given to the constructor, else the packaged one."""
        if self._class_file is not None:
            return self._class_file
        return load_class_file(self.class_file_name) if self.class_file_name else None

    def load(self, root: Path | None, categories: Sequence[str] | None = None) -> BenchmarkData:
        return load_mvtec_layout(self, root, categories, self.class_file())


class MVTecADBenchmark(MVTecStyleBenchmark):
    name = "mvtec-ad"
    description = "MVTec AD (Bergmann et al.), original test set with its defect folders as classes"
    class_file_name = "mvtec-ad"


class MVTecACBenchmark(MVTecStyleBenchmark):
    name = "mvtec-ac"
    description = "MVTec-AC (VELM paper): MVTec AD with cleaned defect classes, 14 categories"
    class_file_name = "mvtec-ac"


class VisaACBenchmark(MVTecStyleBenchmark):
    name = "visa-ac"
    description = "VisA-AC (VELM paper): VisA re-sorted into defect classes, MVTec-style folders"
    class_file_name = "visa-ac"


class FolderBenchmark(MVTecStyleBenchmark):
    name = "folder"
    description = "any MVTec-style folder tree of your own; classes are the test folder names"


class VisaBenchmark(Benchmark):
    """The original VisA release (normal vs. anomaly only), read through ``split_csv/1cls.csv``."""

    name = "visa"
    description = "VisA (Zou et al.), original release via split_csv/1cls.csv; one 'anomaly' class"
    layout = VISA_LAYOUT

    def load(self, root: Path | None, categories: Sequence[str] | None = None) -> BenchmarkData:
        # VisA-AC's class file, when present, describes the same objects.
        return load_visa_split(self, root, categories, load_class_file("visa-ac"))


class DemoBenchmark(MVTecStyleBenchmark):
    """The built-in synthetic benchmark: generated on first use, cached, needs no download.

    With no data root it lives in ``$HARNESS_CACHE_DIR/demo-v<version>-seed<seed>``;
    with one, it is generated there (or reused when already complete).
    """

    name = "demo"
    description = "built-in synthetic tile, washer and label images with exact defect masks"
    class_file_name = "demo"
    requires_data_root = False

    def __init__(self, seed: int = 0, class_file: ClassFile | None = None) -> None:
        super().__init__(class_file)
        self.seed = seed

    def load(self, root: Path | None, categories: Sequence[str] | None = None) -> BenchmarkData:
        try:
            path = demo.ensure_demo_data(root, self.seed)
        except demo.DemoRootError as error:
            raise self.layout_error(error.path, str(error)) from error
        data = load_mvtec_layout(self, path, categories, self.class_file())
        data.notes.update({"generator_version": demo.GENERATOR_VERSION, "seed": self.seed})
        return data


def all_benchmarks() -> list[Benchmark]:
    """One instance of every benchmark this plugin provides."""
    return [
        MVTecADBenchmark(),
        MVTecACBenchmark(),
        VisaACBenchmark(),
        VisaBenchmark(),
        FolderBenchmark(),
        DemoBenchmark(),
    ]
