"""Fast CPU inference for ``UNetPlusPlus3D``: channels-last oneDNN, reused buffers, fused norms.

Same graph and weights as the module path of ``network.py`` (Zhou et al., IEEE TMI 2019,
arXiv:1912.05074), restricted to float32 inference on the CPU. Measured on 2 cores
(docs/BENCHMARK.md), four things dominate the time of a 3D UNet++ beside its convolutions,
and each has a remedy here:

- **Layout.** oneDNN's 3D convolutions run 1.2-2x faster on channels-last (N, z, y, x, C)
  tensors than on NCDHW ones, which it reorders to a blocked layout and back on every call.
  Every activation here stays channels-last and weights are pre-packed once per tile shape.
- **Page faults.** A fresh 50 MB activation costs ~40 ms of page faults before the first
  FLOP. Inside ``reuse_buffers()`` every buffer is kept and reused by the next tile of the
  same shape, and convolutions write into them (oneDNN's in-place "add" post-op).
- **Instance norm.** PyTorch's instance norm runs a slow Welford reduction. Here the
  per-channel mean and the centred second moment are two cascaded sums (exact to float
  rounding), then one fused scale-and-shift and an in-place LeakyReLU. The elementwise steps
  run over rows of fold x C values (``_folded``), not C: with 8 channels, rows 8 wide made
  the norm a third of the nodule tile's time (16x48x48, L1).

- **Concatenation and upsampling.** A decoder node's input ``[X(i, 0), ..., X(i, j-1),
  Up(X(i+1, j-1))]`` is never concatenated (a channels-last concatenation is a full copy):
  its first convolution is the sum of one convolution per part, with the weight's matching
  input channels, accumulated in place. The Up part is not even materialised: the 2x2x2
  transposed convolution and the 3x3x3 convolution of its channels fold into one 4x4x4
  transposed convolution (``compose_up_conv``), 8 instead of 27 multiply-adds per upsampled
  channel and output (a fifth of the full network's FLOPs).
- **Narrow rows.** A convolution with 8 output channels costs nearly as much as one with 16
  (48^3, 8 input channels: 7.1 against 7.6 ms, measured on this project's AVX2 machine; on
  AVX-512 half of every register would idle). In a row of nodes that narrow (row 0 of the
  shipped models), each skip X(i, k) therefore computes its
  share of the first convolution of every later X(i, j) at once, two nodes per convolution,
  into side-by-side accumulators (``_Executor.lookahead``); each node then adds its Up share.
  Row 0 runs 4 instead of 6 such convolutions at L3, 6 instead of 10 at L4.
- **Small tiles** (session 11, the nodule's 16x48x48): the heads' GEMM writes NCDHW logits
  directly (no transposing copy); max pooling from 2^17 values is three pairwise maxima (no
  argmax indices); the norm of small deep nodes runs in 7 operations (``cpu_norm.py``).
  docs/BENCHMARK_MODELS.md, "Session 11".
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Iterator, Optional, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cpu_norm import _LANES, norm_act_
from .cpu_upconv import _add_shell_corrections, _shell_patterns, compose_up_conv

_UPSAMPLE_CHUNK_BYTES = 32 << 20  # bounds the GEMM buffer of an upsampling, in few pieces
#: Outputs up to this size are written by a fresh convolution (``_convolve_into``). Off (0): alone
#: 4-10 % faster per convolution, but 11 % more CPU per liver and brain L4 tile in
#: ``benchlib.toggles_ab`` (docs/BENCHMARK_MODELS.md, session 11); kept as a switch to measure.
_FRESH_BYTES = 0
_PAIRWISE_POOL = 1 << 17  # values: from this size max pooling runs as pairwise maxima
_ONE = [1, 1, 1]
_ZERO = [0, 0, 0]


def available(x: Tensor) -> bool:
    """Whether ``x`` may take this path: CPU float32, oneDNN, no autograd, no autocast."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or torch.is_grad_enabled():
        return False
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and compiler.is_compiling():  # torch.compile traces the modules
        return False
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return False
    try:
        autocast = torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        autocast = torch.is_autocast_cpu_enabled()
    return not autocast and hasattr(torch.ops.mkldnn, "_convolution_pointwise_")


