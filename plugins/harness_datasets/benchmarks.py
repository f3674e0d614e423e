"""The benchmarks this plugin registers: MVTec-AD, MVTec-AC, VisA-AC, VisA, any folder, a manifest, and the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from harness.datasets import Benchmark, ReleaseMismatchError
from harness.types import GOOD, BenchmarkData

from harness_datasets import demo
from harness_datasets.classes import ClassFile, load_class_file
from harness_datasets.files import checked_root
from harness_datasets.manifest import MANIFEST_LAYOUT, load_manifest
from harness_datasets.mvtec import MVTEC_LAYOUT, load_mvtec_layout
from harness_datasets.release import Release, compare, release_for, released_data, scan_test_files
from harness_datasets.visa import VISA_LAYOUT, load_visa_split
from harness_datasets.visa_ac import VISA_AC_LAYOUT, is_original_visa, load_original_visa, original_folder


class MVTecStyleBenchmark(Benchmark):
    """A benchmark in the MVTec folder layout whose class names come from a class file.

    ``class_file`` overrides the registered one (tests, variants); without either,
    names are derived from folder names. A user's own class file (``--classes``,
    ``DATA_ROOT/classes.toml``) is laid over any benchmark by `harness.run.class_file`.
    """

    layout = MVTEC_LAYOUT
    #: Name of its registered class file (hook ``register_class_files``; the prompts plugin
    #: registers ``prompts/classes/<name>.toml``); None for none.
    class_file_name: str | None = None

    def __init__(self, class_file: ClassFile | None = None) -> None:
        self._class_file = class_file

    def class_file(self) -> ClassFile | None:
        """The class file in force: the one given to the constructor, else the one registered under its name."""
        if self._class_file is not None:
            return self._class_file
        return load_class_file(self.class_file_name) if self.class_file_name else None

    def load(self, root: Path | None, categories: Sequence[str] | None = None) -> BenchmarkData:
        return load_mvtec_layout(self, root, categories, self.class_file())


class ReleasedBenchmark(MVTecStyleBenchmark):
    """A benchmark evaluated on exactly its released test files (`harness_datasets.release`).

    A data root must hold those files, no more and no fewer: otherwise loading
    raises `ReleaseMismatchError`, whose message names the differences and which
    carries the data on the files present in both (for ``--allow-partial``).
    Built with a custom ``class_file`` (and no ``release``), it is a variant of
    the benchmark and reads whatever the tree holds, like the folder benchmark.
    """

    _PACKAGED: Any = object()

    def __init__(self, class_file: ClassFile | None = None, release: Release | None = _PACKAGED) -> None:
        super().__init__(class_file)
        if release is self._PACKAGED:
            release = release_for(self.name) if class_file is None else None
        self._release = release

    def release(self) -> Release | None:
        """The released file list in force, or None for a variant."""
        return self._release

    def released(self, categories: Sequence[str] | None = None) -> BenchmarkData | None:
        release = self.release()
        return None if release is None else released_data(release, self.class_file(), categories, self.protocol)

    def load(self, root: Path | None, categories: Sequence[str] | None = None) -> BenchmarkData:
        release = self.release()
        if release is None:
            return super().load(root, categories)
        root = checked_root(self, root)
        wanted = release.select(categories)
        data, difference, kept, folder_path = self._load_released(root, release, wanted, bool(categories))
        if data is not None:
            self._released_classes(data, release)
            if release.class_aliases:
                data.notes["class_aliases"] = release.class_aliases  # other names of class folders, for imports
        if difference:
            message = difference.report(release, root, len(kept), folder_path,
                                        found_categories=sorted({path.split("/")[0] for path in kept}))
            if not kept:  # nothing released is there: most likely the wrong folder or layout
                message += f"\nbenchmark {self.name!r} expects:\n{self.layout}"
            raise ReleaseMismatchError(message, data, difference.to_json())
        assert data is not None  # no difference means every released file was found
        return data

    def _released_classes(self, data: BenchmarkData, release: Release) -> None:
        """Candidates are the released classes even when a partial tree lacks a class's every image."""
        class_file = self.class_file()
        for category in data.categories:
            known = class_file.categories.get(category.name) if class_file else None
            if known is not None:
                category.classes = [known.classes[f] for f in sorted(release.files[category.name]) if f != GOOD]

    def _load_released(self, root: Path, release: Release, wanted: list[str], chosen: bool):
        """(data on the files found, difference, files found, folder naming function) in the MVTec layout."""
        on_disk = scan_test_files(root, wanted if chosen else None, release)
        difference, kept = compare(release, on_disk, wanted)
        data = None
        if kept:
            present = sorted({relpath.split("/")[0] for relpath in kept})
            data = load_mvtec_layout(self, root, present, self.class_file(), keep=kept.__contains__)
            left_out = sorted(on_disk & release.left_out)
            if left_out:
                data.notes["left_out_as_released"] = left_out
        return data, difference, kept, None


class MVTecADBenchmark(ReleasedBenchmark):
    name = "mvtec-ad"
    description = "MVTec AD (Bergmann et al.), original test set with its defect folders as classes"
    class_file_name = "mvtec-ad"


class MVTecACBenchmark(ReleasedBenchmark):
    name = "mvtec-ac"
    description = "MVTec-AC (VELM paper): MVTec AD with cleaned defect classes, 14 categories"
    class_file_name = "mvtec-ac"


class VisaACBenchmark(ReleasedBenchmark):
    name = "visa-ac"
    description = (
        "VisA-AC (VELM paper): VisA re-sorted into defect classes; the VisA-AC download or the original VisA tree"
    )
    class_file_name = "visa-ac"
    layout = VISA_AC_LAYOUT

    def _load_released(self, root: Path, release: Release, wanted: list[str], chosen: bool):
        if not is_original_visa(root, wanted):
            return super()._load_released(root, release, wanted, chosen)
        data, difference, kept = load_original_visa(self, root, release, wanted, self.class_file())
        return data, difference, kept, lambda category, folder: original_folder(root, category, folder)


class FolderBenchmark(MVTecStyleBenchmark):
    name = "folder"
    description = "any MVTec-style folder tree of your own; classes are the test folder names"


class ManifestBenchmark(Benchmark):
    """Images listed in a CSV or JSONL manifest (`harness_datasets.manifest`); classes are the labels."""

    name = "manifest"
    description = "images listed in a CSV or JSONL file: image, category, split, label, optional mask"
    layout = MANIFEST_LAYOUT

    def load(self, root: Path | None, categories: Sequence[str] | None = None) -> BenchmarkData:
        return load_manifest(self, root, categories)


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
        ManifestBenchmark(),
        DemoBenchmark(),
    ]
