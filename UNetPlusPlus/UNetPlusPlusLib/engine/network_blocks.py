"""The nodes of the UNet++ (``network.py``): H (two conv-norm-act blocks), the encoder's
X(i, 0) and the decoder's X(i, j >= 1) with its row of skips."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conv_dispatch import _conv3d, _conv_transpose3d

LEAKY_SLOPE = 0.1


class ConvNormAct(nn.Module):
    """3x3x3 convolution, normalisation, dropout, LeakyReLU(0.1) (MONAI ``Convolution``, NDA)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=True)
        if norm == "instance":
            self.norm: nn.Module = nn.InstanceNorm3d(out_channels, affine=True)
        elif norm == "batch":
            self.norm = nn.BatchNorm3d(out_channels)
        else:
            self.norm = nn.Identity()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.drop(self.norm(_conv3d(self.conv, x))), LEAKY_SLOPE, inplace=True)


class Node(nn.Module):
    """H of the paper: two ``ConvNormAct`` blocks."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, dropout: float) -> None:
        super().__init__()
        self.conv_0 = ConvNormAct(in_channels, out_channels, norm, dropout)
        self.conv_1 = ConvNormAct(out_channels, out_channels, norm, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_1(self.conv_0(x))


class EncoderNode(Node):
    """X(i, 0): max-pool (for i >= 1), then H."""

    def __init__(
        self, in_channels: int, out_channels: int, norm: str, dropout: float, pool: bool
    ) -> None:
        super().__init__(in_channels, out_channels, norm, dropout)
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        if self.pool:
            x = F.max_pool3d(x, kernel_size=2)
        return super().forward(x)


class DecoderNode(Node):
    """X(i, j), j >= 1: H of the row's skips concatenated with Up(X(i+1, j-1))."""

    def __init__(
        self,
        skip_channels: int,
        below_channels: int,
        up_channels: int,
        out_channels: int,
        norm: str,
        dropout: float,
    ) -> None:
        super().__init__(skip_channels + up_channels, out_channels, norm, dropout)
        self.up = nn.ConvTranspose3d(below_channels, up_channels, kernel_size=2, stride=2)

    def forward(self, below: Tensor, row: _SkipRow) -> Tensor:
        return super().forward(row.concat_up(self.up, below))


class _SkipRow:
    """The skips X(i, 0..j-1) of decoder row i, concatenated with ``torch.cat`` (autograd-safe)."""

    def __init__(self) -> None:
        self.skips: list[Tensor] = []

    def concat_up(self, up: nn.ConvTranspose3d, below: Tensor) -> Tensor:
        """``[X(i, 0), ..., X(i, j-1), Up(below)]``, the input of X(i, j)."""
        upsampled = _conv_transpose3d(up, below)
        target = self.skips[0].shape[2:]
        # odd size: replicate the last plane, like MONAI. While an exporter traces (onnx_export),
        # the pad is always recorded (amounts from the shapes, zero for even sizes): a graph
        # traced on an even tile must also run a tile of 47 (OpenVINO refused it, issue seen
        # with a model.json tile of 47)
        if torch.jit.is_tracing() or upsampled.shape[2:] != target:
            pad = [0, 0] * 3
            for axis in range(3):
                pad[2 * axis + 1] = target[2 - axis] - upsampled.shape[4 - axis]
            upsampled = F.pad(upsampled, pad, mode="replicate")
        return torch.cat([*self.skips, upsampled], dim=1)
