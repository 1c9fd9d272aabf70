"""The heads' disagreement map and per-segment agreement: values, geometry, errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_sphere_image, rotation_matrix
from UNetPlusPlusLib.engine.disagreement import disagreement_map, segment_agreement
from UNetPlusPlusLib.engine.image_read import volume_from_sitk
from UNetPlusPlusLib.engine.manifest import LabelSpec
from UNetPlusPlusLib.engine.tta import split_heads
from UNetPlusPlusLib.engine.volume import Box
from UNetPlusPlusLib.errors import UNetPlusPlusError

LABELS = [LabelSpec(value=1, name="liver", color=(1.0, 0.0, 0.0))]


def _heads(masks: list[np.ndarray], confidence: float = 0.9) -> np.ndarray:
    """(H, 2, z, y, x) probabilities whose argmax is each mask."""
    out = []
    for mask in masks:
        fg = np.where(mask, confidence, 1 - confidence).astype(np.float32)
        out.append(np.stack([1 - fg, fg]))
    return np.stack(out)


def test_agreeing_heads_give_zero_disagreement_and_agreement_one():
    mask = np.zeros((4, 5, 6), dtype=bool)
    mask[1:3, 1:4, 2:5] = True
    heads = _heads([mask, mask, mask])
    assert disagreement_map(heads).max() == 0.0
    assert segment_agreement(heads, LABELS) == {"liver": 1.0}
    empty = _heads([np.zeros_like(mask)] * 2)  # no head finds the segment: they agree
    assert segment_agreement(empty, LABELS) == {"liver": 1.0}


def test_disagreement_marks_the_voxels_where_heads_differ():
    a = np.zeros((1, 1, 4), dtype=bool)
    a[0, 0, :2] = True  # head a: 2 voxels
    b = np.zeros_like(a)
    b[0, 0, :1] = True  # head b: 1 of them
    heads = _heads([a, b], confidence=1.0)
    np.testing.assert_allclose(disagreement_map(heads)[0, 0], [0.0, 1.0, 0.0, 0.0])
    assert segment_agreement(heads, LABELS)["liver"] == pytest.approx(2 * 1 / 3, abs=1e-4)
    three = _heads([a, b, b], confidence=1.0)  # pairs: (a,b), (a,b), (b,b)
    np.testing.assert_allclose(disagreement_map(three)[0, 0, 1], 2 / 3, rtol=1e-6)


def test_split_heads_final_is_last_head_or_mean_for_the_ensemble():
    stacked = np.arange(4 * 2 * 3, dtype=np.float32).reshape(4 * 2, 1, 1, 3)
    final, heads = split_heads(stacked, 2, 4)
    assert heads.shape == (4, 2, 1, 1, 3)
    np.testing.assert_array_equal(final, stacked[6:8])
    final, _ = split_heads(stacked, 2, "ensemble")
    np.testing.assert_allclose(final, stacked.reshape(4, 2, 1, 1, 3).mean(axis=0))


def test_disagreement_map_sits_exactly_on_an_oblique_input_grid(sphere_predictor):
    direction, spacing = rotation_matrix((20, -15, 30)), (1.7, 2.3, 2.9)
    centre = (12.0, -30.0, 41.0)
    origin = np.asarray(centre) - direction @ (np.asarray(spacing) * np.array([17, 15, 13]))
    image = make_sphere_image(
        (34, 30, 26), spacing=spacing, origin=origin, direction=direction,
        center_lps=centre, radius_mm=13, noise=5,
    )  # fmt: skip
    volume = volume_from_sitk([image], channel_names=["CT"])
    plain = sphere_predictor.segment(volume, depth=2)
    result = sphere_predictor.segment(volume, depth=2, disagreement=True)
    np.testing.assert_array_equal(result.labels.array, plain.labels.array)  # same prediction
    dmap = result.disagreement
    assert dmap.array.shape == (1,) + volume.array.shape[1:]
    assert dmap.spacing == pytest.approx(volume.spacing, abs=0)
    assert dmap.origin == pytest.approx(volume.origin, abs=0)
    np.testing.assert_array_equal(dmap.direction, volume.direction)
    assert 0.0 <= dmap.array.min() and dmap.array.max() <= 1.0
    assert dmap.array.max() > 0.0  # the small fixture's heads differ somewhere (the border)
    assert result.info["heads"] == 2
    assert set(result.info["agreement"]) == {"liver"}
    assert 0.5 < result.info["agreement"]["liver"] <= 1.0
    assert plain.disagreement is None


def test_disagreement_is_zero_outside_the_roi(sphere_predictor):
    image = make_sphere_image((40, 30, 30), radius_mm=9, center_lps=(29.0, 29.0, 29.0))
    volume = volume_from_sitk([image], channel_names=["CT"])
    roi = Box((16.0, 16.0, 16.0), (42.0, 42.0, 42.0))
    result = sphere_predictor.segment(volume, depth=2, roi=roi, disagreement=True)
    dmap = result.disagreement.array[0]
    assert dmap[:, :, 25:].max() == 0.0  # x >= 50 mm lies outside the ROI
    assert dmap[8:21, 8:21, 8:21].max() > 0.0


def test_depth_one_has_one_head_and_is_refused(sphere_predictor):
    image = make_sphere_image((24, 24, 24), radius_mm=10)
    volume = volume_from_sitk([image], channel_names=["CT"])
    with pytest.raises(UNetPlusPlusError, match="depth 2, 3, 4 or ensemble"):
        sphere_predictor.segment(volume, depth=1, disagreement=True)
    result = sphere_predictor.segment(volume, depth="ensemble", disagreement=True)
    assert result.info["heads"] == 4
