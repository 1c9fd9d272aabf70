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
