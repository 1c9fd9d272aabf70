"""A model grid that cannot fit in memory is refused before it is allocated (grid_memory.py):
a header with far too large voxels made `unetpp segment` allocate 22 GB and die by the kernel's
out-of-memory killer, with no message."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import make_sphere_image
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine import grid_memory, system_memory
from UNetPlusPlusLib.engine.volume import Grid, canonical_grid
from UNetPlusPlusLib.errors import UNetPlusPlusError

LPS_OF_RAS = np.diag([-1.0, -1.0, 1.0])  # the example CT's direction


def test_the_example_ct_fits_and_its_50_mm_header_is_refused():
    # example_ct.nii.gz: 122 x 101 x 112 voxels of 3 mm; the liver model: 3 mm, 1 channel, 2 classes
    ct = Grid((122, 101, 112), (3.0, 3.0, 3.0), (178.0, -11.3, 94.3), LPS_OF_RAS)
    memory = 23 * 2**30  # the machine that was hit
    grid_memory.check_model_grid_fits(canonical_grid(ct, (3, 3, 3)), ct, 1, 2, memory)
    wrong = Grid((122, 101, 112), (50.0, 50.0, 50.0), (178.0, -11.3, 94.3), LPS_OF_RAS)
    with pytest.raises(UNetPlusPlusError) as raised:
        grid_memory.check_model_grid_fits(canonical_grid(wrong, (3, 3, 3)), wrong, 1, 2, memory)
    message = str(raised.value)
    assert (
        "the input becomes a 2018 x 1668 x 1851 voxel model grid (from an input grid of 122 x "
        "101 x 112 voxels), which needs at least 116 GiB"
    ) in message
    assert "more than this machine's 23 GiB" in message
    assert "spans 6.05 x 5 x 5.55 m with 50 x 50 x 50 mm voxels" in message
    assert "the spacing in its header is wrong" in message


def test_the_error_names_the_model_grid_the_warning_named(repo_root):
    """The huge-grid warning (tile_count.long_run_warning: the whole input's model grid) and the
    out-of-memory error (the body's box in it, prepare.py) gave two sizes for one input: the
    30 mm demo CT, 1211 x 1001 x 1111 and 1211 x 981 x 1111 voxels. The error now gives the
    warning's model grid, then the box's size in it."""
    from UNetPlusPlusLib.engine.manifest_model import ModelManifest
    from UNetPlusPlusLib.engine.tile_count import long_run_warning

    liver = ModelManifest.load(
        repo_root / "UNetPlusPlus/UNetPlusPlusLib/Resources/Models/liver/model.json"
    )
    wrong = Grid((122, 101, 112), (30.0, 30.0, 30.0), (178.0, -11.3, 94.3), LPS_OF_RAS)
    box = Grid((122, 99, 112), (30.0, 30.0, 30.0), (178.0, -41.3, 94.3), LPS_OF_RAS)
    warning = long_run_warning(wrong, liver)
    assert (
        "a 1211 x 1001 x 1111 voxel model grid (3 x 3 x 3 mm; the input grid is 122 x 101 x "
        in (warning)
    )
    box_grid = canonical_grid(box, (3, 3, 3))
    with pytest.raises(UNetPlusPlusError) as raised:
        grid_memory.check_model_grid_fits(box_grid, box, 1, 2, 2**30, whole_input=wrong)
    message = str(raised.value)
    size = " x ".join(str(n) for n in box_grid.size_xyz)
    assert message.startswith(
        "At the model's spacing (3 x 3 x 3 mm) the input becomes a 1211 x 1001 x 1111 voxel "
        f"model grid (from an input grid of 122 x 101 x 112 voxels); the body's box in it, {size} "
        "voxels, needs at least"
    ), message


def test_unknown_memory_checks_nothing(monkeypatch):
    monkeypatch.setattr(system_memory.os, "sysconf", lambda name: -1)
    assert grid_memory.physical_memory_bytes() is None
    huge = Grid((100_000, 100_000, 100_000), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    grid_memory.check_model_grid_fits(huge, huge, 1, 2)


def test_cli_refuses_before_allocating_and_writes_nothing(
    tmp_path, sphere_model, monkeypatch, capsys
):
    # 30^3 voxels of 8 mm (232 mm) on the sphere model's 2 mm grid: 117^3 voxels, 30.5 MiB or more
    path = tmp_path / "thick.nii.gz"
    image = make_sphere_image((30, 30, 30), spacing=(8.0, 8.0, 8.0), radius_mm=40, noise=5)
    sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(path))
    monkeypatch.setattr(grid_memory, "physical_memory_bytes", lambda: 16 * 2**20)
    out = tmp_path / "out" / "x.seg.nrrd"
    argv = ["segment", str(path), "--model", str(sphere_model), "--quiet", "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: At the model's spacing (2 x 2 x 2 mm) the input becomes ")
    assert "needs at least 30.5 MiB, more than this machine's 16 MiB" in err[-1]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["thick.nii.gz"]


def test_an_input_too_large_to_read_whole_is_refused_from_its_header(tmp_path, monkeypatch):
    """A 2048 x 2048 x 1024 int16 NRRD (0.2 mm, all but empty) was read whole: killed by the
    kernel at 20 GB, after 205 s, with no message. The bound: float32 volume + the voxels as
    stored while they are converted (not for NIfTI, decoded in place) + the uint8 labels."""
    assert grid_memory.input_bytes((2048, 2048, 1024), 1, 2) == 2**32 * 7
    with pytest.raises(UNetPlusPlusError) as raised:
        grid_memory.check_input_fits((2048, 2048, 1024), 1, 2, "big.nhdr", 23 * 2**30)
    message = str(raised.value)
    assert message.startswith("big.nhdr is 2048 x 2048 x 1024 voxels: reading it whole needs")
    assert "at least 28 GiB, more than this machine's 23 GiB" in message and "--roi" in message
    grid_memory.check_input_fits((512, 512, 800), 1, 2, "ct.nrrd", 23 * 2**30)  # 1.37 GiB

    from UNetPlusPlusLib.engine.image_read import read_volume

    image = sitk.Image([40, 30, 20], sitk.sitkInt16)  # 24000 voxels
    for name, per_voxel in (("ct.nrrd", 4 + 2 + 1), ("ct.nii.gz", 4 + 1), ("ct.mha", 7)):
        sitk.WriteImage(image, str(tmp_path / name))
        monkeypatch.setattr(grid_memory, "physical_memory_bytes", lambda n=24000 * per_voxel: n)
        assert read_volume([tmp_path / name]).array.shape == (1, 20, 30, 40)  # just fits
        monkeypatch.setattr(grid_memory, "physical_memory_bytes", lambda n=24000 * per_voxel - 1: n)
        with pytest.raises(UNetPlusPlusError, match=f"{name} is 40 x 30 x 20 voxels"):
            read_volume([tmp_path / name])


def test_cli_refuses_a_huge_input_in_one_line(tmp_path, sphere_model, monkeypatch, capsys):
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(sitk.Cast(make_sphere_image((30, 30, 30), noise=5), sitk.sitkInt16), str(path))
    monkeypatch.setattr(grid_memory, "physical_memory_bytes", lambda: 2**16)
    out = tmp_path / "out" / "x.seg.nrrd"
    argv = ["segment", str(path), "--model", str(sphere_model), "--quiet", "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "30 x 30 x 30 voxels: reading it whole" in err, err
    assert err.count("\n") == 1 and sorted(p.name for p in tmp_path.rglob("*")) == ["ct.nrrd"]


def test_cli_says_only_the_refusal_not_the_header_warnings_before_it(
    tmp_path, sphere_model, monkeypatch, capsys
):
    """100 mm voxels printed four warnings (very thick voxels, field of view, "the run will
    take correspondingly long... cancel") and then refused the run (tester 20)."""
    path = tmp_path / "thick.nii.gz"
    image = make_sphere_image((30, 30, 30), spacing=(12.0, 12.0, 12.0), radius_mm=60, noise=5)
    sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(path))
    monkeypatch.setattr(grid_memory, "physical_memory_bytes", lambda: 16 * 2**20)
    out = tmp_path / "x.seg.nrrd"
    argv = ["segment", str(path), "--model", str(sphere_model), "--quiet", "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: At the model's spacing"), err
    monkeypatch.setattr(grid_memory, "physical_memory_bytes", lambda: 64 * 2**30)
    assert main(argv) == 0  # when it fits, the header warnings are said as before
    assert "very thick voxels" in capsys.readouterr().err
