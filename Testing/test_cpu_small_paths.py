"""Session 11's CPU-path changes (issue 14, the nodule tile) compute what the modules compute:
the 7-operation norm of small tensors, pairwise max pooling, the NCDHW head GEMM, and the
shipped models end to end at every depth."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from UNetPlusPlusLib.engine import cpu_inference, cpu_norm
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D, plain_modules

pytestmark = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="the fast path needs oneDNN (MKLDNN)"
)


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize("c, spatial", [(128, (1, 3, 3)), (64, (2, 6, 6)), (16, (8, 24, 24))])
def test_small_norm_equals_instance_norm_and_leaky_relu(c, spatial):
    torch.manual_seed(0)
    norm = torch.nn.InstanceNorm3d(c, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
        x = 40.0 + 0.5 * torch.randn(1, c, *spatial)  # mean >> std: E[y^2] - E[y]^2 would fail
        want = F.leaky_relu(norm(x), 0.1)
        y5 = _channels_last(x)
        assert y5.numel() <= cpu_norm._SMALL and c >= cpu_norm._LANES  # the small path
        cpu_norm._norm_act_small_(norm, y5, 0.1)
        torch.testing.assert_close(y5, want, rtol=1e-4, atol=1e-4)
        # and the dispatcher sends such a tensor there (bit-identical to the direct call)
        again = _channels_last(x)
        cpu_norm.norm_act_(norm, again, 0.1, cpu_inference.Workspace())
        assert torch.equal(again, y5)


def test_large_or_narrow_tensors_keep_the_folded_norm():
    torch.manual_seed(1)
    norm = torch.nn.InstanceNorm3d(8, affine=True)
    x = _channels_last(torch.randn(1, 8, 4, 12, 12))  # 8 channels: the folded rows
    with torch.no_grad():
        got, want = x.clone(), x.clone()
        cpu_norm.norm_act_(norm, got, 0.1, cpu_inference.Workspace())
        cpu_norm._norm_act_(norm, want, 0.1, cpu_inference.Workspace())
    assert torch.equal(got, want)


@pytest.mark.parametrize("spatial", [(16, 48, 48), (9, 13, 22), (2, 2, 2)])
def test_pairwise_max_pool_is_bit_identical_to_max_pool3d(spatial):
    torch.manual_seed(2)
    x = _channels_last(torch.randn(2, 8, *spatial))
    x[0, 3, 0, 0, 1] = float("nan")  # NaN propagates as in max_pool3d
    executor = cpu_inference._Executor.__new__(cpu_inference._Executor)
    executor.ws = cpu_inference.Workspace()
    got = executor.max_pool_pairwise(x, 1)
    want = F.max_pool3d(x, 2)
    assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got.nan_to_num(), want.nan_to_num())


def test_head_gemm_writes_ncdhw_logits_equal_to_the_1x1_convolution():
    torch.manual_seed(3)
    net = UNetPlusPlus3D(1, 3, features=(8, 16, 16, 16, 16, 8)).eval()
    x = _channels_last(torch.randn(2, 8, 4, 6, 10))
    executor = cpu_inference._Executor(net, torch.zeros(2, 1, 4, 6, 10), 1, None, 0.1)
    executor.ws = cpu_inference.Workspace()
    with torch.no_grad():
        got = executor.head(1, x)
        want = net.head(1)(x.contiguous())
    assert got.is_contiguous() and got.shape == (2, 3, 4, 6, 10)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def _shipped(task: str):
    from UNetPlusPlusLib.engine.predictor import Predictor

    predictor = Predictor.from_task(task, device="cpu", threads=1)
    tile = tuple(int(n) for n in predictor.manifest.tile_size_zyx)
    return predictor.model, tile


@pytest.mark.parametrize("task", ["lung-nodule", "liver", "brain-tumor"])
def test_shipped_models_on_their_tiles_equal_the_module_path_at_every_depth(task):
    model, tile = _shipped(task)
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(1, model.in_channels, *tile, generator=generator)
    with torch.no_grad():
        with plain_modules():  # the nn modules: torch.cat, nn.Conv3d, no fast path
            want = model.forward_heads(x, depth=4)
        with cpu_inference.reuse_buffers() as workspace:
            got = [model(x, depth=k) for k in range(1, 5)]
    assert workspace.convolutions  # the fast path ran
    for k in range(4):
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-4)
        labels_got, labels_want = got[k].argmax(1), want[k].argmax(1)
        # argmax identical wherever the two best logits are not a float-rounding tie
        top2 = want[k].topk(2, dim=1).values
        clear = (top2[:, 0] - top2[:, 1]) > 1e-4
        assert torch.equal(labels_got[clear], labels_want[clear]), f"{task} L{k + 1}"
        assert clear.float().mean() > 0.999  # ties are rare: the comparison means something


@pytest.mark.parametrize("parts_channels", [(3,), (3, 5)])  # one part, and a skip plus Up
def test_fresh_convolution_equals_zeroing_and_adding(parts_channels, monkeypatch):
    torch.manual_seed(5)
    conv = torch.nn.Conv3d(sum(parts_channels) + 2, 6, 3, padding=1)  # parts from channel 2
    parts = [_channels_last(torch.randn(1, c, 4, 6, 5)) for c in parts_channels]
    out = _channels_last(torch.full((1, 6, 4, 6, 5), float("nan")))  # stale contents
    with torch.no_grad():
        want = F.conv3d(torch.cat(parts, 1), conv.weight[:, 2:], conv.bias, padding=1)
        monkeypatch.setattr(
            cpu_inference, "_FRESH_BYTES", 4 << 20
        )  # the switch on (off by default)
        fresh = cpu_inference._convolve_into(conv, parts, out, cpu_inference.Workspace(), first=2)
        monkeypatch.setattr(cpu_inference, "_FRESH_BYTES", 0)  # as for outputs above the limit
        kept = cpu_inference._convolve_into(conv, parts, out, cpu_inference.Workspace(), first=2)
    assert fresh is not out and kept is out
    assert fresh.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(fresh, kept)  # the same oneDNN kernels: bit-identical
    torch.testing.assert_close(fresh, want, rtol=1e-5, atol=1e-5)