class Workspace:
    """Named flat float32 buffers and pre-packed weights, kept for the next call of a same shape.

    Outside ``reuse_buffers()`` each forward gets a fresh workspace, freed when it returns.
    """

    def __init__(self) -> None:
        self._flat: dict[object, Tensor] = {}
        self._packed: dict[object, object] = {}
        self.convolutions: set[int] = set()  # id() of every convolution run, for tests
        self.flops = 0  # multiply-adds x 2 of the convolutions and GEMMs actually executed

    def flat(self, key: object, numel: int) -> Tensor:
        buffer = self._flat.get(key)
        if buffer is None or buffer.numel() < numel:
            buffer = torch.empty(numel, dtype=torch.float32)
            self._flat[key] = buffer
        return buffer[:numel]

    def channels_last(self, key: object, n: int, c: int, spatial: Sequence[int]) -> Tensor:
        """An (n, c, z, y, x) tensor with channels-last strides over buffer ``key``."""
        voxels = n * math.prod(spatial)
        return self.flat(key, voxels * c).view(n, *spatial, c).permute(0, 4, 1, 2, 3)

    def packed(self, conv: nn.Conv3d, channels: slice, input_shape: Sequence[int]) -> Tensor:
        """The ``channels`` input slice of ``conv``'s weight, reordered for oneDNN for inputs
        of ``input_shape`` (cached; keyed on the weight tensor and its version counter)."""
        return self.stacked([(conv, True)], channels, input_shape)

    def stacked(
        self, convs: Sequence[tuple[nn.Conv3d, bool]], channels: slice, input_shape: Sequence[int]
    ) -> Tensor:
        """:meth:`packed` for several convolutions of one geometry at once: their ``channels``
        slices stacked along the output channels, zeros for those whose flag is False."""
        self.convolutions.update(id(conv) for conv, used in convs if used)
        versions = tuple((id(c.weight), c.weight._version, used) for c, used in convs)
        key = (versions, channels.start, channels.stop, tuple(input_shape))
        packed = self._packed.get(key)
        if not isinstance(packed, Tensor):
            conv, width = convs[0][0], channels.stop - channels.start
            parts = [
                c.weight.detach()[:, channels] if used
                else c.weight.new_zeros(c.out_channels, width, *c.kernel_size)
                for c, used in convs
            ]  # fmt: skip
            packed = torch.ops.mkldnn._reorder_convolution_weight(
                torch.cat(parts).contiguous(), list(conv.padding), list(conv.stride),
                list(conv.dilation), conv.groups, list(input_shape),
            )  # fmt: skip
            self._packed[key] = packed
        return packed

    def composed(self, node: nn.Module, first: int, below: Sequence[int]) -> tuple[Tensor, ...]:
        """``compose_up_conv`` for a decoder node whose Up input has shape ``below`` (N, C, d,
        h, w): the kernel pre-packed for oneDNN, the bias and the shell corrections laid out
        for the (2d, 2h, 2w) grid; cached on the weights' version counters."""
        up, conv = node.up, node.conv_0.conv
        params = (up.weight, up.bias, conv.weight, conv.bias)
        versions = tuple((id(p), p._version) for p in params if p is not None)
        key = ("composed", id(node), first, tuple(below), versions)
        cached = self._packed.get(key)
        if not isinstance(cached, tuple):
            kernel, bias, corrections = compose_up_conv(up, conv, first)
            kernel = torch.ops.mkldnn._reorder_convolution_transpose_weight(
                kernel, _ONE, _ZERO, [2, 2, 2], _ONE, 1, list(below)
            )
            cached = (kernel, bias, _shell_patterns(corrections, [2 * s for s in below[2:]]))
            self._packed[key] = cached
        self.convolutions.update((id(up), id(conv)))
        return cached

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._flat.values())


