#!/usr/bin/env bash
# Fetch into .whl/ what a lent GPU machine needs to run benchmarks/device/run.sh: this project's own
# wheel and the wheels of benchmarks/device/carried.txt, each at the version this checkout's .venv
# holds, built for the device's Python (the image's python3 is 3.12; give another as the argument).
# With --anomalib PYTHON, also those of carried-anomalib.txt at the versions beside PYTHON (a venv
# where anomalib is installed): run.sh then compares with anomalib on the GPU too. With --anomalib
# pinned, the versions anomalib-pins.txt records (those that ran on a lent H200), no venv needed.
#
#   benchmarks/device/wheels.sh [--anomalib PYTHON|pinned] [PYTHON_VERSION]
#   # then: the device tool's run, carrying .whl (README, "The GPU check on a lent machine")
set -euo pipefail
cd "$(dirname "$0")/../.."
ANOMALIB_PYTHON=""
if [ "${1:-}" = "--anomalib" ]; then
    ANOMALIB_PYTHON=${2:?--anomalib needs the python of a venv where anomalib is installed}
    shift 2
fi
PYTHON_VERSION=${1:-3.12}
VENV_PYTHON=${VENV_PYTHON:-.venv/bin/python}
[ -x "$VENV_PYTHON" ] || { echo "no $VENV_PYTHON: run make setup first" >&2; exit 1; }

# name==version for each package a list names, as installed beside the given python.
pins() {
    "$1" - "$2" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

listed = sys.argv[1]
for line in Path(listed).read_text().splitlines():
    name = line.split("#")[0].strip()
    if name:
        try:
            print(f"{name}=={version(name)}")
        except PackageNotFoundError:
            raise SystemExit(f"{name} ({listed}) is not installed beside {sys.executable}")
PY
}

specs=$(pins "$VENV_PYTHON" benchmarks/device/carried.txt)
if [ "$ANOMALIB_PYTHON" = "pinned" ]; then  # the versions anomalib-pins.txt recorded: no anomalib venv needed
    specs="$specs $(grep -v '^#' benchmarks/device/anomalib-pins.txt)"
elif [ -n "$ANOMALIB_PYTHON" ]; then
    specs="$specs $(pins "$ANOMALIB_PYTHON" benchmarks/device/carried-anomalib.txt)"
fi
rm -rf .whl && mkdir .whl
"$VENV_PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir .whl . 2>/dev/null \
    || "$VENV_PYTHON" -m pip wheel --no-deps --no-build-isolation --wheel-dir .whl .  # again, to show why
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 \
           manylinux_2_24_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64; do
    platforms+=(--platform "$tag")
done
for spec in $specs; do
    # A package published only as source (freia) is built here: only pure-Python ones are.
    "$VENV_PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" \
        --implementation cp "${platforms[@]}" --dest .whl "$spec" 2>/dev/null \
    || "$VENV_PYTHON" -m pip wheel --quiet --no-deps --wheel-dir .whl "$spec" \
    || { echo "no wheel for $spec" >&2; exit 1; }
done
# The device tool carries 64 MiB in all, the working tree included: imagecodecs (26 MB, some forty
# codecs) travels with its PNG codec alone (1.1 MB), all that harness/png.py uses.
for wheel in .whl/imagecodecs-*.whl; do
    [ -e "$wheel" ] && "$VENV_PYTHON" benchmarks/device/png_only.py "$wheel"
done
ls .whl
du -sh .whl
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
[ $(( $(du -sb .whl | cut -f1) + tree )) -le $((64 * 1024 * 1024)) ] \
    || echo "warning: .whl and the working tree are over the device tool's 64 MiB" >&2
