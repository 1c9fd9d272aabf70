"""Batch-1 training on the CPU convolves through oneDNN (``cpu_train_conv``), not PyTorch's
im2col kernel (``slow_conv3d``, 2-3x the CPU of a whole batch-2 step), with the same gradients
and the same parameters after training steps as the plain ``nn`` modules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd.profiler_legacy import profile  # Kineto's start costs ~2 s of CPU
from UNetPlusPlusLib.engine.conv_dispatch import _conv3d
from UNetPlusPlusLib.engine.cpu_train_conv import conv3d_one_sample
from UNetPlusPlusLib.engine.loss import HybridLoss
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D, plain_modules
from UNetPlusPlusLib.training.optimizer import AdamW
from UNetPlusPlusLib.training.steps import DeepSupervision, channels_last, training_step

pytestmark = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="the oneDNN path needs oneDNN (MKLDNN)"
)


@pytest.mark.parametrize(
    "spatial, bias, layout",
    [
        ((6, 8, 10), True, torch.channels_last_3d),  # even: halves along z
        ((5, 7, 6), True, torch.contiguous_format),  # only x even: halves along x
        ((5, 7, 9), False, torch.channels_last_3d),  # no even side: a zero second sample
    ],
)
def test_one_sample_conv_gradients_equal_conv3d(spatial, bias, layout):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, *spatial, generator=generator).contiguous(memory_format=layout)
    w = torch.randn(4, 3, 3, 3, 3, generator=generator).contiguous(memory_format=layout)
    b = torch.randn(4, generator=generator) if bias else None
    grad = torch.randn(1, 4, *spatial, generator=generator)
    inputs = [t.requires_grad_() for t in (x, w, b) if t is not None]
    want = F.conv3d(x, w, b, padding=1)
    got = conv3d_one_sample(x, w, b)
    assert_same_values_and_gradients(got, want, inputs, grad)


def assert_same_values_and_gradients(got, want, inputs, grad) -> None:
    """``got`` equals ``want`` and so do their gradients with respect to ``inputs`` for the
    output gradient ``grad`` (float32 tolerances)."""
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    expected = torch.autograd.grad(want, inputs, grad)
    found = torch.autograd.grad(got, inputs, grad)
    for g, e in zip(found, expected):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-4)


def test_batch1_training_conv_avoids_the_im2col_kernel():
    torch.manual_seed(0)
    net = UNetPlusPlus3D(1, 2, (2, 2, 2, 2, 2, 2), norm="instance").train()
    x = torch.randn(1, 1, 32, 16, 16)
    conv = net.conv_0_0.conv_0.conv
    assert type(_conv3d(conv, x).grad_fn).__name__ == "_OneSampleConvBackward"
    with plain_modules():  # the reference path keeps nn.Conv3d
        assert type(_conv3d(conv, x).grad_fn).__name__ == "ConvolutionBackward0"
    assert type(_conv3d(conv, x.expand(2, -1, -1, -1, -1)).grad_fn).__name__ == (
        "ConvolutionBackward0"  # N >= 2: PyTorch picks oneDNN itself
    )
    with profile() as prof:
        net.forward_heads(x)[-1].sum().backward()
    calls = {event.key: event.count for event in prof.key_averages()}
    three = sum(1 for m in net.modules() if getattr(m, "kernel_size", None) == (3, 3, 3))
    assert three == 30
    # forward and input gradient, both convolutions (the image itself needs no gradient)
    assert calls.get("aten::mkldnn_convolution") == 2 * three - 1
    assert calls.get("_OneSampleConvBackward") == three
    # im2col only for the four 1x1x1 heads (a plain GEMM)
    assert calls.get("aten::slow_conv3d_forward") == 4
    # up-sampling: a GEMM too (cpu_train_upconv), not slow_conv_transpose3d
    assert calls.get("_UpConvBackward") == 10
    assert "aten::slow_conv_transpose3d" not in calls


def _train(steps: int, plain: bool, norm: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    torch.manual_seed(0)
    network = UNetPlusPlus3D(1, 2, (2, 4, 4, 4, 4, 2), norm=norm)
    channels_last(network)
    model = DeepSupervision(network).train()
    optimizer = AdamW(network.parameters(), lr=3e-4, weight_decay=3e-5)
    parameters = list(network.parameters())
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(1, 1, 32, 16, 16, generator=generator)
    images = images.contiguous(memory_format=torch.channels_last_3d)
    labels = (images[:, 0] > 0.3).long()
    for _ in range(steps):
        if plain:
            with plain_modules():
                training_step(model, parameters, optimizer, HybridLoss(), images, labels, None)
        else:
            training_step(model, parameters, optimizer, HybridLoss(), images, labels, None)
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in parameters]
    return [p.detach().clone() for p in parameters], grads


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_batch1_training_steps_equal_the_plain_modules(norm):
    (reference, ref_grads), (fast, fast_grads) = _train(2, True, norm), _train(2, False, norm)
    assert len(reference) == len(fast) == len(ref_grads) == len(fast_grads)
    # the second step's gradients; a conv bias before a norm has a zero gradient in exact
    # arithmetic (float noise ~1e-9 in both paths), hence a tolerance on the whole scale
    scale = max(float(g.abs().max()) for g in ref_grads)
    for r, f in zip(ref_grads, fast_grads):
        torch.testing.assert_close(f, r, rtol=1e-4, atol=1e-5 * scale)
    if norm == "none":  # AdamW turns those noise gradients into +-lr steps: compare without
        for r, f in zip(reference, fast):
            torch.testing.assert_close(f, r, rtol=1e-5, atol=1e-6)
    start, _ = _train(0, True, norm)
    assert any(not torch.equal(r, s) for r, s in zip(reference, start))  # the steps moved them


def test_gradients_come_back_in_the_layout_of_their_weights():
    """DDP compares each raw gradient with its weight's layout: the first convolution of a
    one-channel (CT) model, (f0, 1, 3, 3, 3), stayed contiguous under channels_last (a size-1
    channel dimension is already "channels-last"), its gradient came back channels-last, and
    every torchrun training printed "UserWarning: Grad strides do not match bucket view
    strides ... may impair performance" once per rank (tester fresh30)."""
    torch.manual_seed(0)
    network = UNetPlusPlus3D(1, 2, (2, 4, 4, 4, 4, 2), norm="instance")
    channels_last(network)
    raw = {}
    for name, parameter in network.named_parameters():
        parameter.register_hook(lambda grad, name=name: raw.__setitem__(name, grad.stride()))
    model = DeepSupervision(network).train()
    optimizer = AdamW(network.parameters(), lr=3e-4, weight_decay=3e-5)
    # as the trainer moves a batch: .to() gives a one-channel batch channels-last strides, where
    # .contiguous() keeps it as it is (a size-1 channel is contiguous in both layouts)
    images = torch.randn(2, 1, 32, 16, 16).to(memory_format=torch.channels_last_3d)
    labels = (images[:, 0] > 0.3).long()
    training_step(model, list(network.parameters()), optimizer, HybridLoss(), images, labels, None)
    first = next(network.parameters())
    assert first.shape[1] == 1 and first.shape[2:] == (3, 3, 3)
    mismatched = {
        name: (tuple(parameter.stride()), raw[name])
        for name, parameter in network.named_parameters()
        if name in raw and tuple(parameter.stride()) != tuple(raw[name])
    }
    assert not mismatched, mismatched
