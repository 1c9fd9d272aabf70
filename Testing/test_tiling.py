"""Tile grid, Gaussian importance map and Gaussian-blended sliding-window inference."""

from __future__ import annotations

import pytest
import torch
from UNetPlusPlusLib.engine.tiling import (
    gaussian_importance,
    sliding_window_inference,
    tile_starts,
)
from UNetPlusPlusLib.errors import CancelledError


@pytest.mark.parametrize("size, tile, overlap", [(100, 32, 0.25), (64, 32, 0.5), (33, 32, 0.25)])
def test_tiles_cover_the_axis_with_at_least_the_requested_overlap(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and starts[-1] == size - tile
    steps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(0 < step <= int(tile * (1 - overlap)) for step in steps)


def test_one_tile_when_the_axis_fits():
    assert tile_starts(20, 32, 0.25) == [0] and tile_starts(32, 32, 0.25) == [0]
    assert tile_starts(64, 32, 0.0) == [0, 32]


def test_gaussian_importance_peaks_at_the_centre_and_never_vanishes():
    weights = gaussian_importance((8, 10, 12))
    assert weights.shape == (8, 10, 12) and weights.dtype == torch.float32
    assert torch.isclose(weights.max(), torch.tensor(1.0))
    assert weights.min() > 0 and weights[0, 0, 0] < weights[4, 5, 6]
    assert torch.equal(weights, weights.flip(0)) and torch.equal(weights, weights.flip(2))


def voxelwise_predictor(calls: list | None = None):
    """A 'network' whose probabilities depend only on each voxel's value: blending must
    reproduce the same function of the whole image, wherever the tiles fall."""

    def predict(tiles: torch.Tensor) -> torch.Tensor:
        if calls is not None:
            calls.append(tiles.clone())
        x = tiles[:, :1]
        return torch.softmax(torch.cat([x, -x, 0.5 * x], dim=1), dim=1)

    return predict


def expected(image: torch.Tensor) -> torch.Tensor:
    x = image[:1]
    return torch.softmax(torch.cat([x, -x, 0.5 * x], dim=0), dim=0)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_blended_probabilities_equal_the_voxelwise_function(batch_size):
    image = torch.randn(2, 20, 23, 17, generator=torch.Generator().manual_seed(0))
    seen = []
    out = sliding_window_inference(
        image, (8, 8, 8), voxelwise_predictor(), 3, overlap=0.5, batch_size=batch_size,
        progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert out.shape == (3, 20, 23, 17) and out.dtype == torch.float32
    assert torch.allclose(out, expected(image), atol=1e-5)
    total = seen[-1][1]
    assert seen[-1] == (total, total) and total == 4 * 5 * 4
    assert len(seen) == -(-total // batch_size)


def test_a_volume_smaller_than_the_tile_is_padded_with_its_minimum_and_cropped_back():
    image = torch.rand(1, 1, 5, 6, 7) + 2.0  # a (1, C, ...) batch of one is accepted
    calls: list = []
    out = sliding_window_inference(image, (8, 8, 8), voxelwise_predictor(calls), 3)
    assert out.shape == (3, 5, 6, 7)
    assert torch.allclose(out, expected(image[0]), atol=1e-5)
    (tiles,) = calls
    assert tiles.shape == (1, 1, 8, 8, 8)
    padded = torch.ones(8, 8, 8, dtype=torch.bool)
    padded[1:6, 1:7, 0:7] = False  # centred: (3 // 2, 2 // 2, 1 // 2) before
    assert torch.equal(tiles[0, 0, 1:6, 1:7, 0:7], image[0, 0])
    assert torch.all(tiles[0, 0][padded] == image.min())


def test_cancel_stops_between_batches():
    image = torch.zeros(1, 16, 16, 16)
    calls: list = []
    with pytest.raises(CancelledError):
        sliding_window_inference(
            image, (8, 8, 8), voxelwise_predictor(calls), 3, overlap=0.0,
            cancel=lambda: len(calls) >= 2,
        )  # fmt: skip
    assert len(calls) == 2


def test_a_predictor_with_the_wrong_output_shape_is_a_bug():
    with pytest.raises(ValueError, match="predict returned"):
        sliding_window_inference(torch.zeros(1, 8, 8, 8), (8, 8, 8), voxelwise_predictor(), 2)


def test_accumulators_fall_back_to_the_cpu_when_the_gpu_is_full(monkeypatch):
    """A GPU out-of-memory while allocating the (K, volume) accumulators moves them, and only
    them, to the CPU (the allocation failure is simulated; no GPU is needed)."""
    from UNetPlusPlusLib.engine import tiling

    real_zeros = torch.zeros
    asked = []

    def zeros(*args, device=None, **kwargs):
        asked.append(torch.device(device) if device is not None else None)
        if device is not None and torch.device(device).type == "cuda":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_zeros(*args, device=device, **kwargs)

    monkeypatch.setattr(torch, "zeros", zeros)
    probabilities, weights = tiling._accumulators(3, (4, 5, 6), torch.float32, torch.device("cuda"))
    assert probabilities.shape == (3, 4, 5, 6) and weights.shape == (4, 5, 6)
    assert probabilities.device.type == weights.device.type == "cpu"
    assert asked[0].type == "cuda" and asked[-1].type == "cpu"


def test_other_allocation_errors_are_not_swallowed(monkeypatch):
    from UNetPlusPlusLib.engine import tiling

    def broken(*args, **kwargs):
        raise RuntimeError("invalid argument")

    monkeypatch.setattr(torch, "zeros", broken)
    with pytest.raises(RuntimeError, match="invalid argument"):
        tiling._accumulators(2, (4, 4, 4), torch.float32, torch.device("cuda"))


def test_cudnn_benchmark_is_on_for_cuda_runs_only_and_restored():
    from UNetPlusPlusLib.engine.devices import inference_backends

    before = torch.backends.cudnn.benchmark
    with inference_backends("cpu"):
        assert torch.backends.cudnn.benchmark == before
    with inference_backends("cuda:0"):
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark == before


def test_thin_input_warning_names_every_thin_axis():
    """Fresh user 25: 0.3 mm voxels in the demo CT's header made it 36.6 x 30.3 x 33.6 mm, and
    the warning named the i axis only (not even the thinnest)."""
    from UNetPlusPlusLib.engine.tiling import thin_input_warning

    both = thin_input_warning((122, 101, 112), (0.3, 0.3, 3.0), 144.0)
    assert "only 36.6 x 30.3 mm thick along its i and j axes," in both
    assert "only 33.6 mm thick along its k axis," in thin_input_warning(
        (100, 100, 112), (3, 3, 0.3), 144
    )
    assert thin_input_warning((100, 100, 100), (3, 3, 3), 144.0) == ""
    # fresh user 27: a slab of 53 voxels of 0.703125 mm said "only 37.2656 x ... mm"
    assert "only 37.3 mm thick along its i axis," in thin_input_warning(
        (53, 200, 200), (0.703125, 3, 3), 144
    )


def test_thin_input_warning_names_axes_in_patient_terms_when_the_direction_is_known():
    """'only 6 mm thick along its k axis' (tester 20): the axis is named as the patient's."""
    import numpy as np
    from UNetPlusPlusLib.engine.tiling import thin_input_warning

    lps = np.diag([-1.0, -1.0, 1.0])  # the example CT's RAS-stored axes
    said = thin_input_warning((100, 100, 2), (3, 3, 3), 144, lps)
    assert "only 6 mm thick along its head-feet (k) axis," in said
    # a sagittal slab stored with its i axis along the patient's head-feet and k left-right
    sagittal = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    said = thin_input_warning((100, 100, 2), (3, 3, 3), 144, sagittal)
    assert "thick along its left-right (k) axis," in said
    # 45 degrees oblique between front-back and head-feet: no patient name fits
    c = np.sqrt(0.5)
    oblique = np.array([[1.0, 0.0, 0.0], [0.0, c, -c], [0.0, c, c]])
    said = thin_input_warning((2, 100, 2), (3, 3, 3), 144, oblique)
    assert "thick along its left-right (i) and oblique k axes," in said