def _convolve_into(
    conv: nn.Conv3d,
    parts: Sequence[Tensor],
    out: Tensor,
    ws: Workspace,
    accumulate: bool = False,
    first: int = 0,
) -> Tensor:
    """``out = conv(cat(parts, dim=1))`` (or ``out +=`` it, without the bias, if ``accumulate``),
    channels-last, without the concatenation: one oneDNN convolution per part, each adding
    into the result in place with the weight's matching input channels
    (``parts`` start at input channel ``first`` of ``conv``).

    Returns the tensor holding the result: ``out``, or, when ``out`` is to be overwritten and
    holds at most ``_FRESH_BYTES``, a fresh tensor from a convolution that writes its output
    instead of adding to it (no zeroing pass, no read of ``out``; allocations that small are
    recycled by the C allocator without page faults).
    """
    start = first
    if not accumulate:
        if out.numel() * out.element_size() <= _FRESH_BYTES:
            part, parts = parts[0], parts[1:]
            channels = slice(start, start + part.shape[1])
            start = channels.stop
            packed = ws.packed(conv, channels, part.shape)
            ws.flops += 2 * out.numel() * part.shape[1] * math.prod(conv.kernel_size)
            out = torch.ops.mkldnn._convolution_pointwise(
                part, packed, conv.bias, list(conv.padding), list(conv.stride),
                list(conv.dilation), conv.groups, "none", [], None,
            )  # fmt: skip
            accumulate = True
        else:
            out.zero_()
    for index, part in enumerate(parts):
        channels = slice(start, start + part.shape[1])
        start = channels.stop
        bias = conv.bias if index == 0 and not accumulate else None
        _convolve_add(out, part, ws.packed(conv, channels, part.shape), bias, conv, ws)
    return out


def _convolve_add(
    out: Tensor, x: Tensor, packed: Tensor, bias: Optional[Tensor], conv: nn.Conv3d, ws: Workspace
) -> None:
    """``out += conv(x)`` with a weight packed by the workspace (``out.shape[1]`` outputs)."""
    ws.flops += 2 * out.numel() * x.shape[1] * math.prod(conv.kernel_size)
    torch.ops.mkldnn._convolution_pointwise_.binary(
        out, x, packed, bias, list(conv.padding), list(conv.stride), list(conv.dilation),
        conv.groups, "add", None, None, [], None,
    )  # fmt: skip


class NestedNetwork(Protocol):
    """What this module reads of a ``network.UNetPlusPlus3D`` (it never imports ``network``,
    which imports it): node X(i, j)'s module and output channels, and head j's convolution."""

    def node_channels(self, i: int, j: int) -> int: ...

    def node(self, i: int, j: int) -> nn.Module: ...

    def head(self, j: int) -> nn.Module: ...


