"""ONNX graphs of each pruned depth, cached by the weights' sha256 in the user cache.

``export_depth(model, depth, path)`` traces ``model(x, depth=depth)`` through the plain ``nn``
modules (``network.plain_modules``), so the graph holds only the nodes with i + j <= depth
(Zhou et al., IEEE TMI 2019, Sec. III-D) and its output is head ``depth`` of the full network.
The batch and the three spatial axes are dynamic: one graph serves every tile size, odd sizes
included (the network's pad of an odd size is recorded while tracing; ``EXPORT_FORMAT`` 2).

Cache layout: ``<cache>/graphs/<weights sha256>/L<k>.onnx`` (``ensemble.onnx``), where
``<cache>`` is ``$UNETPP_HOME`` or the platform cache folder (``~/.cache/unetpp``), beside the
model cache of ``model_search.user_cache_dir`` (``model_search.graphs_dir``). A graph is written
to a temporary file and renamed, so a crash never leaves a truncated graph behind; its record
``L<k>.onnx.json`` (digest, depth, weights sha256, export key: ``graph_record.py``) is written
beside it, and :func:`cached_graph` uses a cached graph only when it matches its record.
``unetpp models remove`` deletes a model's ``<sha256>`` folder (``model_remove``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor, nn

from .graph_key import EXPORT_FORMAT, OPSET
from .graph_key import export_key as _export_key
from .graph_record import (
    GraphRebuiltWarning,
    file_sha256,
    mismatch_notice,
    read_record,
    verified_sha256,
    write_record,
)
from .network import MAX_DEPTH, UNetPlusPlus3D, plain_modules

Depth = Union[int, str]


def depth_name(depth: Depth) -> str:
    """``"L2"`` for 2, ``"ensemble"`` for the ensemble (file names, bench rows)."""
    return "ensemble" if depth == "ensemble" else f"L{int(depth)}"


def graph_cache_dir(weights_sha256: str, root: Optional[Path] = None) -> Path:
    """The folder holding the exported and compiled graphs of one set of weights, for this
    export format, opset and torch version (``<root>/<sha256>/<export key>``)."""
    if root is None:
        from .model_search import graphs_dir

        root = graphs_dir()
    return Path(root) / weights_sha256 / export_key()


def export_key() -> str:
    """``"f2-opset17-torch2.13.0"``: what, besides the weights, decides the exported graph."""
    return _export_key(torch.__version__, EXPORT_FORMAT, OPSET)


def weights_digest(model: nn.Module) -> str:
    """sha256 of the model's parameters and buffers, for models not loaded from a manifest."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class _AtDepth(nn.Module):
    """``model(x, depth=k)`` as a one-argument module, which the exporter needs."""

    def __init__(self, model: UNetPlusPlus3D, depth: Depth) -> None:
        super().__init__()
        self.model = model
        self.depth = depth

    def forward(self, x: Tensor) -> Tensor:
        if self.depth != "ensemble":
            return self.model(x, depth=self.depth)
        # log(mean of the heads' softmax), as forward(x, "ensemble"), with an explicit
        # log-sum-exp: OpenVINO 2026.4 gives ONNX ReduceLogSumExp over axis 0 a scalar shape
        heads = self.model.forward_heads(x, depth=MAX_DEPTH)
        log_probs = torch.stack([torch.log_softmax(h, dim=1) for h in heads])
        top = log_probs.max(dim=0).values
        return top + torch.log(torch.exp(log_probs - top).sum(dim=0) / len(heads))


def export_depth(
    model: UNetPlusPlus3D, depth: Depth, path: Path, weights_sha256: Optional[str] = None
) -> Path:
    """Write the ONNX graph of ``model`` pruned to ``depth``: input ``x`` (N, C, z, y, x)
    float32, output ``logits`` (N, K, z, y, x), and its record (``graph_record``) for the
    weights ``weights_sha256`` (None: :func:`weights_digest`). Every side of the example tile
    is 32 voxels, enough for depth 4; the axes stay dynamic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, model.in_channels, 32, 32, 32)
    axes = {0: "n", 2: "z", 3: "y", 4: "x"}
    handle, temporary = tempfile.mkstemp(prefix=".export-", suffix=".onnx", dir=path.parent)
    os.close(handle)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), plain_modules(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape checks in Python
            torch.onnx.export(
                _AtDepth(model, depth),
                (example,),
                temporary,
                input_names=["x"],
                output_names=["logits"],
                dynamic_axes={"x": axes, "logits": axes},
                opset_version=OPSET,
                dynamo=False,
            )
        digest, size = file_sha256(Path(temporary)), os.path.getsize(temporary)
        os.replace(temporary, path)
        weights = weights_sha256 or weights_digest(model)
        write_record(path, depth, weights, export_key(), digest, size)
    finally:
        model.train(was_training)
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def cached_graph(
    model: UNetPlusPlus3D, depth: Depth, cache_dir: Path, weights_sha256: str
) -> tuple[Path, str]:
    """The graph of ``depth`` in ``cache_dir`` and its sha256 (hex). A cached graph is used
    only when it matches its record (``graph_record.verified_sha256``); otherwise, or when
    missing, it is exported (a cached one with one GraphRebuiltWarning). Raises OSError when
    the graph cannot be written, torch's errors when it cannot be exported."""
    path = Path(cache_dir) / f"{depth_name(depth)}.onnx"
    key = export_key()
    if path.exists():
        digest = verified_sha256(path, depth, weights_sha256, key)
        if digest is not None:
            return path, digest
        had_record = bool(read_record(path))
        warnings.warn(mismatch_notice(depth, had_record), GraphRebuiltWarning, stacklevel=2)
    export_depth(model, depth, path, weights_sha256)
    digest = verified_sha256(path, depth, weights_sha256, key)
    if digest is None:  # replaced under us by another process's export: its record follows
        digest = file_sha256(path)
    return path, digest
