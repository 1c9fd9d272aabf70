"""Hybrid cross-entropy + soft Dice loss with deep supervision (UNet++, Sec. III-C).

Zhou et al., IEEE TMI 2019 (arXiv:1912.05074) train every head X(0, j), j = 1..4, with the
same loss, a sum of voxel-wise cross-entropy and soft Dice,

    L(Y, P) = CE(Y, P) + (1 - Dice(Y, P)),
    Dice = mean over foreground classes c of
           (2 * sum_n y_nc p_nc + s) / (sum_n y_nc^2 + sum_n p_nc^2 + s),

and average it over the supervised heads. The Dice sums run over the whole batch (``n`` covers
every voxel of every sample), so a sample without foreground does not dominate the gradient; the
smoothing ``s`` makes a class that is absent from target and prediction score 1.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Heads = Union[Tensor, Sequence[Tensor]]


def cross_entropy_term(logits: Tensor, target: Tensor, ignore_index: int | None = None) -> Tensor:
    """Mean voxel-wise cross-entropy of logits (N, K, z, y, x) against target (N, z, y, x)."""
    ignore = -100 if ignore_index is None else ignore_index
    if ignore_index is not None and not (target != ignore_index).any():
        return logits.sum() * 0.0  # nothing to supervise: zero, yet connected to the graph
    return F.cross_entropy(logits.float(), target, ignore_index=ignore)


def soft_dice_term(
    logits: Tensor,
    target: Tensor,
    smooth: float = 1.0,
    include_background: bool = False,
    ignore_index: int | None = None,
) -> Tensor:
    """1 - batch soft Dice (squared denominator), averaged over the (foreground) classes."""
    n_classes = logits.shape[1]
    probs = torch.softmax(logits.float(), dim=1)
    valid = None
    if ignore_index is not None:
        valid = target != ignore_index
        target = torch.where(valid, target, torch.zeros_like(target))
    onehot = F.one_hot(target, n_classes).movedim(-1, 1).to(probs.dtype)
    if valid is not None:
        mask = valid.unsqueeze(1).to(probs.dtype)
        probs = probs * mask
        onehot = onehot * mask
    first = 0 if include_background else 1
    probs, onehot = probs[:, first:], onehot[:, first:]
    dims = (0, *range(2, probs.dim()))  # batch and space: one Dice per class
    intersection = (probs * onehot).sum(dims)
    denominator = (probs * probs).sum(dims) + onehot.sum(dims)  # onehot^2 == onehot
    dice = (2.0 * intersection + smooth) / (denominator + smooth)
    return 1.0 - dice.mean()


class HybridLoss(nn.Module):
    """Deep-supervised hybrid loss: weighted mean over heads of ``ce_weight * CE + dice_weight *
    (1 - Dice)``.

    ``forward(heads, target)`` takes the list from ``UNetPlusPlus3D.forward_heads`` (or one
    logits tensor) and integer labels (N, z, y, x). ``head_weights`` (one per head, normalised
    to sum 1) defaults to equal weights, as in the paper. Voxels labelled ``ignore_index`` are
    left out of both terms.
    """

    def __init__(
        self,
        head_weights: Sequence[float] | None = None,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        include_background: bool = False,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        if head_weights is not None and (
            len(head_weights) == 0 or any(w < 0 for w in head_weights) or sum(head_weights) <= 0
        ):
            raise ValueError(
                f"head_weights must be non-negative with a positive sum: {head_weights}"
            )
        self.head_weights = None if head_weights is None else [float(w) for w in head_weights]
        self.ce_weight = float(ce_weight)
        self.dice_weight = float(dice_weight)
        self.smooth = float(smooth)
        self.include_background = include_background
        self.ignore_index = ignore_index

    def head_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """The hybrid loss of one head."""
        if logits.dim() != target.dim() + 1 or logits.shape[2:] != target.shape[1:]:
            raise ValueError(
                f"logits {tuple(logits.shape)} and target {tuple(target.shape)} do not match: "
                "expected (N, K, z, y, x) and (N, z, y, x)"
            )
        if logits.shape[0] != target.shape[0] or logits.shape[1] < 2:
            raise ValueError(f"need the same batch and K >= 2 classes, got {tuple(logits.shape)}")
        target = target.long()
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.ce_weight:
            loss = loss + self.ce_weight * cross_entropy_term(logits, target, self.ignore_index)
        if self.dice_weight:
            dice = soft_dice_term(
                logits, target, self.smooth, self.include_background, self.ignore_index
            )
            loss = loss + self.dice_weight * dice
        return loss

    def forward(self, heads: Heads, target: Tensor) -> Tensor:
        heads = [heads] if isinstance(heads, Tensor) else list(heads)
        weights = self.head_weights or [1.0] * len(heads)
        if len(weights) != len(heads):
            raise ValueError(f"{len(heads)} heads but {len(weights)} head weights")
        total = sum(weights)
        return sum((w / total) * self.head_loss(h, target) for w, h in zip(weights, heads) if w > 0)