class _Executor:
    """One forward of a ``UNetPlusPlus3D`` over nodes i + j <= depth, diagonal by diagonal."""

    def __init__(
        self, model: NestedNetwork, x: Tensor, depth: int, ws: Workspace, slope: float
    ) -> None:
        self.model, self.depth, self.ws, self.slope = model, depth, ws, slope
        self.n = x.shape[0]
        self.shapes = [tuple(x.shape[2:])]
        for _ in range(depth):
            self.shapes.append(tuple(s // 2 for s in self.shapes[-1]))
        self.groups = {i: self.row_groups(i) for i in range(depth)}
        self.groups = {i: groups for i, groups in self.groups.items() if groups}

    def row_groups(self, i: int) -> list[tuple[int, ...]]:
        """Decoders X(i, j) of row i whose first convolutions gather their skips' share in one
        accumulator (``lookahead``): runs of equal width, from the last node, at most ``_LANES``
        channels together; [] where no two nodes share one (16 or more channels a node)."""
        groups: list[list[int]] = []
        for j in range(self.depth - i, 0, -1):
            c = self.model.node_channels(i, j)
            last = groups[-1] if groups else []
            if last and self.model.node_channels(i, last[0]) == c and (len(last) + 1) * c <= _LANES:
                last.append(j)
            else:
                groups.append([j])
        return [tuple(sorted(g)) for g in groups] if any(len(g) > 1 for g in groups) else []

    def accumulator(self, i: int, index: int) -> Tensor:
        """The channels-last accumulator of group ``index`` of row i: its nodes side by side."""
        group = self.groups[i][index]
        c = sum(self.model.node_channels(i, j) for j in group)
        return self.ws.channels_last(("acc", i, index), self.n, c, self.shapes[i])

    def lookahead(self, i: int, k: int, x: Tensor) -> None:
        """Add ``x`` = X(i, k)'s share of the first convolution of every later X(i, j) of row i
        into the accumulators, one convolution per group (zero weights for its nodes j <= k).

        A row of 8-channel nodes otherwise runs one 8-output convolution per (skip, node), each
        nearly as slow as a 16-output one (measured, AVX2); grouped, a skip feeds two nodes for
        the price of one (L4: 6 instead of 10 such convolutions in row 0).
        """
        first = sum(self.model.node_channels(i, m) for m in range(k))
        channels = slice(first, first + x.shape[1])
        for index, group in enumerate(self.groups.get(i, ())):
            if group[-1] <= k:
                continue
            convs = [(self.model.node(i, j).conv_0.conv, j > k) for j in group]
            packed = self.ws.stacked(convs, channels, x.shape)
            out = self.accumulator(i, index)
            if k == 0:  # every node of a group takes a share of X(i, 0): the first write
                out.zero_()
            _convolve_add(out, x, packed, None, convs[0][0], self.ws)

    def accumulated(self, i: int, j: int) -> Tensor:
        """X(i, j)'s slice of its group's accumulator: its skips' share of the first conv."""
        for index, group in enumerate(self.groups[i]):
            if j in group:
                start = sum(self.model.node_channels(i, m) for m in group if m < j)
                c = self.model.node_channels(i, j)
                return self.accumulator(i, index)[:, start : start + c]
        raise AssertionError(f"X({i}, {j}) is in no group")  # pragma: no cover

    def node_output(self, i: int, j: int) -> Tensor:
        c = self.model.node_channels(i, j)
        return self.ws.channels_last(("x", i, j), self.n, c, self.shapes[i])

    def run_node(
        self,
        node: nn.Module,
        parts: Sequence[Tensor],
        i: int,
        j: int,
        started: Tensor | None = None,
    ) -> Tensor:
        """H of the paper: two (conv, norm, LeakyReLU) blocks; returns X(i, j) (its workspace
        buffer, or a fresh tensor when small, see ``_convolve_into``).

        ``parts`` are the channel groups of the node's input, never concatenated; ``started``,
        if given, already holds the first convolution of the remaining (last) channels.
        """
        ws, out = self.ws, self.node_output(i, j)
        mid = started
        if mid is None:
            mid = ws.channels_last(("mid", i), self.n, out.shape[1], self.shapes[i])
        for block, dst in ((node.conv_0, mid), (node.conv_1, out)):
            dst = _convolve_into(block.conv, parts, dst, ws, accumulate=dst is started)
            norm_act_(block.norm, dst, self.slope, ws)
            parts = [dst]
        return dst

    def encode(self, i: int, previous: Tensor) -> Tensor:
        if i == 0:
            x = previous
            if not x.is_contiguous(memory_format=torch.channels_last_3d):
                x = self.ws.channels_last("input", self.n, x.shape[1], self.shapes[0])
                x.copy_(previous)
        elif previous.numel() >= _PAIRWISE_POOL:
            x = self.max_pool_pairwise(previous, i)
        else:
            x = F.max_pool3d(previous, kernel_size=2)
            if not x.is_contiguous(memory_format=torch.channels_last_3d):
                x = x.contiguous(memory_format=torch.channels_last_3d)
        return self.run_node(self.model.node(i, 0), [x], i, 0)

    def max_pool_pairwise(self, x: Tensor, i: int) -> Tensor:
        """``F.max_pool3d(x, 2)`` of channels-last ``x`` as three pairwise maxima (along x, y,
        then z) into workspace buffers: no argmax indices, rows C wide; bit-identical (a
        maximum is exact; NaN propagates), 0.5-0.7x the time of max_pool3d from ~10^5 values."""
        n, c, d, h, w = x.shape
        d2, h2, w2 = d // 2, h // 2, w // 2  # odd sizes: the last plane is dropped, as there
        v = x.permute(0, 2, 3, 4, 1)[:, : 2 * d2, : 2 * h2, : 2 * w2].unflatten(3, (w2, 2))
        along_x = self.ws.flat(("pool_x", i), n * 2 * d2 * 2 * h2 * w2 * c)
        along_x = along_x.view(n, 2 * d2, 2 * h2, w2, c)
        torch.maximum(v[:, :, :, :, 0], v[:, :, :, :, 1], out=along_x)
        u = along_x.unflatten(2, (h2, 2))
        along_y = self.ws.flat(("pool_y", i), n * 2 * d2 * h2 * w2 * c).view(n, 2 * d2, h2, w2, c)
        torch.maximum(u[:, :, :, 0], u[:, :, :, 1], out=along_y)
        s = along_y.unflatten(1, (d2, 2))
        out = self.ws.channels_last(("pool", i), n, c, (d2, h2, w2))
        torch.maximum(s[:, :, 0], s[:, :, 1], out=out.permute(0, 2, 3, 4, 1))
        return out

    def decode(self, i: int, j: int, skips: list[Tensor], below: Tensor) -> Tensor:
        """X(i, j) from the skips X(i, 0..j-1) and Up(below), in MONAI's concatenation order.

        On even sizes, Up and the first convolution's share of its channels run as one
        transposed convolution (``compose_up_conv``): 8 C_below instead of 27 C_up
        multiply-adds per output, and no upsampled tensor at all. In a grouped row the skips'
        share is already in the accumulator (``lookahead``).
        """
        node = self.model.node(i, j)
        grouped = i in self.groups
        first = sum(self.model.node_channels(i, m) for m in range(j))
        skips = [] if grouped else skips[:j]
        fine = tuple(2 * s for s in below.shape[2:])
        if fine == self.shapes[i] and 8 * node.up.in_channels <= 27 * node.up.out_channels:
            kernel, bias, patterns = self.ws.composed(node, first, below.shape)
            self.ws.flops += 2 * below.numel() * node.conv_0.conv.out_channels * 64  # 4x4x4
            started = torch.ops.mkldnn._convolution_transpose_pointwise(
                below, kernel, bias, _ONE, _ZERO, [2, 2, 2], _ONE, 1, "none", [], None
            )
            if not started.is_contiguous(memory_format=torch.channels_last_3d):
                started = started.contiguous(memory_format=torch.channels_last_3d)
            _add_shell_corrections(started, patterns)
        else:
            up = self.ws.channels_last(("up", i), self.n, node.up.out_channels, self.shapes[i])
            self.upsample_into(node.up, below, up)
            if not grouped:
                return self.run_node(node, [*skips, up], i, j)
            c = self.model.node_channels(i, j)
            started = self.ws.channels_last(("mid", i), self.n, c, self.shapes[i])
            started = _convolve_into(node.conv_0.conv, [up], started, self.ws, first=first)
        if grouped:
            started.add_(self.accumulated(i, j))
        return self.run_node(node, skips, i, j, started=started)

    def upsample_into(self, up: nn.ConvTranspose3d, x: Tensor, dst: Tensor) -> None:
        """dst <- ConvTranspose3d(kernel 2, stride 2)(x) as one GEMM and one interleaving copy.

        ``out[o, 2z+a, 2y+b, 2x+c] = sum_i W[i, o, a, b, c] x[i, z, y, x] + bias[o]``; an odd
        target size gets its last plane replicated (as MONAI's ``UpCat`` pad).
        """
        n, c_in, d, h, w = x.shape
        c_out = up.out_channels
        weight = up.weight.permute(0, 2, 3, 4, 1).reshape(c_in, 8 * c_out)  # cols (a, b, c, o)
        bias = up.bias.repeat(8)
        source = x.permute(0, 2, 3, 4, 1)  # (N, d, h, w, C_in), dense
        target = dst.permute(0, 2, 3, 4, 1)  # (N, Z, Y, X, C_out), Z >= 2d
        core = target[:, : 2 * d, : 2 * h, : 2 * w]
        core = core.unflatten(3, (w, 2)).unflatten(2, (h, 2)).unflatten(1, (d, 2))
        planes = max(1, _UPSAMPLE_CHUNK_BYTES // (4 * h * w * 8 * c_out))  # z planes per GEMM
        gemm = self.ws.flat("up_gemm", min(planes, d) * h * w * 8 * c_out)
        for b in range(n):
            for z in range(0, d, planes):
                count = min(planes, d - z)
                rows = source[b, z : z + count].reshape(-1, c_in)
                out = gemm[: rows.shape[0] * 8 * c_out].view(-1, 8 * c_out)
                torch.addmm(bias, rows, weight, out=out)
                self.ws.flops += 2 * out.numel() * c_in
                block = out.view(count, h, w, 2, 2, 2, c_out).permute(0, 3, 1, 4, 2, 5, 6)
                core[b, z : z + count].copy_(block)
        big_d, big_h, big_w = target.shape[1:4]
        if 2 * w < big_w:  # odd size: replicate the last plane, like MONAI's pad
            target[:, : 2 * d, : 2 * h, 2 * w :] = target[:, : 2 * d, : 2 * h, 2 * w - 1 : 2 * w]
        if 2 * h < big_h:
            target[:, : 2 * d, 2 * h :] = target[:, : 2 * d, 2 * h - 1 : 2 * h]
        if 2 * d < big_d:
            target[:, 2 * d :] = target[:, 2 * d - 1 : 2 * d]

    def head(self, j: int, x: Tensor) -> Tensor:
        """1x1x1 head on X(0, j): logits (N, K, z, y, x), contiguous and freshly allocated.

        One GEMM per sample, W (K, C) @ X^T (C, V), whose (K, V) result is already the sample's
        NCDHW logits: no channels-last result to transpose (a third of the time at 16x48x48).
        """
        conv = self.model.head(j)
        n, c = x.shape[:2]
        k = conv.out_channels
        weight = conv.weight.reshape(k, c)
        logits = torch.empty(n, k, *self.shapes[0])
        for b in range(n):
            rows = x[b].permute(1, 2, 3, 0).reshape(-1, c)  # (V, C), a view of channels-last
            out = logits[b].view(k, -1)
            if conv.bias is None:
                torch.mm(weight, rows.t(), out=out)
            else:
                torch.addmm(conv.bias.view(k, 1), weight, rows.t(), out=out)
        self.ws.flops += 2 * logits.numel() * c
        return logits

    def run(self, x: Tensor, heads: Sequence[int]) -> list[Tensor]:
        skips: list[list[Tensor]] = [[] for _ in range(self.depth + 1)]
        outputs = []
        encoded = x
        for d in range(self.depth + 1):
            encoded = self.encode(d, encoded)
            self.lookahead(d, 0, encoded)
            skips[d].append(encoded)
            below = encoded
            for i in range(d - 1, -1, -1):  # X(i, d - i), walking up the diagonal
                j = d - i
                below = self.decode(i, j, skips[i], below)
                self.lookahead(i, j, below)
                skips[i].append(below)
            if d in heads:
                outputs.append(self.head(d, below))
        return outputs


_local = threading.local()  # each thread its own stack of active workspaces


def _active() -> list[Workspace]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


@contextlib.contextmanager
def reuse_buffers(workspace: Optional[Workspace] = None) -> Iterator[Workspace]:
    """Keep every buffer and packed weight between forward calls inside this block.

    Use it around a sliding window: tiles of one size then reuse the same memory (no page
    faults). Packed weights are keyed on the weight tensors and their version counters, so
    weights updated in place (an optimiser step, ``load_state_dict``) or replaced inside the
    block are repacked. The block belongs to the thread that opened it. ``workspace``: carry
    one from an earlier block (a Predictor's successive clicks); never use one in two threads.
    """
    workspace = Workspace() if workspace is None else workspace
    _active().append(workspace)
    try:
        yield workspace
    finally:
        _active().remove(workspace)


def run(
    model: NestedNetwork, x: Tensor, depth: int, heads: Sequence[int], *, slope: float
) -> list[Tensor]:
    """Heads ``heads`` of ``model`` on ``x`` (N, C, z, y, x), nodes i + j <= ``depth`` only;
    ``slope``: the negative slope of the network's LeakyReLU (``network.LEAKY_SLOPE``)."""
    stack = _active()
    ws = stack[-1] if stack else Workspace()
    return _Executor(model, x, depth, ws, slope).run(x, heads)
