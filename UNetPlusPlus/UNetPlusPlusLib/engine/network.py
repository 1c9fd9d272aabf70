"""3D UNet++ with nested skip pathways, deep supervision and exact pruned inference.

Zhou, Rahman Siddiquee, Tajbakhsh, Liang, "UNet++: Redesigning Skip Connections to Exploit
Multiscale Features in Image Segmentation", IEEE TMI 39(6), 2019, arXiv:1912.05074.

Node ``conv_i_j`` is X(i, j) of the paper (level i = 0..4, column j)::

    X(i, 0) = H(Down(X(i-1, 0)))
    X(i, j) = H([X(i, 0), ..., X(i, j-1), Up(X(i+1, j-1))])        for j >= 1

H is two (3x3x3 conv, norm, dropout, LeakyReLU(0.1)) blocks, Down a 2x2x2 max-pool and Up a
stride-2 transposed convolution. Heads ``final_conv_0_j`` (1x1x1 conv) read X(0, j), j = 1..4
(deep supervision). The layer structure and the order of concatenation mirror MONAI's
``BasicUNetPlusPlus``, so its weights load by renaming (see ``monai_weights.py``).

Pruning (paper, Sec. III-D): head k depends only on the nodes with i + j <= k, so
``forward(x, depth=k)`` builds only those and returns exactly head k of the full network.

Float32 inference on the CPU (eval mode, no autograd) runs through ``cpu_inference.py``:
the same graph and weights, channels-last oneDNN convolutions, buffers reused between tiles
and a fused instance norm. Everything else (training, CUDA, autocast) uses the modules below,
concatenating skips with ``torch.cat`` so that autograd sees no in-place writes; float32
training of one sample on the CPU convolves through oneDNN (``cpu_train_conv.py``). The nodes
are in ``network_blocks.py``, the choice of convolution kernel in ``conv_dispatch.py``.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, ContextManager, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UNetPlusPlusError
from . import cpu_inference
from .conv_dispatch import _global_hooks, _plain
from .conv_dispatch import plain_modules as plain_modules  # re-exported (callers import it here)
from .network_blocks import LEAKY_SLOPE, DecoderNode, EncoderNode, _SkipRow
from .network_shape import LEVELS, features_problem

MAX_DEPTH = LEVELS - 1
NORMS = ("instance", "batch", "none")

Depth = Union[int, str]


def node_indices(depth: int = MAX_DEPTH) -> list[tuple[int, int]]:
    """(i, j) of every node a depth-``depth`` sub-network uses: those with i + j <= depth."""
    return [(i, j) for i in range(LEVELS) for j in range(LEVELS - i) if i + j <= depth]


def ensemble_logits(heads: Sequence[Tensor]) -> Tensor:
    """log(mean of the heads' softmax), float32 (N, K, z, y, x), from head logits (N, K, ...):
    a softmax of it is the average of the heads' probabilities (the ``"ensemble"`` depth)."""
    log_probs = torch.stack([F.log_softmax(h.float(), dim=1) for h in heads])
    return torch.logsumexp(log_probs, dim=0) - math.log(len(heads))


def _validate(in_channels: int, out_channels: int, features: Sequence[int], norm: str, dropout):
    problem = features_problem(features)
    if problem is not None:
        raise ValueError(f"features {problem}")
    if in_channels < 1 or out_channels < 1:
        raise ValueError(
            f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}"
        )
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


