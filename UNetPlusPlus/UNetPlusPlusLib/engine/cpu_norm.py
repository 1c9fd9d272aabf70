"""Instance / batch norm and LeakyReLU in place on channels-last activations, for
``cpu_inference`` (float32 CPU inference; same results as ``nn.InstanceNorm3d`` or an eval
``nn.BatchNorm3d`` followed by ``F.leaky_relu``, to float rounding).

Two paths. Large tensors take five whole-tensor passes, the elementwise ones over folded rows
(:func:`_norm_act_`, session 10), in 18 PyTorch calls for a batch-statistics instance norm
(:func:`_instance_affine`, session 14; ~35 before, each 2-6 us of dispatch). Small ones (at
most ``_SMALL`` values, the deep nodes of a tile, where PyTorch runs every operation on one
thread anyway) are bound by their operations' count, not by memory: :func:`_norm_act_small_`
does the same two-pass statistics in 11 calls, about half the time of the session-10 path from
1,152 to 18,432 values (session 11).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LANES = 16  # narrower rows or conv outputs cost nearly as much (measured on AVX2; AVX-512's width)
_SMALL = 1 << 17  # values: up to this size the norm takes _norm_act_small_ (rows 1-4 of a tile)


def norm_act_(norm: nn.Module, y5: Tensor, slope: float, ws) -> None:
    """Normalise channels-last ``y5`` (N, C, z, y, x) in place, then LeakyReLU(``slope``).

    ``norm``: ``nn.InstanceNorm3d`` (batch statistics per sample and channel), an eval
    ``nn.BatchNorm3d`` / tracking instance norm (running statistics), or anything else (no
    norm). ``ws``: the ``cpu_inference.Workspace`` lending the large path's scratch buffer.
    """
    small = y5.numel() <= _SMALL and y5.shape[1] >= _LANES
    if small and isinstance(norm, nn.InstanceNorm3d) and not norm.track_running_stats:
        _norm_act_small_(norm, y5, slope)
    else:
        _norm_act_(norm, y5, slope, ws)


def _norm_act_small_(norm: nn.InstanceNorm3d, y5: Tensor, slope: float) -> None:
    """:func:`_norm_act_` for a small channels-last ``y5`` and a batch-statistics instance norm:
    the mean, then the mean of the squared deviations (two passes, as exact), in 7 operations."""
    n, c = y5.shape[:2]
    y = y5.permute(0, 2, 3, 4, 1).reshape(n, -1, c)  # a view: channels-last is (N, V, C)
    y.sub_(y.mean(dim=1, keepdim=True))
    rstd = y.square().mean(dim=1, keepdim=True).add_(norm.eps).rsqrt_()
    if norm.weight is not None:
        rstd = rstd * norm.weight
    if norm.bias is None:
        y.mul_(rstd)
    else:
        torch.addcmul(norm.bias, y, rstd, out=y)
    F.leaky_relu_(y, slope)


def _instance_affine(
    y: Tensor, wide: Tensor, fold: int, norm: nn.InstanceNorm3d, ws
) -> tuple[Tensor, Tensor]:
    """Scale and shift (N, 1, C) of a batch-statistics instance norm of channels-last ``y``
    (N, V, C), ``wide`` its :func:`_folded` view: ``norm(y) = y * scale + shift``.

    Two passes, as exact as PyTorch's instance norm (no E[y^2] - E[y]^2): the mean (a cascaded
    sum over V), then the mean of the squared deviations, computed elementwise over the folded
    rows into ``ws``'s scratch buffer. Each step is one PyTorch call on per-channel tensors
    (session 14: the whole norm of an 8-channel node in 18 operations instead of 35).
    """
    mean = y.mean(1, keepdim=True)
    squares = ws.flat("norm_scratch", y.numel()).view(wide.shape)
    torch.ops.aten.mse_loss.out(wide, _repeat(mean, fold), 0, out=squares)  # (y - mean)^2
    scale = squares.view(y.shape).mean(1, keepdim=True).add_(norm.eps).rsqrt_()
    if norm.weight is not None:
        scale.mul_(norm.weight)
    if norm.bias is None:
        return scale, mean.mul_(scale).neg_()
    return scale, torch.addcmul(norm.bias, mean, scale, value=-1)


def _folded(y: Tensor) -> tuple[Tensor, int]:
    """Contiguous (N, V, C) ``y`` viewed as (N, V / fold, fold * C), and ``fold``.

    A per-channel operand (N, 1, C) broadcast over (N, V, C) makes an elementwise operation
    loop over rows C wide: with fewer than ``_LANES`` (16) channels, 2-4x slower than over the
    same data in rows of fold * C (the whole norm of a 16x48x48 tile with 8 channels: 467
    against 273 us; 48^3: 1185 against 570 us). From 16 channels on the folded rows were 10-17 %
    slower, so there ``fold`` is 1 (docs/BENCHMARK_MODELS.md, session 10). Each element still
    meets the same operands, so the results are bit-identical.
    """
    n, v, c = y.shape
    fold = math.gcd(v, 64) if c < _LANES else 1
    return (y, 1) if fold == 1 else (y.view(n, v // fold, fold * c), fold)


_CHANNEL_INDEX: dict[tuple[int, int], Tensor] = {}  # (fold, C) -> [0..C-1] fold times


def _repeat(t: Tensor, fold: int) -> Tensor:
    """A per-channel operand (..., C) laid out for :func:`_folded` rows: (..., fold * C), the C
    values fold times side by side (one ``index_select``; the index is made once per shape)."""
    if fold == 1:
        return t  # broadcasts as it is
    c = t.shape[-1]
    index = _CHANNEL_INDEX.get((fold, c))
    if index is None:
        index = _CHANNEL_INDEX.setdefault((fold, c), torch.arange(fold * c) % c)
    return t.index_select(-1, index)


def _norm_act_(norm: nn.Module, y5: Tensor, slope: float, ws) -> None:
    """Normalise channels-last ``y5`` in place (instance, eval batch or none), then LeakyReLU.

    Few, whole-tensor operations: on a busy machine every parallel operation waits for its
    slowest thread, so many small ones cost far more than their memory traffic.
    """
    n, c = y5.shape[:2]
    y = y5.permute(0, 2, 3, 4, 1).reshape(n, -1, c)  # a view: channels-last is (N, V, C)
    wide, fold = _folded(y)
    if isinstance(norm, nn.InstanceNorm3d) and not norm.track_running_stats:
        scale, shift = _instance_affine(y, wide, fold, norm, ws)
        torch.addcmul(_repeat(shift, fold), wide, _repeat(scale, fold), out=wide)
    elif isinstance(norm, (nn.BatchNorm3d, nn.InstanceNorm3d)):  # eval: running statistics
        rstd = (norm.running_var + norm.eps).rsqrt()
        scale = rstd if norm.weight is None else rstd * norm.weight
        shift = -norm.running_mean * scale
        shift = shift if norm.bias is None else shift + norm.bias
        torch.addcmul(_repeat(shift, fold), wide, _repeat(scale, fold), out=wide)
    F.leaky_relu_(y, slope)
