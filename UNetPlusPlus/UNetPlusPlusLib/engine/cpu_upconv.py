"""Up-convolution folding for the CPU path: Up (2x2x2 transposed convolution, stride 2) and the
3x3x3 convolution of its channels as one 4x4x4 transposed convolution, plus the corrections on
the one-voxel shell where zero padding hides part of the upsampling bias (``cpu_inference``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Transposed convolution (kernel 2, stride 2) followed by a 3x3x3 convolution (padding 1) is one
# transposed convolution (kernel 4, stride 2, padding 1): along an axis, fine output 2m + r reads
# coarse inputs m - 1, m (r = 0) or m, m + 1 (r = 1). _TAPS[k] lists, for kernel index k, the
# pairs (3x3x3 tap index, 2x2x2 sub-position) that meet there.
_TAPS = {0: ((2, 0),), 1: ((1, 0), (2, 1)), 2: ((0, 0), (1, 1)), 3: ((0, 1),)}


def _tap_matrix() -> Tensor:
    """(4, 3, 2) float64: 1 where kernel index k combines 3x3x3 tap t with sub-position a."""
    taps = torch.zeros(4, 3, 2, dtype=torch.float64)
    for k, pairs in _TAPS.items():
        for t, a in pairs:
            taps[k, t, a] = 1.0
    return taps


def compose_up_conv(up: nn.ConvTranspose3d, conv: nn.Conv3d, first: int) -> tuple[Tensor, ...]:
    """Fold ``up`` into input channels ``first:first + up.out_channels`` of ``conv``.

    Returns the transposed-convolution kernel (C_below, C_out, 4, 4, 4) and bias (``conv``'s
    own plus the upsampling bias seen through the interior of the 3x3x3 kernel), and the
    corrections (C_out, 3, 3, 3) to add on the one-voxel shell of the output, where zero
    padding hides part of that bias: index 0 / 1 / 2 along an axis is the low face / interior /
    high face. Computed in float64, so the result equals the two layers up to float32 rounding.
    """
    w_up = up.weight.detach().double()  # (C_below, C_up, 2, 2, 2)
    w_conv = conv.weight.detach().double()[:, first : first + up.out_channels]  # (O, C_up, 3..)
    taps = _tap_matrix()
    kernel = torch.einsum("iuabc,ouxyz->ioxyzabc", w_up, w_conv)
    kernel = torch.einsum("ioxyzabc,kxa->iokyzbc", kernel, taps)
    kernel = torch.einsum("iokyzbc,lyb->ioklzc", kernel, taps)
    kernel = torch.einsum("ioklzc,mzc->ioklm", kernel, taps)
    bias_field = up.bias.detach().double().view(1, -1, 1, 1, 1).expand(1, -1, 3, 3, 3)
    seen = F.conv3d(bias_field, w_conv, padding=1)[0]  # (O, 3, 3, 3): the bias behind the kernel
    interior = seen[:, 1, 1, 1]
    bias = interior if conv.bias is None else interior + conv.bias.detach().double()
    corrections = seen - interior.view(-1, 1, 1, 1)
    return kernel.float().contiguous(), bias.float(), corrections.float()


def _shell_patterns(corrections: Tensor, spatial: Sequence[int]) -> tuple[Tensor, ...]:
    """The corrections laid out on the faces of a (Z, Y, X) grid: both z planes (C, Y, X), both
    y rows of the inner planes (C, 1, X) and both x columns of the inner rows (C, 1, 1)."""
    classes = []
    for n in spatial[1:]:
        index = torch.ones(n, dtype=torch.long)
        index[0], index[-1] = 0, 2
        classes.append(index)
    by_y, by_x = classes
    z_planes = [corrections[:, c][:, by_y][:, :, by_x] for c in (0, 2)]
    y_rows = [corrections[:, 1, c][:, by_x].unsqueeze(1) for c in (0, 2)]
    x_columns = [corrections[:, 1, 1, c].view(-1, 1, 1) for c in (0, 2)]
    return (*z_planes, *y_rows, *x_columns)


def _add_shell_corrections(y: Tensor, patterns: Sequence[Tensor]) -> None:
    """Add the face patterns of ``_shell_patterns`` to ``y`` (N, C, Z, Y, X): six operations,
    each over one face, which together cover the one-voxel shell exactly once."""
    z_low, z_high, y_low, y_high, x_low, x_high = patterns
    y[:, :, 0] += z_low
    y[:, :, -1] += z_high
    inner = y[:, :, 1:-1]
    inner[:, :, :, 0] += y_low
    inner[:, :, :, -1] += y_high
    core = inner[:, :, :, 1:-1]
    core[..., 0] += x_low
    core[..., -1] += x_high
