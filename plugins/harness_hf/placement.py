"""Where a large model's weights go: the ``device_map``, ``max_memory`` and ``attn_implementation`` options.

Parsing and checking only; nothing here imports torch, so a malformed value is
an option error at setup, named by the option. Values are kept as strings
(``"cuda:1"``, GPU index ``"0"`` as a ``max_memory`` key) so the options stay
JSON-serialisable for the response cache key; `from_pretrained_kwargs` turns
them into what transformers expects.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: device_map strings that let accelerate plan the placement from the model's size and the free memory.
PLANNED = ("auto", "balanced", "balanced_low_0", "sequential")
#: attention implementations transformers ships (None: its own default, sdpa where the model supports it).
ATTENTION = ("eager", "sdpa", "flex_attention", "flash_attention_2", "flash_attention_3")
#: the package each flash attention implementation needs (as transformers imports it).
FLASH_PACKAGES = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}

_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
_SIZE = re.compile(r"^\d+(\.\d+)?\s*([KMGT]i?B|B)$", re.IGNORECASE)
_DEVICES_HELP = "cpu, mps, cuda, cuda:N or a GPU index N"


def parse_device_map(value: Any) -> str | dict[str, str] | None:
    """``device_map`` as given (a string, a TOML table, or a JSON object in a string) -> its canonical form.

    A string is a planned placement (`PLANNED`) or one device for the whole
    model; a map sends each module (by its name in the model, ``""`` for the
    whole model) to a device. GPU indices become ``cuda:N``. Disk offload is not
    offered: it needs an offload folder and is too slow to evaluate with.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"device_map is not a valid JSON object: {error}") from None
        elif text in PLANNED or _DEVICE.match(text):
            return text
        else:
            raise ValueError(
                f"device_map {value!r} is not one of {', '.join(PLANNED)}, a device ({_DEVICES_HELP}), "
                "or a map of module name to device"
            )
    if not isinstance(value, dict):
        raise ValueError(f"device_map must be a string or a map of module name to device, not {type(value).__name__}")
    if not value:
        raise ValueError("device_map is an empty map; give each top-level module a device, or use auto")
    return {str(module): _map_device(f"device_map[{str(module)!r}]", device) for module, device in value.items()}


def parse_max_memory(value: Any) -> dict[str, str | int] | None:
    """``max_memory``: device (cpu, mps, a GPU index N or cuda:N) -> most bytes to use there (an int, or "20GiB")."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"max_memory is not a valid JSON object: {error}") from None
    if not isinstance(value, dict) or not value:
        raise ValueError('max_memory must be a non-empty map of device to size, e.g. {"0" = "20GiB", "cpu" = "60GiB"}')
    parsed: dict[str, str | int] = {}
    for key, size in value.items():
        device = _map_device(f"max_memory key {key!r}", key)
        name = device.removeprefix("cuda:") if device.startswith("cuda:") else "0" if device == "cuda" else device
        if isinstance(size, bool) or not (isinstance(size, int) and size > 0 or isinstance(size, str) and _SIZE.match(size.strip())):
            raise ValueError(f"max_memory[{key!r}] = {size!r} is not a size; expected bytes (an integer) or e.g. '20GiB', '500MB'")
        parsed[name] = size.strip() if isinstance(size, str) else size
    return parsed


def _map_device(where: str, device: Any) -> str:
    if isinstance(device, int) and not isinstance(device, bool) and device >= 0:
        return f"cuda:{device}"
    if isinstance(device, str):
        text = device.strip()
        if text.isdigit():
            return f"cuda:{int(text)}"
        if _DEVICE.match(text):
            return text
    raise ValueError(f"{where} = {device!r} is not a device; expected {_DEVICES_HELP} (disk offload is not supported)")


def placement_devices(device_map: str | dict[str, str]) -> list[str]:
    """The devices an explicit map names (a one-device string counts); [] for a planned placement."""
    if isinstance(device_map, dict):
        return sorted(set(device_map.values()))
    return [] if device_map in PLANNED else [device_map]


def from_pretrained_kwargs(device_map, max_memory, attn_implementation) -> dict[str, Any]:
    """The keyword arguments of ``from_pretrained`` for these options (only those that are set)."""
    kwargs: dict[str, Any] = {}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if max_memory is not None:
        # accelerate names GPUs by index (an int), other devices by name.
        kwargs["max_memory"] = {int(k) if k.isdigit() else k: v for k, v in max_memory.items()}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    return kwargs


def map_problems(device_map: dict[str, str], modules: list[str], parameters: list[str]) -> list[str]:
    """What is wrong with an explicit map for a model with these module and parameter names ([] when nothing).

    transformers itself accepts a key that names nothing, and puts a parameter
    that no key covers on the cpu: on a GPU machine that is a silently slow
    model, so both are errors here.
    """
    known = set(modules) | set(parameters)
    problems = []
    unknown = [key for key in device_map if key and key not in known]
    if unknown:
        top = [m for m in modules if m and m.count(".") <= 1]
        problems.append(f"it names modules the model does not have: {', '.join(unknown)} "
                        f"(its top-level modules: {', '.join(top)})")
    if "" not in device_map:
        uncovered = [p for p in parameters if not any(p == key or p.startswith(key + ".") for key in device_map)]
        if uncovered:
            shown = ", ".join(uncovered[:5]) + (f" and {len(uncovered) - 5} more" if len(uncovered) > 5 else "")
            problems.append(f"it gives no device to {shown} (add their modules, or \"\" for everything else)")
    return problems
