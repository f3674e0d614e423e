"""Heavy imports at first use, and where the computation runs.

Importing this plugin costs nothing: torch and the backbone packages are
imported by the functions here when a gate is first fitted, and a missing one
is a `HarnessError` with the pip command that installs it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

from harness.errors import HarnessError

PIP_HINT = "pip install 'anomaly-harness[patchcore]'"


def import_torch() -> ModuleType:
    """``torch``, or a `HarnessError` saying how to install it."""
    try:
        import torch
    except ImportError as error:
        raise HarnessError(
            f"the patchcore gate needs torch, which is not installed ({error}); {PIP_HINT} "
            "(on a machine without a GPU, the CPU wheel from the PyTorch index is much smaller)"
        ) from None
    return torch


def import_optional(module: str, purpose: str, hint: str = PIP_HINT) -> ModuleType:
    """Import ``module`` for ``purpose``, or raise a `HarnessError` naming it and how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise HarnessError(f"{purpose} needs the Python module {module!r}, which is not installed ({error}); {hint}") from None


def resolve_device(requested: str, cuda_available: bool) -> str:
    """``cpu`` or ``cuda`` for a requested ``auto``/``cpu``/``cuda``.

    ``auto`` picks cuda when a GPU is available; asking for cuda without one is
    an error rather than a silent fall-back, so a run never claims a device it
    did not use.
    """
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    if requested == "cuda" and not cuda_available:
        raise HarnessError(
            "the patchcore gate was asked for device 'cuda', but torch sees no CUDA GPU "
            "(a CPU-only torch build, or no driver); use device 'auto' or 'cpu'"
        )
    if requested not in ("cpu", "cuda"):
        raise HarnessError(f"unknown device {requested!r}; expected auto, cpu or cuda")
    return requested


def usable_cpus() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


_scoring_workers: ThreadPoolExecutor | None = None
_scoring_workers_lock = threading.Lock()


def scoring_workers(torch: ModuleType) -> ThreadPoolExecutor:
    """The threads that score images on a CPU, one per usable core, each running torch on one thread.

    One image a thread: a score then depends neither on the batch it came in nor on the machine's core
    count, and small per-image operations do not pay for synchronising threads. `torch.set_num_threads`
    sets the calling thread's count and also the one any thread takes at its first torch work, so
    each worker takes its own first, then sets 1; once all have started, the previous count is set again.
    """
    global _scoring_workers
    with _scoring_workers_lock:
        if _scoring_workers is None:
            count = usable_cpus()
            previous = torch.get_num_threads()
            started = threading.Barrier(count + 1)

            def start() -> None:
                torch.get_num_threads()  # the thread's first torch call fixes its count ...
                torch.set_num_threads(1)  # ... which this then lowers for this thread
                started.wait()

            pool = ThreadPoolExecutor(count, thread_name_prefix="patchcore-score", initializer=start)
            for _ in range(count):  # each blocks in `start` until all exist, so every submit starts a thread
                pool.submit(lambda: None)
            started.wait()
            torch.set_num_threads(previous)
            _scoring_workers = pool
        return _scoring_workers


_exact_lock = threading.Lock()
_exact_holders = 0  # blocks inside `exact_float32` now, in any thread
_tf32_before = (False, True)  # (matmul, cuDNN) as the first of them found them, put back by the last to leave


@contextlib.contextmanager
def exact_float32(torch: ModuleType):
    """Matrix products and convolutions in full float32 inside the block, TF32 (10 mantissa bits) off.

    For distances: TF32 would move nearest-neighbour distances by about 1e-3 relative, enough to
    reorder close scores (PyTorch's default is off already; this holds even when a program or a model
    backend turned it on). For the backbone's float32 convolutions, where cuDNN's default is on: on an
    H200 it moved a float32 score by up to 0.85% between an image scored alone and in a batch, and up
    to 3.3% from the CPU's (benchmarks/device/h200-2026-12-04), while the network took 0.14 ms of an
    image's 12. Float16 convolutions never use TF32. The settings are global and scoring threads
    enter the block together: only the last to leave puts them back.
    """
    global _exact_holders, _tf32_before
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    with _exact_lock:
        if _exact_holders == 0:
            _tf32_before = (matmul.allow_tf32, cudnn.allow_tf32)
            matmul.allow_tf32 = cudnn.allow_tf32 = False
        _exact_holders += 1
    try:
        yield
    finally:
        with _exact_lock:
            _exact_holders -= 1
            if _exact_holders == 0:
                matmul.allow_tf32, cudnn.allow_tf32 = _tf32_before


def prepare_device(requested: str) -> str:
    """Resolve ``requested`` with torch's view of the GPU; on cpu, let torch use every usable core."""
    torch = import_torch()
    device = resolve_device(requested, torch.cuda.is_available())
    if device == "cpu":
        cores = usable_cpus()
        if torch.get_num_threads() != cores:
            torch.set_num_threads(cores)
    return device


def native_cpu_bfloat16(torch: ModuleType) -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (AVX512-BF16 or AMX), so they are fast.

    Without that, oneDNN emulates bfloat16 and it is slower than float32.
    torch only answers this through a private function; if it ever goes
    away, the answer is no (float32, always correct).
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
