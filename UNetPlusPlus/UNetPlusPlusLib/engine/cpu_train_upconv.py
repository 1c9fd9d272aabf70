"""Training (autograd) of the decoder's up-sampling, a 2x2x2 stride-2 transposed convolution,
on the CPU as one matrix product.

Each input voxel of such a convolution writes its own 2x2x2 block of the output, so it is a 1x1x1
convolution to 8 * C_out channels (a GEMM over the voxels, ``addmm``) followed by a
depth-to-space rearrangement (one copy into a channels-last output):

    out[n, co, 2z + a, 2y + b, 2x + c] = bias[co] + sum_ci x[n, ci, z, y, x] * w[ci, co, a, b, c]

The backward pass is the same GEMM transposed: the gradient rearranged back (one copy), times the
weight for the input gradient, the input for the weight gradient, summed for the bias.

PyTorch itself takes ``slow_conv_transpose3d`` for N = 1 (select_conv_backend's heuristic, as
for the 3x3x3 convolutions in ``cpu_train_conv``) and oneDNN's deconvolution for N >= 2. Summed
over a step's ten up-samplings, forward and backward, this form cost 2.5-3x less CPU than
``slow_conv_transpose3d`` at N = 1 and 1.1-1.7x less than oneDNN at N = 2 on the shipped
network's shapes (docs/TRAINING_CPU.md). Results equal ``F.conv_transpose3d`` within float32
rounding (the same sums, in another order). Second derivatives are not supported
(``once_differentiable``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def conv_transpose3d_2x(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """Transposed convolution, kernel 2, stride 2, no padding, of ``x`` (N, C_in, D, H, W) by
    ``weight`` (C_in, C_out, 2, 2, 2) and ``bias`` (C_out,) or None: (N, C_out, 2D, 2H, 2W),
    channels-last, differentiable (once) in all three. Callers check the conditions
    (``conv_dispatch._conv_transpose3d``)."""
    return _UpConv.apply(x, weight, bias)


def _voxels_by_channels(t: Tensor) -> Tensor:
    """(N, C, D, H, W) as a (N*D*H*W, C) matrix: a view when ``t`` is channels-last."""
    return t.permute(0, 2, 3, 4, 1).reshape(-1, t.shape[1])


class _UpConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:  # type: ignore[override]
        n, c_in, d, h, w = x.shape
        c_out = weight.shape[1]
        voxels = _voxels_by_channels(x)
        # columns ordered (a, b, c, co): each voxel's 2x2x2 block, channels innermost
        matrix = weight.permute(0, 2, 3, 4, 1).reshape(c_in, 8 * c_out)
        if bias is None:
            blocks = voxels @ matrix
        else:
            blocks = torch.addmm(bias.repeat(8), voxels, matrix)
        out = torch.empty((n, 2 * d, 2 * h, 2 * w, c_out), dtype=x.dtype)
        out.view(n, d, 2, h, 2, w, 2, c_out).copy_(
            blocks.view(n, d, h, w, 2, 2, 2, c_out).permute(0, 1, 4, 2, 5, 3, 6, 7)
        )
        ctx.save_for_backward(voxels, matrix)
        ctx.shape = (n, c_in, d, h, w, c_out)
        ctx.has_bias = bias is not None
        return out.permute(0, 4, 1, 2, 3)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        voxels, matrix = ctx.saved_tensors
        n, c_in, d, h, w, c_out = ctx.shape
        spaced = grad.permute(0, 2, 3, 4, 1).reshape(n, d, 2, h, 2, w, 2, c_out)
        blocks = spaced.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, 8 * c_out)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = (blocks @ matrix.t()).view(n, d, h, w, c_in).permute(0, 4, 1, 2, 3)
        if ctx.needs_input_grad[1]:
            grad_w = (voxels.t() @ blocks).view(c_in, 2, 2, 2, c_out).permute(0, 4, 1, 2, 3)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = blocks.sum(0).view(8, c_out).sum(0)
        return grad_x, grad_w, grad_b
