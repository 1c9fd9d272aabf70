"""A header that makes the image larger than any scan (tester 14): the CT checks that work on a
4 mm grid of the whole image (front-back orientation before inference, liver anatomy after it)
skip such an image instead of allocating that grid. A 30 mm spacing in the demo CT's header
(3.7 x 3 x 3.4 m) made the orientation check allocate 18.8 GB, before the model-grid memory
check could refuse the run, and the kernel killed `unetpp segment` with no message."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.anatomy_check import MAX_CELLS, STEP_MM, check_model_result, too_large
from UNetPlusPlusLib.engine.orientation_check import measure_ap
from UNetPlusPlusLib.engine.registry import find_model
from UNetPlusPlusLib.engine.volume import Grid, Volume, canonical_grid

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CT = ROOT / "Resources" / "Examples" / "example_ct.nii.gz"
LPS_OF_RAS = np.diag([-1.0, -1.0, 1.0])


def _huge_ct() -> Volume:
    """A 12^3 CT-like volume (air around a 0 HU body with 700 HU bone) whose header spans
    1.2 x 1.2 x 2.64 m: just beyond any scan, a coarse grid of 50 million cells."""
    ct = np.full((12, 12, 12), -1000.0, np.float32)
    ct[:, 3:9, 3:9] = 0.0
    ct[:, 6:8, 5:7] = 700.0
    return Volume(ct[None], (100.0, 100.0, 220.0), (0.0, 0.0, 0.0), np.eye(3), ("CT",))


def _peak_mib(function, *args) -> float:
    tracemalloc.start()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_the_cap_covers_every_image_no_header_warning_is_about():
    # 0.9 x 0.9 x 2.5 m (the header warnings' limits), axial or reversed: still checked
    for direction in (np.eye(3), LPS_OF_RAS):
        grid = Grid((300, 300, 1000), (3.0, 3.0, 2.5), (0.0, 0.0, 0.0), direction)
        assert not too_large(canonical_grid(grid, (STEP_MM,) * 3))
    example = Grid((122, 101, 112), (3.0, 3.0, 3.0), (178.0, -11.3, 94.3), LPS_OF_RAS)
    assert not too_large(canonical_grid(example, (STEP_MM,) * 3))
    huge = canonical_grid(_huge_ct().grid, (STEP_MM,) * 3)
    assert np.prod(huge.size_xyz) > MAX_CELLS and too_large(huge)


def test_orientation_of_an_image_larger_than_any_scan_allocates_no_coarse_grid():
    volume = _huge_ct()
    peak = _peak_mib(measure_ap, volume)
    assert peak < 20, f"measure_ap allocated {peak:.0f} MiB on a {volume.grid.size_xyz} image"
    assert measure_ap(volume).offset is None and not measure_ap(volume).flipped


def test_anatomy_of_a_result_larger_than_any_scan_is_not_checked():
    volume = _huge_ct()
    labels = np.zeros(volume.grid.shape_zyx, np.uint8)
    labels[:, 4:8, 2:5] = 1
    manifest = find_model("liver")
    peak = _peak_mib(check_model_result, manifest, volume, labels, volume.grid)
    assert peak < 20, f"the anatomy check allocated {peak:.0f} MiB"
    assert check_model_result(manifest, volume, labels, volume.grid) == ([], None)


def test_cli_with_an_80_mm_header_is_refused_by_the_memory_check(tmp_path, capsys):
    # the demo CT with 80 mm voxels (9.8 x 8.1 x 9 m): before, the orientation check asked for
    # a 44 GB grid first (an internal error here; at 30 mm the kernel killed the run)
    image = sitk.ReadImage(str(EXAMPLE_CT))
    image.SetSpacing((80.0, 80.0, 80.0))
    path = tmp_path / "ct 80mm.nrrd"
    sitk.WriteImage(image, str(path))
    out = tmp_path / "out" / "liver.seg.nrrd"
    assert main(["segment", str(path), "--task", "liver", "--quiet", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # one line: the refusal, which names the image's size in metres and the header's spacing
    # (the header warnings a run would print are not said before a refusal)
    assert len(err) == 1, err
    assert err[-1].startswith("error: At the model's spacing (3 x 3 x 3 mm) the input becomes ")
    assert "80 x 80 x 80 mm voxels" in err[-1]
    assert "the spacing in its header is wrong" in err[-1]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ct 80mm.nrrd"]
