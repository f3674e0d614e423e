"""Which device and dtype ``auto`` means here. Imports torch (not transformers) at first call."""

from __future__ import annotations

from harness.errors import HarnessError

_DTYPES = ("float32", "float16", "bfloat16")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is usable, else ``cpu``; an explicit device is checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError(f"device {device!r} was asked for, but torch sees no CUDA device (torch {torch.__version__})")
    if device == "mps" and not torch.backends.mps.is_available():
        raise HarnessError("device 'mps' was asked for, but torch sees no Apple GPU")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto`` -> bfloat16 on a GPU that supports it, float16 on other GPUs, float32 elsewhere."""
    if dtype != "auto":
        if dtype not in _DTYPES:
            raise HarnessError(f"unknown dtype {dtype!r}; expected auto or one of {', '.join(_DTYPES)}")
        return dtype
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"
