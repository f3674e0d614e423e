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


def check_device_map(device_map: str | dict[str, str]) -> str:
    """Check that a ``device_map`` can be used here; return the device that ``dtype = "auto"`` is decided for.

    transformers places a model by a device map through accelerate (it refuses
    any ``device_map`` without it), so its absence is reported now, with the
    pip hint, rather than when the model loads. Every device the map names must
    exist. A planned placement (auto, balanced, ...) uses the GPUs when there
    are any, so its dtype is a GPU's.
    """
    import importlib.util

    import torch

    from harness_hf.checkpoint import PIP_HINT
    from harness_hf.placement import placement_devices

    if importlib.util.find_spec("accelerate") is None:
        raise HarnessError(
            f"device_map {device_map!r} needs the accelerate package (transformers places a model across devices "
            f"with it), which is not installed; install it with: {PIP_HINT}"
        )
    devices = placement_devices(device_map)
    for device in devices:
        resolve_device(device)
        index = device.partition(":")[2]
        if index and int(index) >= torch.cuda.device_count():
            raise HarnessError(
                f"device_map names {device}, but torch sees {torch.cuda.device_count()} CUDA device(s) (0 to "
                f"{torch.cuda.device_count() - 1})"
            )
    if not devices:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return next((d for d in devices if d.startswith("cuda")), devices[0])


def check_attention(attn_implementation: str | None, device: str) -> None:
    """A flash attention implementation needs its package and a CUDA device; say so before loading."""
    import importlib.util

    from harness_hf.placement import FLASH_PACKAGES

    package = FLASH_PACKAGES.get(attn_implementation or "")
    if package is None:
        return
    if not device.startswith("cuda"):
        raise HarnessError(f"attn_implementation {attn_implementation!r} runs only on CUDA GPUs; this model is on {device}")
    if importlib.util.find_spec(package) is None:
        raise HarnessError(
            f"attn_implementation {attn_implementation!r} needs the {package} package, which is not installed "
            "(or choose sdpa or eager)"
        )
