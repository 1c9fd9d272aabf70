"""Predictor: real inference with the sphere test model, geometry, prompts, errors."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from helpers import dice, make_sphere_image, rotation_matrix, sphere_mask
from UNetPlusPlusLib.engine.image_read import volume_from_sitk
from UNetPlusPlusLib.engine.predictor import Predictor, parse_depth
from UNetPlusPlusLib.engine.volume import Box
from UNetPlusPlusLib.errors import CancelledError, UNetPlusPlusError


def _volume(image: sitk.Image):
    return volume_from_sitk([image], channel_names=["CT"])


def test_segments_a_sphere_on_the_input_grid(sphere_predictor):
    image = make_sphere_image((40, 36, 30), spacing=(2.0, 2.0, 2.0), radius_mm=12, noise=10)
    result = sphere_predictor.segment(_volume(image), depth=4)
    labels = result.labels
    assert labels.array.shape == (30, 36, 40)
    assert labels.array.dtype == np.uint8
    truth = sphere_mask(
        image, image.TransformContinuousIndexToPhysicalPoint((19.5, 17.5, 14.5)), 12
    )
    assert dice(labels.array == 1, truth) > 0.9
    assert [label.name for label in labels.labels] == ["liver"]
    assert result.info["device"] == "cpu"


@pytest.mark.parametrize(
    "direction,spacing",
    [
        (np.diag([-1.0, -1.0, 1.0]), (1.5, 1.5, 3.0)),  # RAS-stored NIfTI, anisotropic
        (rotation_matrix((20, -15, 30)), (1.7, 2.3, 2.9)),  # oblique, anisotropic
        (
            np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
            (2.5, 1.8, 2.2),
        ),  # permuted
    ],
)
def test_geometry_is_exact_and_physical_position_is_kept(sphere_predictor, direction, spacing):
    centre = (12.0, -30.0, 41.0)
    origin = np.asarray(centre) - direction @ (np.asarray(spacing) * np.array([17, 15, 13]))
    image = make_sphere_image(
        (34, 30, 26), spacing=spacing, origin=origin, direction=direction,
        center_lps=centre, radius_mm=13, noise=5,
    )  # fmt: skip
    volume = _volume(image)
    labels = sphere_predictor.segment(volume, depth=3).labels
    assert labels.array.shape == volume.array.shape[1:]
    assert labels.spacing == pytest.approx(volume.spacing, abs=0)
    assert labels.origin == pytest.approx(volume.origin, abs=0)
    np.testing.assert_array_equal(labels.direction, volume.direction)
    assert dice(labels.array == 1, sphere_mask(image, centre, 13)) > 0.85


def test_every_depth_and_ensemble_segment(sphere_predictor):
    image = make_sphere_image((32, 32, 32), radius_mm=14, noise=5)
    truth = sphere_mask(image, image.TransformContinuousIndexToPhysicalPoint((15.5,) * 3), 14)
    for depth in (1, 2, 3, 4, "ensemble", "auto", "L2"):
        labels = sphere_predictor.segment(_volume(image), depth=depth).labels
        assert dice(labels.array == 1, truth) > 0.8, depth


def test_depth_parsing_rejects_unknown_depths(sphere_predictor):
    manifest = sphere_predictor.manifest
    assert parse_depth("auto", manifest) == manifest.recommended_depth
    assert parse_depth("L4", manifest) == 4
    with pytest.raises(UNetPlusPlusError, match="Depth"):
        parse_depth(5, manifest)


def test_roi_restricts_inference_and_point_picks_one_sphere(sphere_predictor):
    image = make_sphere_image((60, 30, 30), radius_mm=9, center_lps=(25.0, 29.0, 29.0))
    second = make_sphere_image((60, 30, 30), radius_mm=9, center_lps=(95.0, 29.0, 29.0))
    both = sitk.Maximum(image, second)
    volume = _volume(both)
    full = sphere_predictor.segment(volume, depth=4).labels.array
    assert full[:, :, :30].any() and full[:, :, 30:].any()

    roi = Box((60.0, -10.0, -10.0), (130.0, 70.0, 70.0))
    cropped = sphere_predictor.segment(volume, depth=4, roi=roi).labels
    assert cropped.array.shape == full.shape
    assert not cropped.array[:, :, :30].any() and cropped.array[:, :, 30:].any()

    prompted = sphere_predictor.segment(volume, depth=4, point=(25.0, 29.0, 29.0)).labels.array
    assert prompted[:, :, :30].any() and not prompted[:, :, 30:].any()


def test_probabilities_are_returned_on_the_input_grid(sphere_predictor):
    image = make_sphere_image((30, 28, 26), radius_mm=10)
    result = sphere_predictor.segment(_volume(image), depth=2, return_probabilities=True)
    probabilities = result.probabilities.array
    assert probabilities.shape == (2, 26, 28, 30)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(probabilities.argmax(axis=0), result.labels.array)


def test_progress_reports_stages_and_tiles(sphere_predictor):
    events = []
    image = make_sphere_image((70, 40, 40), radius_mm=10)
    sphere_predictor.segment(_volume(image), depth=1, progress=lambda *e: events.append(e))
    stages = [stage for stage, _, _ in events]
    assert stages.index("preprocess") < stages.index("infer") < stages.index("postprocess")
    infer = [(done, total) for stage, done, total in events if stage == "infer"]
    assert infer[-1][0] == infer[-1][1] > 1


def test_cancel_stops_between_tiles(sphere_predictor):
    image = make_sphere_image((70, 40, 40), radius_mm=10)
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(CancelledError):
        sphere_predictor.segment(_volume(image), depth=1, cancel=cancel)


def test_wrong_channel_count_and_nan_are_user_errors(sphere_predictor):
    image = make_sphere_image((20, 20, 20))
    two = volume_from_sitk([image, image])
    with pytest.raises(UNetPlusPlusError, match="needs 1 input volume"):
        sphere_predictor.segment(two)
    volume = _volume(image)
    volume.array[0, 3, 3, 3] = np.nan
    with pytest.raises(UNetPlusPlusError, match="NaN"):
        sphere_predictor.segment(volume)


def test_the_cpu_runs_two_small_tiles_per_pass_by_default_with_the_same_labels(sphere_model):
    # session 16: two tiles per forward pass ran the shipped models' tiles in 0.56-0.92x the
    # time per tile with identical logits; the default is 2 on the CPU for small tiles
    from UNetPlusPlusLib.engine.tile_run import AUTO_BATCH_MAX_VOXELS, auto_tile_batch

    predictor = Predictor.from_manifest_path(sphere_model, device="cpu", executor="ours")
    batches = []
    forward = predictor.model.forward

    def counted_forward(x, depth=4):
        batches.append(x.shape[0])
        return forward(x, depth=depth)

    image = make_sphere_image((64, 40, 40), radius_mm=10)
    one = predictor.segment(_volume(image), depth=1, tile_batch=1)
    predictor.model.forward = counted_forward
    try:
        auto = predictor.segment(_volume(image), depth=1)
    finally:
        del predictor.model.forward
    assert auto.info["tile_batch"] == 2 and max(batches) == 2
    np.testing.assert_array_equal(auto.labels.array, one.labels.array)
    assert auto_tile_batch("cuda", (48, 48, 48)) == 1  # not measured on a GPU: one per pass
    side = round(AUTO_BATCH_MAX_VOXELS ** (1 / 3))
    assert auto_tile_batch("cpu", (side, side, side)) == 2
    assert auto_tile_batch("cpu", (side + 1, side, side)) == 1  # large tiles: one per pass


def test_out_of_memory_falls_back_to_smaller_batches_then_fails_clearly(sphere_model, monkeypatch):
    predictor = Predictor.from_manifest_path(sphere_model, device="cpu", executor="ours")
    batches = []
    forward = predictor.model.forward

    def limited_forward(x, depth=4):
        batches.append(x.shape[0])
        if x.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return forward(x, depth=depth)

    monkeypatch.setattr(predictor.model, "forward", limited_forward)
    image = make_sphere_image((64, 40, 40), radius_mm=10)
    result = predictor.segment(_volume(image), depth=1, tile_batch=4)
    assert result.labels.array.any()
    assert result.info["tile_batch"] == 1
    assert any("tile batch" in message for message in result.info["fallbacks"])
    assert batches[0] == 4 and batches[-1] == 1

    def always_oom(x, depth=4):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: out of memory")

    monkeypatch.setattr(predictor.model, "forward", always_oom)
    with pytest.raises(UNetPlusPlusError, match="Out of memory"):
        predictor.segment(_volume(image), depth=1)


def test_a_tight_roi_keeps_tile_context_and_restricts_the_output(sphere_predictor):
    image = make_sphere_image((64, 64, 40), radius_mm=10, center_lps=(60.0, 60.0, 40.0), noise=5)
    volume = _volume(image)
    whole = sphere_predictor.segment(volume, depth=4).labels.array
    roi = Box((49.0, 49.0, 29.0), (71.0, 71.0, 51.0))  # 22 mm: smaller than one 64 mm tile
    tight = sphere_predictor.segment(volume, depth=4, roi=roi).labels.array
    assert dice(tight == 1, whole == 1) > 0.95
    outside = np.ones(tight.shape, dtype=bool)
    outside[14:26, 24:36, 24:36] = False  # voxels whose centres lie in the ROI (2 mm grid)
    assert not tight[outside].any()
