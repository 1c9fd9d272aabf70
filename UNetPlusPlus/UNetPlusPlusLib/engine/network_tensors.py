"""The tensors of a UNet++ network (names, shapes, floating or not) from its manifest entry,
without torch: for ``unetpp models list``, which must stay fast (:mod:`.weights_status`).

The network itself (:class:`.network.UNetPlusPlus3D`) is the reference: the test
``Testing/test_models_status.py`` compares :func:`expected_tensors` with its ``state_dict()``
(built on torch's meta device) for every normalisation and several widths.
"""

from __future__ import annotations

from typing import Any

LEVELS = 5  # network.LEVELS (network.py imports torch)
DEFAULT_FEATURES = (16, 32, 64, 128, 256, 16)  # UNetPlusPlus3D's default

#: name -> (shape, floating)
Tensors = dict[str, tuple[tuple[int, ...], bool]]


def expected_tensors(config: dict[str, Any]) -> Tensors:
    """The ``state_dict`` of ``UNetPlusPlus3D.from_config(config)``: tensor name -> (shape,
    whether it is floating). Raises ValueError for an entry the network refuses (unknown key,
    norm, or features that are not six positive integers)."""
    unknown = sorted(set(config) - {"in_channels", "out_channels", "features", "norm", "dropout"})
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}")
    features = tuple(config.get("features", DEFAULT_FEATURES))
    norm = config.get("norm", "instance")
    channels_in, channels_out = (
        int(config.get("in_channels", 1)),
        int(config.get("out_channels", 2)),
    )
    if len(features) != LEVELS + 1 or any(int(f) != f or f < 1 for f in features):
        raise ValueError(f"features needs {LEVELS + 1} positive integers, got {list(features)}")
    if any(features[i] < 2 for i in range(2, LEVELS)):
        raise ValueError(f"features f2..f4 must be >= 2, got {list(features)}")
    if norm not in ("instance", "batch", "none") or min(channels_in, channels_out) < 1:
        raise ValueError(f"norm {norm!r}, in_channels {channels_in}, out_channels {channels_out}")
    if not 0.0 <= float(config.get("dropout", 0.0)) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {config.get('dropout')}")
    f = [int(v) for v in features]

    def node_channels(i: int, j: int) -> int:
        return f[LEVELS] if (i, j) == (0, LEVELS - 1) else f[i]

    tensors: Tensors = {}
    for i in range(LEVELS):
        _node(tensors, f"conv_{i}_0", channels_in if i == 0 else f[i - 1], f[i], norm)
    for i in range(LEVELS):
        for j in range(1, LEVELS - i):
            up = f[1] if i == 0 else f[i + 1] // 2  # UNetPlusPlus3D.up_channels
            _node(tensors, f"conv_{i}_{j}", j * f[i] + up, node_channels(i, j), norm)
            tensors[f"conv_{i}_{j}.up.weight"] = ((f[i + 1], up, 2, 2, 2), True)
            tensors[f"conv_{i}_{j}.up.bias"] = ((up,), True)
    for j in range(1, LEVELS):
        tensors[f"final_conv_0_{j}.weight"] = ((channels_out, node_channels(0, j), 1, 1, 1), True)
        tensors[f"final_conv_0_{j}.bias"] = ((channels_out,), True)
    return tensors


def _node(tensors: Tensors, name: str, channels_in: int, channels_out: int, norm: str) -> None:
    """H: two (3x3x3 convolution, normalisation) blocks ``conv_0``, ``conv_1``."""
    for block, width in (("conv_0", channels_in), ("conv_1", channels_out)):
        prefix = f"{name}.{block}"
        tensors[f"{prefix}.conv.weight"] = ((channels_out, width, 3, 3, 3), True)
        tensors[f"{prefix}.conv.bias"] = ((channels_out,), True)
        if norm in ("instance", "batch"):  # InstanceNorm3d(affine=True), BatchNorm3d
            tensors[f"{prefix}.norm.weight"] = ((channels_out,), True)
            tensors[f"{prefix}.norm.bias"] = ((channels_out,), True)
        if norm == "batch":
            tensors[f"{prefix}.norm.running_mean"] = ((channels_out,), True)
            tensors[f"{prefix}.norm.running_var"] = ((channels_out,), True)
            tensors[f"{prefix}.norm.num_batches_tracked"] = ((), False)
