"""The CT body crop of all-CT models (engine/body_crop.py) and its use by the Predictor.

Phantoms: a "body" (a 0 HU ellipsoid holding a 300 HU ball, which the sphere test model
segments) in -1000 HU air, on an oblique, anisotropic grid whose field of view is much larger
than the body; the sphere model (window -200..400 HU, 2 mm, 32^3 tiles) infers it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import make_sphere_image, rotation_matrix, sphere_mask, sphere_model_copy
from UNetPlusPlusLib.engine import body_crop
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.normalize import normalize
from UNetPlusPlusLib.engine.point_crop import content_slices
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.prepare import prepare_input
from UNetPlusPlusLib.engine.tile_count import tile_count
from UNetPlusPlusLib.engine.volume import Box, Volume, canonical_grid, resample_volume
from UNetPlusPlusLib.errors import UNetPlusPlusError

DIRECTION = rotation_matrix((12, -8, 20))
SPACING = (1.7, 1.9, 2.3)
SIZE = (100, 64, 30)  # about 170 x 122 x 69 mm: the body fills a part of it
ORIGIN = (-30.0, 10.0, 40.0)
AIR = -1000.0
WINDOW = [{"kind": "ct", "window": [-200.0, 400.0]}]


def _phantom(body_at=(40, 32, 15), body_mm=(45.0, 20.0, 40.0), ball_mm=9.0, **grid):
    """(Volume, ball mask): an air field of view, an ellipsoid body of 0 HU (semi-axes
    ``body_mm`` along x, y, z of the image, centred at index ``body_at``), a 300 HU ball of
    ``ball_mm`` at its centre, noise of 20 HU; ``grid``: SIZE, SPACING, ORIGIN, DIRECTION."""
    size, spacing = grid.get("size", SIZE), grid.get("spacing", SPACING)
    origin, direction = grid.get("origin", ORIGIN), grid.get("direction", DIRECTION)
    image = make_sphere_image(size, spacing, origin, direction)
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint([float(i) for i in body_at]))
    ball = sphere_mask(image, centre, ball_mm)
    k, j, i = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    offset = [(a - c) * s for a, c, s in zip((i, j, k), body_at, spacing)]
    body = sum((o / r) ** 2 for o, r in zip(offset, body_mm)) <= 1.0
    noise = np.random.default_rng(1).normal(0.0, 20.0, body.shape)
    array = np.where(body, np.where(ball, 300.0, 0.0), AIR) + noise
    return Volume(array[None].astype(np.float32), spacing, origin, direction, ("CT",)), ball


@pytest.fixture(scope="module")
def phantom():
    return _phantom()


def _recall(result, mask) -> float:
    return float((result.labels.array > 0)[mask].mean())


def _model_slices(full, part):
    start = np.rint(full.physical_to_index(part.origin)).astype(int)[::-1]
    return tuple(slice(int(a), int(a) + n) for a, n in zip(start, part.shape_zyx))


def _outside(shape, slices):
    outside = np.ones(shape, bool)
    outside[slices] = False
    return outside


def _segment(predictor, volume, **options):
    """(result, tiles run: the total of the "infer" progress reports)."""
    seen = [0]

    def progress(stage, done, total):
        seen[0] = total if stage == "infer" else seen[0]

    return predictor.segment(volume, progress=progress, **options), seen[0]


@pytest.mark.parametrize("oblique", [True, False])
def test_the_crop_holds_the_body_and_its_normalised_input_is_the_whole_runs(phantom, oblique):
    volume, _ = phantom if oblique else _phantom(direction=np.eye(3))
    found = body_crop.body_crop(volume, WINDOW, (2.0, 2.0, 2.0), (32, 32, 32), 0.25)
    assert found is not None
    crop, fill = found
    assert fill == [-500.0]  # min(BODY_HU, the window's low end)
    body = volume.array[0] > -500.0
    assert body.any() and not body[_outside(volume.shape_zyx, crop.slices)].any()
    assert body_crop.body_box(volume.array, [-500.0]) == content_slices(body)  # the exact box
    # every body voxel's centre lies inside the crop's model grid (none cut off)
    index = crop.grid.physical_to_index(volume.grid.index_to_physical(np.argwhere(body)[:, ::-1]))
    assert (index >= -1e-6).all() and (index <= np.array(crop.grid.size_xyz) - 1 + 1e-6).all()
    full = canonical_grid(volume, (2.0, 2.0, 2.0))
    whole = normalize(resample_volume(volume, full), WINDOW).array
    part = normalize(resample_volume(crop.region, crop.grid, default=fill), WINDOW).array
    inside = _model_slices(full, crop.grid)
    np.testing.assert_allclose(full.physical_to_index(crop.grid.origin) % 1, 0, atol=1e-9)
    np.testing.assert_allclose(crop.grid.direction, full.direction, atol=0)
    np.testing.assert_allclose(part, whole[(slice(None),) + inside], rtol=0, atol=2e-6)
    # outside the crop the whole run's network input is air (0), what the tiles are padded with
    assert not whole[:, _outside(full.shape_zyx, inside)].any()
    assert tile_count(crop.grid.shape_zyx, (32,) * 3, 0.25) < tile_count(
        full.shape_zyx, (32,) * 3, 0.25
    )


def test_the_predictor_infers_on_the_body_only(sphere_predictor, phantom):
    volume, ball = phantom
    on, tiles_on = _segment(sphere_predictor, volume, depth=2, return_probabilities=True,
                            disagreement=True)  # fmt: skip
    off, tiles_off = _segment(sphere_predictor, volume, depth=1, crop_body=False)
    assert on.info["body_crop"] is not None and off.info["body_crop"] is None
    assert on.info["nonzero_crop"] is None
    assert 0 < tiles_on < tiles_off  # fails if the crop is removed
    for result in (on, off):  # the tiny test model was not trained with air: recall only
        assert result.labels.grid.isclose(volume.grid, tolerance=0)
        assert _recall(result, ball) > 0.6
    crop = body_crop.body_crop(volume, WINDOW, (2.0, 2.0, 2.0), (32, 32, 32), 0.25)[0]
    assert on.info["body_crop"] == list(crop.grid.shape_zyx)
    outside = _outside(volume.shape_zyx, crop.slices)
    assert outside.any() and not on.labels.array[outside].any()
    assert on.probabilities.grid.isclose(volume.grid, tolerance=0)
    np.testing.assert_array_equal(on.probabilities.array[0][outside], 1.0)
    np.testing.assert_array_equal(on.probabilities.array[1][outside], 0.0)
    assert on.disagreement.grid.isclose(volume.grid, tolerance=0)
    assert not on.disagreement.array[0][outside].any()
    assert on.disagreement.array[0][crop.slices].any()


def test_a_ball_at_the_edge_of_the_body_is_found_as_without_the_crop(sphere_predictor):
    """A crop that cut the body (its box too small by a few voxels) would lose the ball's
    outer half, which lies on the body's surface."""
    volume, ball = _phantom(body_at=(40, 32, 15), body_mm=(45.0, 20.0, 40.0), ball_mm=7.0)
    array = volume.array.copy()
    edge = volume.grid.index_to_physical([40 + 45.0 / SPACING[0] - 2.0, 32, 15])
    image = make_sphere_image(SIZE, SPACING, ORIGIN, DIRECTION)
    lump = sphere_mask(image, edge, 7.0)  # half outside the ellipsoid: a lump on its surface
    array[0][lump] = 300.0
    volume = volume.with_array(array)
    on = sphere_predictor.segment(volume, depth=1)
    off = sphere_predictor.segment(volume, depth=1, crop_body=False)
    assert on.info["body_crop"] is not None
    found = [_recall(r, lump) for r in (on, off)]  # 0.72, 0.76 here
    assert found[1] > 0.6 and abs(found[0] - found[1]) < 0.1


