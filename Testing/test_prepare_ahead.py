"""The network input prepared ahead, without torch (engine/prepare_array.py), while a fresh
`unetpp segment` still imports torch on its background thread (torch_preload.py): the run then
uses that very input, not a second one, and gives the same labels.

The phantom is test_body_crop's: an oblique, anisotropic CT whose body fills part of the field
of view, so the prepared input is the body crop's (the liver model's case).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch
from test_body_crop import _phantom
from UNetPlusPlusLib import cli_segment, torch_preload
from UNetPlusPlusLib.cli import build_parser
from UNetPlusPlusLib.engine import prepare, prepare_array
from UNetPlusPlusLib.engine.volume import array_to_sitk
from UNetPlusPlusLib.warm_cache import WarmCache


def _counting(monkeypatch) -> list:
    """Every prepare_array call made by ``prepare.prepare_input`` (the run's own)."""
    calls: list = []
    real = prepare_array.prepare_array

    def counted(*args, **kwargs):
        calls.append(args[3])  # slices
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare, "prepare_array", counted)
    return calls


def test_the_input_prepared_ahead_is_the_one_the_run_uses(sphere_predictor, monkeypatch):
    volume, _ = _phantom()
    manifest = sphere_predictor.manifest
    memo: dict = {}
    ahead = prepare_array.prepare_ahead(manifest, volume, memo)
    assert isinstance(ahead.image, np.ndarray) and ahead.image.dtype == np.float32
    assert ahead.body_crop and ahead.image.flags.c_contiguous
    assert prepare_array.prepare_ahead(manifest, volume, memo) is ahead  # kept, not redone
    calls = _counting(monkeypatch)
    result = sphere_predictor.segment(volume, depth=1, memo=memo)
    assert calls == []  # the run found it in the memo
    used = memo["prepared"][1].image
    assert isinstance(used, torch.Tensor) and np.shares_memory(used.numpy(), ahead.image)
    plain = sphere_predictor.segment(volume, depth=1)  # no memo: prepared by the run itself
    assert calls == [None]
    np.testing.assert_array_equal(result.labels.array, plain.labels.array)
    assert result.labels.array.any() and result.info["body_crop"] == plain.info["body_crop"]
    sphere_predictor.segment(volume, depth=1, memo=memo, overlap=0.0)  # another input
    assert calls == [None, None]


def _run(tmp_path, sphere_model, monkeypatch, preloading: bool) -> list:
    """``run_segment`` as `unetpp segment` runs it, with the background import said to be
    started or not; the order of the ahead preparation, the model load and the run's own."""
    volume, _ = _phantom()
    ct = tmp_path / "ct.nrrd"
    sitk.WriteImage(array_to_sitk(volume.array[0], volume.grid), str(ct))
    order: list = []
    real_ahead, real_predictor = prepare_array.prepare_ahead, WarmCache.predictor

    def ahead(*args, **kwargs):
        order.append("ahead")
        return real_ahead(*args, **kwargs)

    def predictor(self, *args, **kwargs):
        order.append("model")
        return real_predictor(self, *args, **kwargs)

    monkeypatch.setattr(prepare_array, "prepare_ahead", ahead)
    monkeypatch.setattr(WarmCache, "predictor", predictor)
    monkeypatch.setattr(torch_preload, "started", lambda: preloading)
    calls = _counting(monkeypatch)
    argv = [str(ct), "--model", str(sphere_model), "--device", "cpu", "--threads", "1"]
    argv += ["--depth", "1", "-o", str(tmp_path / f"{preloading}.seg.nrrd")]
    cli_segment.run_segment(build_parser().parse_args(["segment", *argv]), lambda *a: None)
    return order + ["run prepared"] * len(calls)


def test_the_cli_prepares_ahead_only_beside_the_background_import(
    tmp_path, sphere_model, monkeypatch
):
    """With the background import started (a fresh `unetpp segment` or `unetpp serve`), the
    input is prepared before the model loads and the run does not prepare it again; in-process
    callers (the Slicer module's in-process runs, tests) leave it to the run."""
    assert _run(tmp_path, sphere_model, monkeypatch, True) == ["ahead", "model"]
    assert _run(tmp_path, sphere_model, monkeypatch, False) == ["model", "run prepared"]
