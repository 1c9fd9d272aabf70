"""Data augmentation on the CPU: flips, small rotations, scaling, intensity shift and noise.

Random parameters come from one ``numpy.random.Generator`` so a seed reproduces every batch.
Rotations and scaling are applied in physical space (the voxel spacing is taken into account)
with one ``grid_sample`` per patch, read from a crop just large enough to hold the rotated tile,
so no zero corners appear; for strongly anisotropic spacing (> 3:1) the rotation stays in the
fine plane, as nnU-Net does. Labels are resampled with nearest neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .sampler import PatchSampler, crop


@dataclass
class AugmentConfig:
    """Probabilities and ranges; ``enabled=False`` gives plain random crops."""

    enabled: bool = True
    flip_probability: float = 0.5  # per axis
    rotate_probability: float = 0.2
    rotate_degrees: float = 15.0
    scale_probability: float = 0.2
    scale_range: tuple[float, float] = (0.85, 1.25)
    intensity_probability: float = 0.3
    intensity_scale: float = 0.1  # multiply by 1 +- this
    intensity_shift: float = 0.1  # add +- this (normalised units)
    noise_probability: float = 0.15
    noise_std: float = 0.05


def _rotation(angles: Sequence[float]) -> np.ndarray:
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def spatial_transform(
    rng: np.random.Generator, config: AugmentConfig, spacing_xyz: Sequence[float]
) -> Optional[np.ndarray]:
    """A (3, 3) voxel-space matrix (x, y, z) mapping tile offsets to source offsets, or None."""
    rotate = rng.random() < config.rotate_probability
    scale = rng.random() < config.scale_probability
    angles = rng.uniform(-1, 1, size=3) * np.deg2rad(config.rotate_degrees)
    zoom = rng.uniform(*config.scale_range)
    if not (rotate or scale):
        return None
    spacing = np.asarray(spacing_xyz, dtype=float)
    if not rotate:
        angles[:] = 0.0
    elif spacing.max() / spacing.min() > 3.0:
        keep = int(np.argmax(spacing))  # rotate only about the coarse axis
        angles[[a for a in range(3) if a != keep]] = 0.0
    physical = _rotation(angles) * (zoom if scale else 1.0)
    return np.diag(1.0 / spacing) @ physical @ np.diag(spacing)


def _warp(image: np.ndarray, labels: np.ndarray, matrix: np.ndarray, tile_zyx) -> tuple:
    """Sample a tile from a larger centred crop through ``matrix`` (voxel units, x, y, z)."""
    source_xyz = np.asarray(image.shape[1:][::-1], dtype=float)
    tile_xyz = np.asarray(tile_zyx[::-1], dtype=float)
    theta = np.zeros((1, 3, 4), dtype=np.float32)
    theta[0, :, :3] = np.diag(1.0 / source_xyz) @ matrix @ np.diag(tile_xyz)
    size = (1, image.shape[0], *tile_zyx)
    grid = F.affine_grid(torch.from_numpy(theta), list(size), align_corners=False)
    warped = F.grid_sample(
        torch.from_numpy(image)[None], grid, mode="bilinear", padding_mode="border",
        align_corners=False,
    )[0]  # fmt: skip
    label_tensor = torch.from_numpy(labels.astype(np.float32))[None, None]
    warped_labels = F.grid_sample(
        label_tensor, grid, mode="nearest", padding_mode="zeros", align_corners=False
    )[0, 0]
    return warped, warped_labels.round().to(torch.uint8)


def augmented_patch(
    sampler: PatchSampler,
    rng: np.random.Generator,
    config: AugmentConfig,
    spacing_xyz: Sequence[float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented training patch: image (C, *tile) float32 and labels (*tile) uint8."""
    request = sampler.request(rng)
    case = sampler.cases[request.case]
    tile = tuple(int(t) for t in sampler.tile)
    matrix = spatial_transform(rng, config, spacing_xyz) if config.enabled else None
    if matrix is None:
        image, labels = crop(case, request.start, tile)
        image_t, labels_t = torch.from_numpy(image), torch.from_numpy(labels)
    else:
        needed_xyz = np.abs(matrix) @ np.asarray(tile[::-1], dtype=float)
        margin = np.maximum(0, np.ceil((needed_xyz[::-1] - tile) / 2).astype(int) + 1)
        start = np.asarray(request.start) - margin
        image, labels = crop(case, start, np.asarray(tile) + 2 * margin)
        image_t, labels_t = _warp(image, labels, matrix, tile)
    if not config.enabled:
        return image_t, labels_t
    flips = [axis + 1 for axis in range(3) if rng.random() < config.flip_probability]
    if flips:
        image_t = torch.flip(image_t, dims=flips)
        labels_t = torch.flip(labels_t, dims=[a - 1 for a in flips])
    channels = image_t.shape[0]
    if rng.random() < config.intensity_probability:
        scale = 1.0 + rng.uniform(-1, 1, channels) * config.intensity_scale
        shift = rng.uniform(-1, 1, channels) * config.intensity_shift
        image_t = image_t * torch.tensor(scale, dtype=torch.float32).view(-1, 1, 1, 1)
        image_t = image_t + torch.tensor(shift, dtype=torch.float32).view(-1, 1, 1, 1)
    if rng.random() < config.noise_probability:
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        std = float(rng.uniform(0, config.noise_std))
        image_t = image_t + std * torch.randn(image_t.shape, generator=generator)
    return image_t.contiguous(), labels_t.contiguous()


def training_batch(
    sampler: PatchSampler,
    rng: np.random.Generator,
    batch_size: int,
    config: AugmentConfig,
    spacing_xyz: Sequence[float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch: images (B, C, *tile) float32 and labels (B, *tile) int64."""
    patches = [augmented_patch(sampler, rng, config, spacing_xyz) for _ in range(batch_size)]
    images = torch.stack([p[0] for p in patches])
    labels = torch.stack([p[1] for p in patches]).long()
    return images, labels