def test_a_body_touching_the_border_and_a_tiny_body(sphere_predictor):
    # the body cut by the field of view at the patient's side (as the LiTS CTs)
    volume, ball = _phantom(body_at=(6, 32, 15), body_mm=(45.0, 20.0, 40.0))
    crop = body_crop.body_crop(volume, WINDOW, (2.0, 2.0, 2.0), (32, 32, 32), 0.25)[0]
    assert crop.slices[2].start == 0
    result = sphere_predictor.segment(volume, depth=1)
    assert result.info["body_crop"] == list(crop.grid.shape_zyx)
    assert result.labels.grid.isclose(volume.grid, tolerance=0)
    assert _recall(result, ball) > 0.6
    # a body smaller than a tile: the box grows to one tile, inside the model grid
    tiny, _ = _phantom(body_mm=(6.0, 6.0, 6.0), ball_mm=3.0)
    crop = body_crop.body_crop(tiny, WINDOW, (2.0, 2.0, 2.0), (32, 32, 32), 0.25)[0]
    full = canonical_grid(tiny, (2.0, 2.0, 2.0))
    assert crop.grid.shape_zyx == tuple(min(32, n) for n in full.shape_zyx)
    inside = _model_slices(full, crop.grid)
    assert all(0 <= s.start and s.stop <= n for s, n in zip(inside, full.shape_zyx))
    assert not (tiny.array[0] > -500)[_outside(tiny.shape_zyx, crop.slices)].any()


