#!/usr/bin/env bash
# Fetch into .whl/ what a lent GPU machine needs to run benchmarks/device/run.sh: this project's own
# wheel and the wheels of benchmarks/device/carried.txt, each at the version this checkout's .venv
# holds, built for the device's Python (the image's python3 is 3.12; give another as $1).
#
#   benchmarks/device/wheels.sh          # then: the device tool's run, carrying .whl (README, "GPU check")
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON_VERSION=${1:-3.12}
VENV_PYTHON=${VENV_PYTHON:-.venv/bin/python}
[ -x "$VENV_PYTHON" ] || { echo "no $VENV_PYTHON: run make setup first" >&2; exit 1; }

rm -rf .whl && mkdir .whl
"$VENV_PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir .whl .
pins=$("$VENV_PYTHON" - <<'PY'
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

for line in Path("benchmarks/device/carried.txt").read_text().splitlines():
    name = line.split("#")[0].strip()
    if name:
        try:
            print(f"{name}=={version(name)}")
        except PackageNotFoundError:
            raise SystemExit(f"{name} (benchmarks/device/carried.txt) is not installed in the .venv: run make setup")
PY
)
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 \
           manylinux_2_24_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64; do
    platforms+=(--platform "$tag")
done
# shellcheck disable=SC2086  # one argument per pin
"$VENV_PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" \
    --implementation cp "${platforms[@]}" --dest .whl $pins
ls .whl
du -sh .whl
