"""Test-time augmentation (mirroring) and deep-supervision heads for the sliding window.

Each tile is run once per combination of mirrored axes (all 2^n subsets of the manifest's
``test_time_augmentation.mirror_axes``, the identity included), the network's output is
mirrored back, and the class probabilities (softmax) are averaged, as nnU-Net does (Isensee et
al., Nature Methods 2021). Mirroring happens on the model's canonical grid, whose direction is
the identity in LPS, so axis ``x`` is the patient's right-left axis, ``y`` anterior-posterior
and ``z`` inferior-superior whatever the input's orientation; a flip and its inverse are exact
(no interpolation).

With ``heads=True`` the predict function returns the probabilities of every deep-supervision
head the chosen depth computes anyway (heads 1..k for depth k, all four for the ensemble),
stacked along the channel axis: (B, H * K, z, y, x), head 1 first. ``split_heads`` turns the
blended result into the final prediction and the heads (engine/disagreement.py uses them).

Manifest field (optional; absent means all three axes, the trainer's flip augmentation)::

    "test_time_augmentation": {"mirror_axes": ["y", "z"]}
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Callable, Sequence, Union

import numpy as np

from .manifest_options import MIRROR_AXES as DEFAULT_MIRROR_AXES
from .manifest_options import parse_tta_config as parse_config  # noqa: F401 - its former home

if TYPE_CHECKING:  # torch is imported where a model runs: the manifest reader uses this module
    import torch  # before PyTorch is installed (the Slicer panel lists models first).

AXIS_DIMS = {"x": 4, "y": 3, "z": 2}  # tensor dims of (B, C, z, y, x)
MAX_HEADS = 4

Depth = Union[int, str]
Predict = Callable[["torch.Tensor"], "torch.Tensor"]


def mirror_axes(config: dict | None) -> tuple[str, ...]:
    """The axes a model may be mirrored along: the manifest's list, or all three."""
    if not config or "mirror_axes" not in config:
        return DEFAULT_MIRROR_AXES
    return tuple(config["mirror_axes"])


def flip_combinations(axes: Sequence[str]) -> list[tuple[int, ...]]:
    """Tensor dims to flip for every subset of ``axes``, the identity (no flip) first."""
    dims = [AXIS_DIMS[a] for a in axes]
    return [c for n in range(len(dims) + 1) for c in itertools.combinations(dims, n)]


def head_count(depth: Depth) -> int:
    """Number of deep-supervision heads a depth computes: k for depth k, four for the ensemble."""
    return MAX_HEADS if depth == "ensemble" else int(depth)


def make_predict(
    model: torch.nn.Module,
    depth: Depth,
    device: torch.device,
    axes: Sequence[str] = (),
    heads: bool = False,
) -> Predict:
    """A sliding-window ``predict``: tiles (B, C, z, y, x) -> probabilities.

    Returns (B, K, ...) for the chosen depth, or with ``heads`` (B, H * K, ...) for its heads
    1..H. With ``axes`` the result is the mean over ``flip_combinations(axes)`` (2^n passes).
    """
    import torch

    from .devices import autocast_context

    combos = flip_combinations(axes)

    def once(tiles: torch.Tensor) -> torch.Tensor:
        with autocast_context(device):
            if heads:
                k = MAX_HEADS if depth == "ensemble" else int(depth)
                logits = model.forward_heads(tiles, depth=k)
                return torch.cat([torch.softmax(h.float(), dim=1) for h in logits], dim=1)
            return torch.softmax(model(tiles, depth=depth).float(), dim=1)

    def predict(tiles: torch.Tensor) -> torch.Tensor:
        total = None
        for dims in combos:
            flipped = torch.flip(tiles, dims=dims) if dims else tiles
            out = once(flipped)
            out = torch.flip(out, dims=dims) if dims else out  # softmax made a new tensor
            total = out if total is None else total.add_(out)
        return total.div_(len(combos)) if len(combos) > 1 else total

    return predict


def split_heads(
    stacked: np.ndarray, num_classes: int, depth: Depth
) -> tuple[np.ndarray, np.ndarray]:
    """(H * K, z, y, x) -> final probabilities (K, z, y, x) and heads (H, K, z, y, x).

    The final prediction is head k for depth k, the mean of the heads for the ensemble (as
    ``UNetPlusPlus3D.forward(depth="ensemble")``)."""
    heads = stacked.reshape((-1, num_classes) + stacked.shape[1:])
    final = heads.mean(axis=0) if depth == "ensemble" else heads[-1]
    return np.ascontiguousarray(final, dtype=np.float32), heads
