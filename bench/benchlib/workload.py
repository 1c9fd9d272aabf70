"""The shared workload: a synthetic CT-like volume and one set of MONAI weights for both engines."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

FEATURES = (16, 32, 64, 128, 256, 16)  # MONAI BasicUNetPlusPlus defaults (issue 6)
IN_CHANNELS = 1
OUT_CHANNELS = 2
TILE = 96
OVERLAP = 0.25


def synthetic_volume(shape_zyx: Sequence[int], seed: int = 0) -> np.ndarray:
    """A (1, z, y, x) float32 volume in [0, 1] with CT-like structure: a body ellipsoid,
    organ-sized blobs of different intensity, a smooth bias field and noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(
        *(np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape_zyx),
        indexing="ij",
        sparse=True,
    )
    body = (x / 0.9) ** 2 + (y / 0.75) ** 2 + (z / 1.1) ** 2 <= 1.0
    volume = np.where(body, 0.35, 0.0).astype(np.float32)
    for _ in range(12):
        centre = rng.uniform(-0.6, 0.6, 3).astype(np.float32)
        radii = rng.uniform(0.08, 0.3, 3).astype(np.float32)
        inside = (
            ((z - centre[0]) / radii[0]) ** 2
            + ((y - centre[1]) / radii[1]) ** 2
            + ((x - centre[2]) / radii[2]) ** 2
        ) <= 1.0
        volume[inside & body] = rng.uniform(0.2, 0.9)
    volume += 0.05 * (x + y + z) + rng.normal(0.0, 0.03, volume.shape).astype(np.float32)
    return np.clip(volume, 0.0, 1.0)[None].astype(np.float32)


def monai_network(features: Sequence[int] = FEATURES, seed: int = 0) -> torch.nn.Module:
    """MONAI's BasicUNetPlusPlus (3D, instance norm, deconv), randomly initialised with ``seed``."""
    from monai.networks.nets import BasicUNetPlusPlus

    torch.manual_seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):  # MONAI prints its feature list
        net = BasicUNetPlusPlus(
            spatial_dims=3,
            in_channels=IN_CHANNELS,
            out_channels=OUT_CHANNELS,
            features=tuple(features),
            deep_supervision=False,
        )
    return net.eval()


def save_weights(net: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(path))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def tile_count(shape_zyx: Sequence[int]) -> int:
    from UNetPlusPlusLib.engine.tiling import tile_boxes

    return len(tile_boxes(shape_zyx, (TILE,) * 3, OVERLAP))
