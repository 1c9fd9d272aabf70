"""Which click a lung-nodule refusal means, and clicks outside the body whatever their HU
(engine/click_check.py, polish 4 and 5): the synthetic chest of test_click_check.py."""

from __future__ import annotations

import pytest
import SimpleITK as sitk
from test_click_check import AIR, NODULE, chest
from UNetPlusPlusLib.engine.volume import volume_to_sitk


@pytest.fixture()
def chest_file(tmp_path):
    path = tmp_path / "chest.nrrd"
    sitk.WriteImage(volume_to_sitk(chest()), str(path))
    return path


def _ras(point) -> list[str]:
    return [str(-point[0]), str(-point[1]), str(point[2])]


def test_the_refused_click_is_named_among_several_before_the_model_loads(
    chest_file, tmp_path, capsys, monkeypatch
):
    from UNetPlusPlusLib.cli import main
    from UNetPlusPlusLib.warm_cache import WarmCache

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the clicks were checked")

    monkeypatch.setattr(WarmCache, "predictor", refuse)
    out = tmp_path / "two.seg.nrrd"
    argv = ["segment", str(chest_file), "--task", "lung-nodule", "-o", str(out)]
    code = main([*argv, "--point", *_ras(NODULE), "--point", *_ras(AIR)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "Point 2 of 2 (-56, -4, 30) mm RAS lies in the air outside the body" in err[0], err
    assert not out.exists()
    code = main([*argv, "--point", *_ras(AIR)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "The clicked point (-56, -4, 30) mm RAS lies in the air outside" in err[0], err


def _patient_on_a_pad():
    """A chest whose whole outline (141 cm^2) lies inside the image, on a foam pad (-835 HU,
    10 mm) on a table (100 HU): a soft-tissue body (40 HU, LPS y 15-115 mm), two lungs (-850
    HU) with a 5 mm nodule, outside air (-1000 HU) around; 1 x 1 x 2 mm voxels."""
    import numpy as np
    from UNetPlusPlusLib.engine.volume import Volume

    spacing = (1.0, 1.0, 2.0)
    rng = np.random.default_rng(1)
    shape = (16, 160, 220)
    k, y, x = np.indices(shape).astype(float)
    z = k * spacing[2]
    ct = np.full(shape, -1000.0)
    ct[((x - 110) / 90) ** 2 + ((y - 65) / 50) ** 2 <= 1] = 40.0
    for centre in (70.0, 150.0):
        ct[((x - centre) / 30) ** 2 + ((y - 62) / 35) ** 2 <= 1] = -850.0
    ct[(x - 70) ** 2 + (y - 62) ** 2 + (z - 16) ** 2 <= 25] = 40.0
    ct[(y > 115.5) & (y <= 125) & (x > 15) & (x < 205)] = -835.0
    ct[(y > 125) & (y <= 130) & (x > 10) & (x < 210)] = 100.0
    ct = ct + rng.normal(0, 15, shape)
    return Volume(ct[None].astype(np.float32), spacing, (0, 0, 0), np.eye(3), ("CT",))


PAD, LUNG_SPOT = (110.0, 120.0, 16.0), (150.0, 70.0, 16.0)
NODULE_SPOT, SKIN_AIR = (70.0, 62.0, 16.0), (110.0, 8.0, 16.0)


def test_a_click_on_the_table_pad_is_warned_as_outside_the_body():
    from UNetPlusPlusLib.engine.click_check import click_warnings, measure_click
    from UNetPlusPlusLib.engine.registry import find_model
    from UNetPlusPlusLib.errors import UNetPlusPlusError

    volume = _patient_on_a_pad()
    pad = measure_click(volume, PAD)
    assert -880 < pad.median_hu < -790 and pad.verdict == "outside_body", pad
    assert measure_click(volume, LUNG_SPOT).verdict == ""
    assert measure_click(volume, NODULE_SPOT).verdict == ""
    assert measure_click(volume, SKIN_AIR).verdict == "outside_air"
    said, figures = click_warnings(find_model("lung-nodule"), volume, PAD)
    assert len(said) == 1 and said[0].startswith(
        "What lies at the clicked point is outside the body"
    ), said
    assert "table, its pad" in said[0] and figures["verdict"] == "outside_body"
    with pytest.raises(UNetPlusPlusError, match="air outside the body"):
        click_warnings(find_model("lung-nodule"), volume, SKIN_AIR)


TABLE, CHEST_WALL = (110.0, 127.5, 16.0), (110.0, 22.0, 16.0)


def test_a_click_on_the_solid_table_top_is_warned_as_outside_the_body():
    """The table (100 HU, above BODY_HU) lies outside the body's outline: it was judged as
    tissue, here silent (the pad's -835 HU counts as lung around it), on a scan with a thicker
    table the soft-tissue warning ('the spine, a rib, the heart, ...'), anatomy not there."""
    from UNetPlusPlusLib.engine.click_check import BODY_HU, click_warnings, measure_click
    from UNetPlusPlusLib.engine.registry import find_model

    volume = _patient_on_a_pad()
    table = measure_click(volume, TABLE)
    assert table.median_hu > BODY_HU and table.verdict == "outside_body", table
    said, _ = click_warnings(find_model("lung-nodule"), volume, TABLE)
    assert len(said) == 1 and "outside the body's outline" in said[0], said
    assert "the table" in said[0] and "the spine" not in said[0], said
    wall = measure_click(volume, CHEST_WALL)  # solid, inside the outline: anatomy, as before
    assert wall.verdict == "soft_tissue", wall
    said, _ = click_warnings(find_model("lung-nodule"), volume, CHEST_WALL)
    assert len(said) == 1 and "the chest wall" in said[0], said
