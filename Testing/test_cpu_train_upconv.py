"""CPU training up-samples (2x2x2 stride-2 transposed convolutions) as one GEMM
(``cpu_train_upconv``), not PyTorch's ``slow_conv_transpose3d`` (N = 1) or oneDNN's
deconvolution (N >= 2), with the values and gradients of ``F.conv_transpose3d``; anything the
GEMM does not cover (no autograd, plain modules, hooks, autocast, forward AD) keeps the module."""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from test_cpu_train_conv import assert_same_values_and_gradients
from torch.autograd.profiler_legacy import profile  # Kineto's start costs ~2 s of CPU
from UNetPlusPlusLib.engine.conv_dispatch import _conv_transpose3d
from UNetPlusPlusLib.engine.cpu_train_upconv import conv_transpose3d_2x
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D, plain_modules

CL = torch.channels_last_3d


@pytest.mark.parametrize(
    "n, spatial, bias, layout",
    [
        (1, (4, 6, 8), True, CL),  # the training layout
        (2, (3, 5, 2), True, torch.contiguous_format),  # odd sides, NCDHW input
        (1, (5, 3, 7), False, CL),
    ],
)
def test_upsampling_values_and_gradients_equal_conv_transpose3d(n, spatial, bias, layout):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, *spatial, generator=generator).contiguous(memory_format=layout)
    w = torch.randn(6, 5, 2, 2, 2, generator=generator).contiguous(memory_format=layout)
    b = torch.randn(5, generator=generator) if bias else None
    grad = torch.randn(n, 5, *(2 * s for s in spatial), generator=generator)
    inputs = [t.requires_grad_() for t in (x, w, b) if t is not None]
    want = F.conv_transpose3d(x, w, b, stride=2)
    got = conv_transpose3d_2x(x, w, b)
    assert got.shape == want.shape and got.is_contiguous(memory_format=CL)
    assert_same_values_and_gradients(got, want, inputs, grad)


def _grad_fn(up: torch.nn.ConvTranspose3d, x: torch.Tensor) -> str:
    return type(_conv_transpose3d(up, x).grad_fn).__name__


# forward AD's first use scripts a helper inside torch, which warns that TorchScript is deprecated
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_only_plain_float32_cpu_training_takes_the_gemm():
    up = torch.nn.ConvTranspose3d(4, 2, kernel_size=2, stride=2)
    x = torch.randn(1, 4, 2, 2, 2)
    assert _grad_fn(up, x) == "_UpConvBackward"
    assert _grad_fn(up, x.expand(2, -1, -1, -1, -1)) == "_UpConvBackward"  # N = 2 too
    with plain_modules():
        assert _grad_fn(up, x) == "ConvolutionBackward0"
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the module runs bfloat16 there
        assert _conv_transpose3d(up, x).dtype == torch.bfloat16
    with torch.no_grad():
        torch.testing.assert_close(_conv_transpose3d(up, x), up(x))
    with fwAD.dual_level():
        dual = fwAD.make_dual(x, torch.ones_like(x))
        assert type(_conv_transpose3d(up, dual).grad_fn).__name__ == "ConvolutionBackward0"
    seen = []
    handle = up.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    try:
        assert _grad_fn(up, x) == "ConvolutionBackward0" and seen == [(1, 2, 4, 4, 4)]
    finally:
        handle.remove()
    other = torch.nn.ConvTranspose3d(4, 2, kernel_size=2, stride=2, output_padding=1)
    assert _grad_fn(other, x) == "ConvolutionBackward0"
    assert _grad_fn(up.double(), x.double()) == "ConvolutionBackward0"


def test_batch2_training_step_has_no_native_transposed_convolution():
    """(Batch 1: ``test_cpu_train_conv``'s profile.)"""
    torch.manual_seed(0)
    net = UNetPlusPlus3D(1, 2, (2, 2, 2, 2, 2, 2), norm="instance").train()
    x = torch.randn(2, 1, 32, 16, 16)
    with profile() as prof:
        net.forward_heads(x)[-1].sum().backward()
    calls = {event.key: event.count for event in prof.key_averages()}
    ups = sum(1 for m in net.modules() if isinstance(m, torch.nn.ConvTranspose3d))
    assert ups == 10
    assert calls.get("_UpConvBackward") == ups
    assert "aten::conv_transpose3d" not in calls
    assert "aten::slow_conv_transpose3d" not in calls
