"""Instance / batch norm and LeakyReLU in place on channels-last activations, for
``cpu_inference`` (float32 CPU inference; same results as ``nn.InstanceNorm3d`` or an eval
``nn.BatchNorm3d`` followed by ``F.leaky_relu``, to float rounding).

Two paths. Large tensors take few whole-tensor passes with cascaded sums over folded rows
(:func:`_norm_act_`, session 10). Small ones (at most ``_SMALL`` values, the deep nodes of a
tile, where PyTorch runs every operation on one thread anyway) are bound by the ~30 tensor
operations of that path, not by memory: :func:`_norm_act_small_` does the same two-pass
statistics in 7 operations, about half the time from 1,152 to 18,432 values (session 11).
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


def _channel_sums(t: Tensor) -> Tensor:
    """Sum over voxels of (N, V, C): (N, 1, C), folding voxels into the rows' width first
    (a 16-wide row reduces several times slower than a 1024-wide one)."""
    n, v, c = t.shape
    fold = math.gcd(v, 64)
    partial = t.reshape(n, v // fold, fold * c).sum(dim=1)
    return partial.view(n, fold, c).sum(dim=1, keepdim=True)


def _instance_stats(y: Tensor, ws, eps: float) -> tuple[Tensor, Tensor]:
    """Per (sample, channel) mean and 1/sqrt(var + eps) of channels-last ``y`` as (N, V, C).

    Two passes (the mean, then the mean of the squared deviations, computed in one fused
    operation) with cascaded sums: as exact as PyTorch's instance norm, without its slow
    Welford reduction.
    """
    n, v, c = y.shape
    mean = _channel_sums(y).div_(v)  # (N, 1, C)
    wide, fold = _folded(y)
    squares = ws.flat("norm_scratch", y.numel()).view(wide.shape)
    # (y - mean)^2, elementwise over rows fold * C wide (as exact as over (N, V, C))
    torch.ops.aten.mse_loss.out(wide, _repeat(mean, fold).expand_as(wide), 0, out=squares)
    variance = _channel_sums(squares.view(n, v, c)).div_(v)
    return mean, variance.add_(eps).rsqrt_()


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


def _repeat(t: Tensor, fold: int) -> Tensor:
    """A per-channel (N, 1, C) (or (C,)) operand laid out for :func:`_folded` rows."""
    if fold == 1:
        return t  # broadcasts as it is
    c = t.shape[-1]
    return t.reshape(-1, 1, 1, c).expand(-1, 1, fold, c).reshape(-1, 1, fold * c)


def _norm_act_(norm: nn.Module, y5: Tensor, slope: float, ws) -> None:
    """Normalise channels-last ``y5`` in place (instance, eval batch or none), then LeakyReLU.

    Few, whole-tensor operations: on a busy machine every parallel operation waits for its
    slowest thread, so many small ones cost far more than their memory traffic.
    """
    n, c = y5.shape[:2]
    y = y5.permute(0, 2, 3, 4, 1).reshape(n, -1, c)  # a view: channels-last is (N, V, C)
    wide, fold = _folded(y)
    if isinstance(norm, nn.InstanceNorm3d) and not norm.track_running_stats:
        mean, rstd = _instance_stats(y, ws, norm.eps)
        scale = rstd if norm.weight is None else rstd * norm.weight
        shift = -mean * scale if norm.bias is None else norm.bias - mean * scale
        torch.addcmul(_repeat(shift, fold), wide, _repeat(scale, fold), out=wide)
    elif isinstance(norm, (nn.BatchNorm3d, nn.InstanceNorm3d)):  # eval: running statistics
        rstd = (norm.running_var + norm.eps).rsqrt()
        scale = rstd if norm.weight is None else rstd * norm.weight
        shift = -norm.running_mean * scale
        shift = shift if norm.bias is None else shift + norm.bias
        torch.addcmul(_repeat(shift, fold), wide, _repeat(scale, fold), out=wide)
    F.leaky_relu_(y, slope)
