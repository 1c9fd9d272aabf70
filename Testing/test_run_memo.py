"""A click is measured once per run (``engine/run_memo.py``; issue 14: serial work in the warm
request path): the CLI's refusal before torch and the click's warnings share one measurement,
and nothing is kept between runs."""

from __future__ import annotations

import numpy as np
from test_click_check import NODULE, chest
from UNetPlusPlusLib.engine import click_check, run_memo
from UNetPlusPlusLib.engine.registry import find_model


def test_once_computes_once_per_owner_and_key_inside_a_run_only():
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    first, second = object(), object()
    assert run_memo.once(first, "k", compute) == 1  # outside a run: every call computes
    assert run_memo.once(first, "k", compute) == 2
    with run_memo.measured_once():
        assert run_memo.once(first, "k", compute) == 3
        assert run_memo.once(first, "k", compute) == 3
        assert run_memo.once(first, "other", compute) == 4
        assert run_memo.once(second, "k", compute) == 5
        with run_memo.measured_once():  # a nested run starts empty, and the outer one resumes
            assert run_memo.once(first, "k", compute) == 6
        assert run_memo.once(first, "k", compute) == 3
    assert run_memo.once(first, "k", compute) == 7


def test_the_cli_measures_a_click_once_and_a_changed_volume_again(tmp_path, monkeypatch, capsys):
    import SimpleITK as sitk
    from UNetPlusPlusLib.cli import main
    from UNetPlusPlusLib.engine.volume import volume_to_sitk

    volume = chest()
    measured = []
    real = click_check.measure_click
    monkeypatch.setattr(
        click_check, "measure_click", lambda *a, **k: measured.append(a[1]) or real(*a, **k)
    )
    manifest = find_model("lung-nodule")
    with run_memo.measured_once():  # refusal, then warnings: one measurement
        click = click_check.refuse_outside_air(manifest, volume, NODULE)
        warnings, figures = click_check.click_warnings(manifest, volume, NODULE)
        assert len(measured) == 1 and figures == click_check.asdict(click)
        volume.array = volume.array.copy()  # the same object with new voxels: still the run's
        click_check.click_warnings(manifest, volume, NODULE)
        assert len(measured) == 1
        changed = volume.with_array(np.full_like(volume.array, 40.0))  # another volume
        assert click_check.refuse_outside_air(manifest, changed, NODULE).verdict == "soft_tissue"
        assert len(measured) == 2
    click_check.click_warnings(manifest, volume, NODULE)  # after the run: measured again
    assert len(measured) == 3

    measured.clear()
    sitk.WriteImage(volume_to_sitk(volume), str(tmp_path / "chest.nrrd"))
    argv = [str(tmp_path / "chest.nrrd"), "--task", "lung-nodule", "--lps", "--depth", "1"]
    point = ["--point", *(str(v) for v in NODULE)]
    assert main(["segment", *argv, *point, "-o", str(tmp_path / "n.seg.nrrd")]) == 0
    assert len(measured) == 1  # was 2: before torch, then again for the warnings
    assert (tmp_path / "n.seg.nrrd").is_file()
    capsys.readouterr()
