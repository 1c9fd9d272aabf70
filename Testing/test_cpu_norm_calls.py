"""Session 14's norm of narrow nodes (issue 14): the instance norm of an 8-channel node (row 0 of
the shipped models) runs in half the PyTorch calls it took, and the fast path still computes
what the modules compute on real images (the demo CT, a LIDC nodule), to float32 rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch.overrides import TorchFunctionMode
from UNetPlusPlusLib.engine import cpu_inference, cpu_norm
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.network import plain_modules
from UNetPlusPlusLib.engine.normalize import normalize
from UNetPlusPlusLib.engine.predictor import Predictor

pytestmark = [
    pytest.mark.skipif(
        not torch.backends.mkldnn.is_available(), reason="the fast path needs oneDNN (MKLDNN)"
    ),
    pytest.mark.usefixtures("one_torch_thread"),  # conftest.py
]
REPO = Path(__file__).resolve().parents[1]
NODULE_CASE = "LIDC-IDRI-0004_R_1"


class _Calls(TorchFunctionMode):
    """Records every call from Python into PyTorch on tensors (operations, views, ``.shape``):
    each one pays the dispatch overhead. (A ``TorchDispatchMode`` would import ~800 modules.)"""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("c", [4, 8])
def test_narrow_instance_norm_runs_in_few_pytorch_calls(c):
    # each call costs 2-6 us of dispatch on top of its work; the norm of an 8-channel node made
    # 49 of them (35 ATen operations, 44 % of the nodule tile's per-operation overhead,
    # session 13), now 29 (18 operations)
    norm = torch.nn.InstanceNorm3d(c, affine=True)
    y5 = torch.randn(1, c, 4, 16, 16).contiguous(memory_format=torch.channels_last_3d)
    workspace = cpu_inference.Workspace()
    with torch.inference_mode():
        cpu_norm.norm_act_(norm, y5, 0.01, workspace)  # the scratch buffer and index, once
        with _Calls() as calls:
            cpu_norm.norm_act_(norm, y5, 0.01, workspace)
    assert len(calls.names) <= 30, calls.names
    assert sum("mse_loss" in name for name in calls.names) == 1  # still two passes: exact


def _logits_agree(got: torch.Tensor, want: torch.Tensor) -> None:
    """Float32 rounding apart (relative to the largest logit), and the same labels."""
    scale = float(want.abs().max())
    assert float((got - want).abs().max()) <= 1e-5 * max(scale, 1.0)
    assert torch.equal(got.argmax(1), want.argmax(1))


def test_liver_model_on_the_demo_ct_equals_the_module_path():
    predictor = Predictor.from_task("liver", device="cpu", threads=1, executor="ours")
    volume = read_volume([REPO / "Resources" / "Examples" / "example_ct.nii.gz"])
    image = normalize(volume, predictor.manifest.channels).array  # 3 mm: the model's grid
    liver = sitk.ReadImage(str(REPO / "Testing" / "fixtures" / "example_ct_liver.nii.gz"))
    centre = np.argwhere(sitk.GetArrayFromImage(liver) > 0).mean(axis=0).astype(int)
    side = 32  # a 32^3 tile around the liver's centre: liver, its border and other organs
    start = [min(max(0, c - side // 2), n - side) for c, n in zip(centre, image.shape[1:])]
    tile = image[:, start[0] : start[0] + side, start[1] : start[1] + side]
    tile = torch.from_numpy(np.ascontiguousarray(tile[:, :, :, start[2] : start[2] + side]))[None]
    depth = predictor.manifest.recommended_depth
    with torch.no_grad():
        with cpu_inference.reuse_buffers() as workspace:
            got = predictor.model(tile, depth=depth)
        with plain_modules():
            want = predictor.model(tile, depth=depth)
    assert workspace.convolutions  # the fast path ran
    assert 0.05 < float((want.argmax(1) == 1).float().mean()) < 0.95  # liver and background
    _logits_agree(got, want)


def test_nodule_click_on_a_lidc_case_equals_the_module_path(shared_data):
    path = shared_data / "lung-nodule" / "lidc-vois" / "image" / f"{NODULE_CASE}.nii.gz"
    image = sitk.ReadImage(str(path))
    centre = image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2.0 for s in image.GetSize()])
    predictor = Predictor.from_task("lung-nodule", device="cpu", threads=1, executor="ours")
    volume = read_volume([path])
    got = predictor.segment(volume, point=tuple(centre), return_probabilities=True)
    with plain_modules():
        want = predictor.segment(volume, point=tuple(centre), return_probabilities=True)
    assert (want.labels.array == 1).sum() > 100  # the nodule was found
    assert np.array_equal(got.labels.array, want.labels.array)
    difference = np.abs(got.probabilities.array - want.probabilities.array).max()
    assert difference <= 1e-5  # probabilities in [0, 1]: float32 rounding
