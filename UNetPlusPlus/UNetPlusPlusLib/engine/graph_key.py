"""The graph cache's export key, without importing torch (``onnx_export`` re-exports it).

``<cache>/graphs/<weights sha256>/<export key>/``: the key holds what, besides the weights,
decides an exported graph: the export format, the ONNX opset and torch's version.
"""

from __future__ import annotations

OPSET = 17
#: Bump when the export changes (graph layout, ensemble handling): the cache key holds it, the
#: opset and the torch version, so an upgrade never reuses a graph exported by older code.
EXPORT_FORMAT = 2  # 2: the odd-size pad is in the graph (any tile size runs)


def export_key(torch_version: str, export_format: int = EXPORT_FORMAT, opset: int = OPSET) -> str:
    """``"f2-opset17-torch2.13.0"`` for torch ``"2.13.0+cpu"`` (the local tag dropped)."""
    return f"f{export_format}-opset{opset}-torch{torch_version.split('+')[0]}"