def test_tiles_beyond_the_box_are_padded_with_air(sphere_predictor, phantom):
    volume, _ = phantom
    manifest = sphere_predictor.manifest
    prepared = prepare_input(manifest, volume, volume, None)
    assert prepared.body_crop and prepared.pad == [body_crop.PAD_VALUE] == [0.0]
    memo: dict = {}  # the warm engine's: the crop setting is part of what is kept
    kept = prepare_input(manifest, volume, volume, None, memo=memo)
    off = prepare_input(manifest, volume, volume, None, crop_body=False, memo=memo)
    assert kept.body_crop and not off.body_crop and off.pad is None
    assert prepare_input(manifest, volume, volume, None, crop_body=False, memo=memo) is off
    assert float(off.image.min()) == 0.0  # air, the whole run's padding (its minimum)


def test_roi_and_point_runs_are_unchanged(sphere_predictor, phantom):
    volume, ball = phantom
    centre = volume.grid.index_to_physical(np.argwhere(ball).mean(axis=0)[::-1])
    roi = Box(tuple(centre - 20.0), tuple(centre + 20.0))
    for prompt in ({"roi": roi}, {"point": tuple(centre)}):
        on = sphere_predictor.segment(volume, depth=1, **prompt)
        off = sphere_predictor.segment(volume, depth=1, crop_body=False, **prompt)
        assert on.info["body_crop"] is None
        np.testing.assert_array_equal(on.labels.array, off.labels.array)


def test_no_body_no_air_and_the_manifest_switch(sphere_model, sphere_predictor, tmp_path):
    volume, _ = _phantom()
    air = volume.with_array(np.full_like(volume.array, AIR))
    assert body_crop.body_crop(air, WINDOW, (2.0, 2.0, 2.0), (32, 32, 32), 0.25) is None
    no_air = volume.with_array(volume.array + 1000.0)  # all body: no crop (the whole grid)
    assert body_crop.body_crop(no_air, WINDOW, (2.0, 2.0, 2.0), (32, 32, 32), 0.25) is None
    with pytest.raises(ValueError, match="margin"):
        body_crop.body_crop(volume, WINDOW, (2.0, 2.0, 2.0), (32, 32, 32), 0.25, margin=-1)
    lung_window = [{"kind": "ct", "window": [-1000.0, 200.0]}]
    assert body_crop.air_threshold(lung_window[0]) == -1000.0  # outside still normalises to 0
    path = sphere_model_copy(sphere_model, tmp_path / "off", crop_body=False)
    manifest = ModelManifest.load(path)
    assert not body_crop.crop_enabled(manifest) and body_crop.crop_enabled(manifest, True)
    assert body_crop.crop_enabled(sphere_predictor.manifest)
    assert (
        Predictor(manifest, device="cpu", threads=2).segment(volume, depth=1).info["body_crop"]
        is None
    )
    data = json.loads(path.read_text(encoding="utf-8"))
    data["inference"] = {"crop_body": "yes"}
    with pytest.raises(UNetPlusPlusError, match="crop_body"):
        ModelManifest.from_dict(data)
    data["inference"] = {}
    data["channels"][0]["normalization"] = {"kind": "mr"}
    assert not body_crop.crop_enabled(ModelManifest.from_dict(data), True)  # CT models only
    data["channels"][0] = {"name": "CT", "modality": "CT", "normalization": WINDOW[0]}
    ct = Predictor(ModelManifest.from_dict(data, path), device="cpu", threads=2)
    with pytest.raises(UNetPlusPlusError, match="no air"):  # refused before any crop
        ct.segment(no_air, depth=1)


