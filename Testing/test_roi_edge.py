"""A region of interest that cuts the structure it holds is warned (engine/roi_edge.py).

Tester 15: the demo CT with ``--roi -400 -400 -400 400 400 400`` (RAS) cut off the liver dome
above z = 400 mm and returned 552 ml instead of 1033 ml (Dice 0.50 against its reference) in
silence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.roi_edge import face_side, roi_edge_warning
from UNetPlusPlusLib.engine.volume import Box, Grid

DEMO_CT = Path(__file__).resolve().parents[1] / "Resources/Examples/example_ct.nii.gz"
CUT = "reaches the edge of the region of interest on its superior side"


def test_the_sides_follow_the_direction_matrix():
    identity = Grid((10, 10, 10), (1, 1, 1), (0, 0, 0))
    assert [face_side(identity, f) for f in ("i+", "i-", "j+", "j-", "k+", "k-")] == [
        "left", "right", "posterior", "anterior", "superior", "inferior",
    ]  # fmt: skip
    ras = Grid((10, 10, 10), (1, 1, 1), (0, 0, 0), np.diag([-1.0, -1.0, 1.0]))  # BraTS-like
    assert face_side(ras, "i+") == "right" and face_side(ras, "j-") == "posterior"
    # a sagittal acquisition: index i runs head-foot, j front-back, k left-right
    sagittal = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    grid = Grid((10, 10, 10), (1, 1, 1), (0, 0, 0), sagittal)
    assert face_side(grid, "i+") == "inferior" and face_side(grid, "k+") == "left"


def test_a_box_inside_the_structure_warns_and_one_around_it_does_not():
    grid = Grid((40, 40, 40), (1, 1, 1), (0, 0, 0))
    labels = np.zeros((40, 40, 40), np.uint8)
    labels[10:20, 12:30, 12:30] = 1  # z 10..19
    inner = Box((5, 5, 5), (35, 35, 15))  # ends at z = 15, inside the structure
    cut = labels.copy()
    cut[16:] = 0  # what the engine keeps inside the box
    warning = roi_edge_warning(cut, grid, inner)
    assert warning is not None and CUT in warning
    assert roi_edge_warning(labels, grid, Box((5, 5, 5), (35, 35, 35))) is None
    assert roi_edge_warning(labels, grid, Box((-5, -5, -5), (50, 50, 19))) is not None
    assert roi_edge_warning(np.zeros_like(labels), grid, inner) is None
    grazing = labels.copy()
    grazing[20:36, 20, 20] = 1  # a one-voxel vessel to the box's top: not a cut
    assert roi_edge_warning(grazing, grid, Box((5, 5, 5), (35, 35, 35))) is None


def test_cli_warns_when_the_roi_cuts_the_liver(tmp_path, capsys):
    argv = ["segment", str(DEMO_CT), "--task", "liver", "--depth", "1", "--quiet", "--roi"]
    cut = tmp_path / "cut.seg.nrrd"
    assert main([*argv, "-400", "-400", "-400", "400", "400", "400", "-o", str(cut)]) == 0
    err = capsys.readouterr().err
    assert CUT in err and cut.is_file()
    whole = tmp_path / "whole.seg.nrrd"
    assert main([*argv, "-1000", "-1000", "-1000", "1000", "1000", "1000", "-o", str(whole)]) == 0
    assert "region of interest" not in capsys.readouterr().err
