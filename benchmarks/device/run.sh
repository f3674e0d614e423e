#!/usr/bin/env bash
# What a lent GPU machine runs (the device tool's run, carrying .whl from benchmarks/device/wheels.sh):
# the carried wheels installed beside the image's own packages, then benchmarks/gpu_check.py, whose
# table and JSON land in $OUT (gpu_check.txt, gpu_check.json; device.txt: the machine and versions),
# then, when anomalib came with the wheels, benchmarks/gate.py against it (gate_anomalib.txt, .json),
# then ours with resizing and maps on the device (gate_on_device.txt, .json), then the host's part of
# scoring alone (host_work.txt),
# then benchmarks/end_to_end.py on synthetic images (end_to_end.txt), then the CUDA tests (cuda_tests.txt).
# Arguments go to gpu_check.py (e.g. --images 200). $WHEELS: another folder of wheels than .whl.
set -uo pipefail
cd "$(dirname "$0")/../.."
WHEELS=${WHEELS:-.whl}
OUT=${OUT:-/tmp/gpu_check_out}
SITE=${SITE:-/tmp/site}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
stamp() { echo "[$(date +%T)] $*"; }  # each step's start: where a run's minutes went
stamp "install"
ls "$WHEELS"/*.whl >/dev/null 2>&1 || {
    echo "no wheels in $WHEELS: run benchmarks/device/wheels.sh on the development machine and carry .whl" >&2; exit 2; }
"$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl || exit 3
export PYTHONPATH="$SITE" PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "no nvidia-smi"
    "$PYTHON" -c 'import sys, torch, transformers, harness
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.cuda.is_available(),
      "| transformers", transformers.__version__, "| harness from", harness.__file__)'
} 2>&1 | tee "$OUT/device.txt"
# The gate's table first, as it is what the check is for, then anomalib beside it, then the whole run,
# then the CUDA tests.
stamp "gpu_check"
"$PYTHON" benchmarks/gpu_check.py --skip-tests --json "$OUT/gpu_check.json" "$@" 2>&1 | tee "$OUT/gpu_check.txt"
status=${PIPESTATUS[0]}
# Ours against anomalib's PatchCore on the same device, images, backbone and coreset ratio, when the
# wheels carried it (wheels.sh --anomalib); $GATE_IMAGES synthetic test images.
stamp "anomalib comparison"
if import_error=$("$PYTHON" -c "import anomalib" 2>&1); then
    "$PYTHON" benchmarks/gate.py --benchmark synthetic --images "${GATE_IMAGES:-200}" --device auto --anomalib \
        --json "$OUT/gate_anomalib.json" 2>&1 | tee "$OUT/gate_anomalib.txt"
    [ "${PIPESTATUS[0]}" = 0 ] || status=4
else
    { echo "$import_error" | tail -1
      echo "anomalib did not import: no comparison (benchmarks/device/wheels.sh --anomalib PYTHON)"; } | tee "$OUT/gate_anomalib.txt"
fi
# Ours again with the resizing and the maps on the device (options resize_on, map_finishing): the host only
# decodes. The same images; compare its images/s and no-dec/s with the defaults' and anomalib's above.
stamp "ours, resizing and maps on the device"
"$PYTHON" benchmarks/gate.py --benchmark synthetic --images "${GATE_IMAGES:-200}" --device auto \
    --option resize_on='"device"' --option map_finishing='"device"' \
    --json "$OUT/gate_on_device.json" 2>&1 | tee "$OUT/gate_on_device.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=7
# The host's part alone, per image on one thread and on one thread per core: the most the gate can score.
stamp "host work"
"$PYTHON" benchmarks/host_work.py --synthetic --images "${GATE_IMAGES:-200}" 2>&1 | tee "$OUT/host_work.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=8
# The whole `harness run --gate patchcore` (a random model) on the same kind of images, fit cached, 2 runs.
stamp "end to end"
"$PYTHON" benchmarks/end_to_end.py --synthetic "${GATE_IMAGES:-200}" --runs 2 2>&1 | tee "$OUT/end_to_end.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=6
# The CUDA tests gpu_check.py names (patchcore's, and the hf plugin's whole), their output to cuda_tests.txt.
stamp "CUDA tests"
"$PYTHON" benchmarks/gpu_check.py --tests-only --tests-log "$OUT/cuda_tests.txt" || status=5
stamp "done"
exit "$status"