def test_the_cli_and_slicer_job_path_crops_too(tmp_path, sphere_model, phantom):
    """``run_segment`` is what ``unetpp segment`` and ``unetpp serve`` (the Slicer module's
    background job) run; it calls the same ``Predictor.segment`` with the manifest's default,
    and its summary carries ``body_crop``."""
    import SimpleITK as sitk
    from UNetPlusPlusLib.cli import build_parser
    from UNetPlusPlusLib.cli_segment import run_segment
    from UNetPlusPlusLib.engine.volume import array_to_sitk

    volume, _ = phantom
    ct = tmp_path / "ct.nrrd"
    sitk.WriteImage(array_to_sitk(volume.array[0], volume.grid), str(ct))
    argv = [str(ct), "--model", str(sphere_model), "--device", "cpu", "--threads", "1"]
    argv += ["--depth", "1", "--labelmap", str(tmp_path / "labels.nrrd")]
    summary = run_segment(build_parser().parse_args(["segment", *argv]), lambda *a: None)
    crop = body_crop.body_crop(volume, WINDOW, (2.0, 2.0, 2.0), (32, 32, 32), 0.25)[0]
    assert summary["body_crop"] == list(crop.grid.shape_zyx)
    labels = sitk.ReadImage(str(tmp_path / "labels.nrrd"))
    assert labels.GetSize() == tuple(volume.grid.size_xyz)
    np.testing.assert_allclose(labels.GetDirection(), volume.direction.flatten(), atol=1e-6)
    outside = _outside(volume.shape_zyx, crop.slices)
    assert not sitk.GetArrayFromImage(labels)[outside].any()


def test_the_tile_saving_decision_uses_the_runs_overlap(sphere_predictor):
    # a body of 140 x 80 mm in a 172 x 122 mm field of view, axis-aligned: its box saves tiles
    # at the model's overlap (0.25) but none at --overlap 0, where the crop would only move
    # the labels (the tiles lie elsewhere) for no saving
    volume, _ = _phantom(body_at=(50, 32, 15), body_mm=(70.0, 40.0, 40.0), direction=np.eye(3))
    manifest = sphere_predictor.manifest
    tile = manifest.tile_size_zyx
    whole = canonical_grid(volume, manifest.spacing).shape_zyx
    memo: dict = {}
    at_model = prepare_input(manifest, volume, volume, None, memo=memo)
    assert manifest.overlap == 0.25 and at_model.body_crop
    assert tile_count(at_model.grid.shape_zyx, tile, 0.25) < tile_count(whole, tile, 0.25)
    assert tile_count(at_model.grid.shape_zyx, tile, 0.0) == tile_count(whole, tile, 0.0)
    at_zero = prepare_input(manifest, volume, volume, None, memo=memo, overlap=0.0)
    assert not at_zero.body_crop and at_zero.grid.shape_zyx == whole  # not the kept crop
    assert prepare_input(manifest, volume, volume, None, overlap=0.25).body_crop
    run = sphere_predictor.segment(volume, depth=1, overlap=0.0)  # --overlap reaches it
    assert run.info["body_crop"] is None