class UNetPlusPlus3D(nn.Module):
    """3D UNet++ (Zhou et al., IEEE TMI 2019): nodes ``conv_i_j``, heads ``final_conv_0_j``.

    ``features`` = (f0, f1, f2, f3, f4, f_final): X(i, j) has f_i channels, X(0, 4) has f_final.
    Up(X(i+1, ·)) keeps f1 channels into row 0 and halves f_{i+1} into rows 1..3 (as MONAI).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        features: Sequence[int] = (16, 32, 64, 128, 256, 16),
        norm: str = "instance",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        features = tuple(int(f) for f in features)
        _validate(in_channels, out_channels, features, norm, dropout)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.features = features
        self.norm = norm
        self.dropout = float(dropout)

        for i in range(LEVELS):
            node_in = in_channels if i == 0 else features[i - 1]
            node = EncoderNode(node_in, features[i], norm, self.dropout, pool=i > 0)
            self.add_module(f"conv_{i}_0", node)
        for i, j in node_indices():
            if j == 0:
                continue
            self.add_module(
                f"conv_{i}_{j}",
                DecoderNode(
                    skip_channels=j * features[i],
                    below_channels=features[i + 1],
                    up_channels=self.up_channels(i),
                    out_channels=self.node_channels(i, j),
                    norm=norm,
                    dropout=self.dropout,
                ),
            )
        for j in range(1, LEVELS):
            head = nn.Conv3d(self.node_channels(0, j), out_channels, kernel_size=1)
            self.add_module(f"final_conv_0_{j}", head)

    # ---- structure -------------------------------------------------------------------------

    def node_channels(self, i: int, j: int) -> int:
        """Channels of X(i, j)."""
        return self.features[LEVELS] if (i, j) == (0, MAX_DEPTH) else self.features[i]

    def up_channels(self, i: int) -> int:
        """Channels of Up(X(i+1, ·)) entering row i (MONAI ``UpCat`` halves below row 0)."""
        return self.features[1] if i == 0 else self.features[i + 1] // 2

    def node(self, i: int, j: int) -> nn.Module:
        return getattr(self, f"conv_{i}_{j}")

    def head(self, j: int) -> nn.Module:
        return getattr(self, f"final_conv_0_{j}")

    # ---- manifest ------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The manifest's ``"network"`` entry (JSON-serialisable)."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "features": list(self.features),
            "norm": self.norm,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> UNetPlusPlus3D:
        """Build the network from a manifest ``"network"`` entry; bad entries are user errors."""
        known = {"in_channels", "out_channels", "features", "norm", "dropout"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise UNetPlusPlusError(
                f"The model's network entry has unknown key(s) {unknown}; allowed: {sorted(known)}."
            )
        try:
            return cls(**config)
        except (TypeError, ValueError) as error:
            raise UNetPlusPlusError(f"The model's network entry is invalid: {error}.") from error

    # ---- forward -------------------------------------------------------------------------

    def forward(self, x: Tensor, depth: Depth = MAX_DEPTH) -> Tensor:
        """Logits (N, K, z, y, x) of head ``depth`` (1..4), built from nodes i + j <= depth only.

        ``depth="ensemble"`` runs the full network and returns log(mean of the four heads'
        softmax), so a downstream softmax yields the averaged probabilities.
        """
        if depth == "ensemble":
            return ensemble_logits(self._run(x, MAX_DEPTH, heads=range(1, LEVELS)))
        k = self._check_depth(depth)
        return self._run(x, k, heads=(k,))[0]

    def forward_heads(self, x: Tensor, depth: int = MAX_DEPTH) -> list[Tensor]:
        """Logits of heads 1..depth (deep supervision), from one pass over nodes i + j <= depth."""
        k = self._check_depth(depth)
        return self._run(x, k, heads=range(1, k + 1))

    @staticmethod
    def _check_depth(depth: Depth) -> int:
        if isinstance(depth, bool) or depth not in range(1, LEVELS):
            raise ValueError(f"depth must be 1..{MAX_DEPTH} or 'ensemble', got {depth!r}")
        return int(depth)

    def _check_input(self, x: Tensor, depth: int) -> list[tuple[int, ...]]:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input (N, {self.in_channels}, z, y, x), got {tuple(x.shape)}"
            )
        shapes = [tuple(x.shape[2:])]
        for _ in range(depth):
            shapes.append(tuple(s // 2 for s in shapes[-1]))
        coarsest = shapes[-1]
        if min(coarsest) < 1:
            raise ValueError(
                f"input {tuple(x.shape[2:])} is too small for depth {depth}: "
                f"every side needs at least {2**depth} voxels"
            )
        if self.norm == "instance" and math.prod(coarsest) < 2:
            raise ValueError(
                f"input {tuple(x.shape[2:])} is too small for depth {depth} with instance norm: "
                f"level {depth} would hold one voxel; make one side at least {2 ** (depth + 1)}"
            )
        return shapes

    def _run(self, x: Tensor, depth: int, heads: Sequence[int]) -> list[Tensor]:
        """Compute nodes with i + j <= depth diagonal by diagonal; return the asked heads."""
        self._check_input(x, depth)
        if self._fast_cpu_path(x):
            return cpu_inference.run(self, x, depth, heads, slope=LEAKY_SLOPE)
        rows = [_SkipRow() for _ in range(depth + 1)]
        outputs = []
        encoded = x
        for d in range(depth + 1):
            encoded = self.node(d, 0)(encoded)
            rows[d].skips.append(encoded)
            below = encoded
            for i in range(d - 1, -1, -1):  # X(i, d - i), walking up the diagonal
                below = self.node(i, d - i)(below, rows[i])
                rows[i].skips.append(below)
            if d in heads:
                outputs.append(self.head(d)(below))
        return outputs

    def _fast_cpu_path(self, x: Tensor) -> bool:
        """CPU float32 inference in eval mode goes through ``cpu_inference`` (same result),
        unless forward hooks watch the modules, which that path does not call."""
        if self.training or _plain() or not cpu_inference.available(x) or _global_hooks():
            return False
        tree = _module_tree(self)  # flat and cached: ``modules()`` cost ~0.3 ms a tile
        if any(m._forward_hooks or m._forward_pre_hooks for m in tree.modules):
            return False
        # eval batch norm needs its running statistics
        return all(m.running_var is not None for m in tree.batch_norms)

    @staticmethod
    def reuse_buffers(workspace: Any = None) -> ContextManager[Any]:
        """Within this block, CPU inference keeps its buffers and packed weights between calls.

        Wrap a sliding window in it: every tile of the same shape then reuses the memory of the
        previous one instead of paying page faults for fresh buffers (docs/BENCHMARK.md).
        ``workspace``: the one an earlier block yielded, to keep them across blocks too.
        """
        return cpu_inference.reuse_buffers(workspace)


class _ModuleTree:
    """``model.modules()`` as a flat tuple, with what it was built from: each module's children.

    Walking the tree through ``modules()`` (nested generators) cost ~0.3 ms per tile, 2-3 % of a
    nodule tile on two threads; a flat tuple is checked for hooks in a few microseconds. The
    snapshot makes it exact: any child added, replaced or removed anywhere (``setattr``,
    ``del``, a container's insert) changes some module's ``_modules`` and forces a new walk.
    """

    def __init__(self, model: nn.Module) -> None:
        self.modules = tuple(model.modules())
        self.parents = tuple((m, tuple(m._modules.values())) for m in self.modules if m._modules)
        self.leaves = tuple(m for m in self.modules if not m._modules)
        self.batch_norms = tuple(m for m in self.modules if isinstance(m, nn.BatchNorm3d))

    def current(self) -> bool:
        """Whether no module of the tree gained, lost or swapped a child since the walk."""
        if any(m._modules for m in self.leaves):
            return False
        return all(tuple(m._modules.values()) == kids for m, kids in self.parents)


_TREES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _module_tree(model: nn.Module) -> _ModuleTree:
    """``model``'s cached :class:`_ModuleTree`, walked again when its structure changed."""
    tree = _TREES.get(model)
    if tree is None or not tree.current():
        tree = _TREES[model] = _ModuleTree(model)
    return tree


def count_flops(model: UNetPlusPlus3D, shape: Sequence[int], depth: Depth = MAX_DEPTH) -> int:
    """FLOPs of one ``model(x, depth)`` call of the network's graph (``torch.utils.flop_counter``).

    ``shape`` is (N, C, z, y, x), or (z, y, x) for one sample with ``model.in_channels``. The
    count runs an identical network on the meta device: no memory, no arithmetic, and the
    model itself (weights, batch-norm statistics) is untouched. It is the nominal count of
    the paper's graph, whichever kernels a device then uses to compute it.
    """
    from torch.utils.flop_counter import FlopCounterMode

    shape = tuple(shape)
    if len(shape) == 3:
        shape = (1, model.in_channels, *shape)
    with torch.device("meta"):
        twin = UNetPlusPlus3D(**model.config()).eval()
        x = torch.zeros(shape)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        twin(x, depth)
    return int(counter.get_total_flops())
