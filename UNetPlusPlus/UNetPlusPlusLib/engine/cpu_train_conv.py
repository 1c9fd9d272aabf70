"""Training (autograd) of a 3x3x3 convolution of ONE sample on the CPU, through oneDNN.

PyTorch picks a convolution kernel from the input's shape (``select_conv_backend``, tuned for
2D): for N = 1 and N*C*D*H <= 20480 it takes the im2col kernel (``slow_conv3d``) forward AND
backward (``convolution_backward`` decides again from the same shape), while for N >= 2 it takes
oneDNN. On a 2-core AVX2 CPU a training step of the tiny sphere network (features 4..64, a 32^3
tile) cost 1.2-1.4 s of CPU at batch 1 against 0.36-0.54 s at batch 2: at 20 input channels
and 32^3 the native gradient costs 153 ms (input) + 121 ms (weight) against 8 + 33 ms for
oneDNN with two samples (``scripts/measure_batch1_step.py``).

``conv3d_one_sample`` computes the same convolution and the same gradients with oneDNN only:

* forward: ``torch.mkldnn_convolution``;
* input gradient: the transposed convolution of a stride-1, "same"-padded kernel is the forward
  convolution with the flipped kernel, channels swapped (another ``mkldnn_convolution``);
* weight and bias gradients: ``convolution_backward`` on a batch of two halves of the sample,
  split along an even spatial axis with a one-voxel halo (z: the gradient's halves are a view,
  the input's one copy): the same sums over the same products, and N = 2 picks oneDNN. With no
  even axis, the second sample is zeros (exact: it adds zero products).

Results equal the ``nn.Conv3d`` ones within float32 rounding (sums in another order).
Second derivatives (``create_graph=True``) are not supported (``once_differentiable``).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

_CL = torch.channels_last_3d
_ONES = (1, 1, 1)


def conv3d_one_sample(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """3x3x3 convolution, stride 1, padding 1, of ``x`` (1, C_in, D, H, W) float32 on the CPU by
    ``weight`` (C_out, C_in, 3, 3, 3) and ``bias`` (C_out,) or None: (1, C_out, D, H, W),
    differentiable (once) in all three. Callers check the conditions (``conv_dispatch._conv3d``)."""
    return _OneSampleConv.apply(x, weight, bias)


class _OneSampleConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.mkldnn_convolution(x, weight, bias, _ONES, _ONES, _ONES, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad = grad.contiguous(memory_format=_CL)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            flipped = weight.flip(2, 3, 4).transpose(0, 1).contiguous(memory_format=_CL)
            grad_x = torch.mkldnn_convolution(grad, flipped, None, _ONES, _ONES, _ONES, 1)
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            grad_w, grad_b = _weight_grad(x, grad, weight, ctx.has_bias)
        return grad_x, grad_w, grad_b if ctx.needs_input_grad[2] else None


def _weight_grad(x: Tensor, grad: Tensor, weight: Tensor, has_bias: bool):
    """Weight and bias gradients of the padded convolution, from a batch of two halves."""
    if x.shape[2] % 2 == 0:
        xs, gs, padding = _z_halves(x, grad)
    else:
        xs, gs, padding = _any_halves(x, grad)
    _, grad_w, grad_b = torch.ops.aten.convolution_backward(
        gs, xs, weight, [weight.shape[0]] if has_bias else None,
        [1, 1, 1], padding, [1, 1, 1], False, [0, 0, 0], 1, [False, True, has_bias],
    )  # fmt: skip
    return grad_w, grad_b


def _z_halves(x: Tensor, grad: Tensor) -> tuple[Tensor, Tensor, list[int]]:
    """Halves along z (even): the gradient's are a view of its channels-last memory; the input's
    carry one plane of halo from the other half and one of zero padding (the conv's, along z;
    y and x keep the call's padding of 1)."""
    _, c, d, hy, wx = x.shape
    h = d // 2
    gs = grad.permute(0, 2, 3, 4, 1).reshape(2, h, hy, wx, grad.shape[1]).permute(0, 4, 1, 2, 3)
    xs = torch.empty((2, c, h + 2, hy, wx), dtype=x.dtype).contiguous(memory_format=_CL)
    xs[0, :, 0].zero_()
    xs[1, :, h + 1].zero_()
    xs[0, :, 1:].copy_(x[0, :, : h + 1])
    xs[1, :, : h + 1].copy_(x[0, :, h - 1 :])
    return xs, gs, [0, 1, 1]


def _any_halves(x: Tensor, grad: Tensor) -> tuple[Tensor, Tensor, list[int]]:
    """Halves along y or x if one is even, else the sample and a zero one (adds zero products),
    from the explicitly zero-padded input (padding 0 in the call)."""
    padded = F.pad(x, (1, 1, 1, 1, 1, 1))
    axis = next((a for a in (3, 4) if x.shape[a] % 2 == 0), None)
    if axis is None:
        xs = torch.cat([padded, torch.zeros_like(padded)])
        gs = torch.cat([grad, torch.zeros_like(grad)])
    else:  # output half k reads input planes [k*h, k*h + h + 2) of the padded input
        h = x.shape[axis] // 2
        xs = torch.cat([padded.narrow(axis, 0, h + 2), padded.narrow(axis, h, h + 2)])
        gs = torch.cat([grad.narrow(axis, 0, h), grad.narrow(axis, h, h)])
    return xs.contiguous(memory_format=_CL), gs.contiguous(memory_format=_CL), [0, 0, 0]
