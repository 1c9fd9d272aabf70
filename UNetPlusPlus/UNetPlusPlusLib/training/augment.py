"""Data augmentation on the CPU: spatial (rotation, scaling, elastic deformation, mirroring)
and intensity (scale and shift, gamma, simulated low resolution, Gaussian noise).

Random parameters come from one ``numpy.random.Generator`` so a seed reproduces every batch.
Rotations, scaling and the elastic deformation are applied in physical space (the voxel spacing
is taken into account) with one ``grid_sample`` per patch, read from a crop just large enough to
hold the deformed tile, so no zero corners appear; for strongly anisotropic spacing (> 3:1) the
rotation stays in the fine plane and the coarse axis is neither deformed nor blurred, as
nnU-Net does. Labels are resampled with nearest neighbour. The elastic field is a coarse random
displacement grid upsampled trilinearly (a smooth field, Simard et al., ICDAR 2003); gamma and
the low-resolution simulation follow nnU-Net's default augmentation (Isensee et al., Nature
Methods 2021): gamma on each channel rescaled to [0, 1] and back, and a down- then up-sampling of
the image (not the labels) by a random factor per axis.
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
    elastic_probability: float = 0.2
    elastic_mm: float = 4.0  # standard deviation of the coarse displacement, in mm
    elastic_grid: int = 4  # control points per axis of the coarse displacement grid
    gamma_probability: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.5)
    low_resolution_probability: float = 0.2
    low_resolution_zoom: tuple[float, float] = (0.5, 1.0)  # kept fraction of the resolution


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
    keep = _coarse_axis(spacing)
    if not rotate:
        angles[:] = 0.0
    elif keep is not None:  # rotate only about the coarse axis
        angles[[a for a in range(3) if a != keep]] = 0.0
    physical = _rotation(angles) * (zoom if scale else 1.0)
    return np.diag(1.0 / spacing) @ physical @ np.diag(spacing)


def _coarse_axis(spacing_xyz: Sequence[float]) -> Optional[int]:
    """The x/y/z index of the coarse axis when the spacing is anisotropic beyond 3:1, else None."""
    spacing = np.asarray(spacing_xyz, dtype=float)
    return int(np.argmax(spacing)) if spacing.max() / spacing.min() > 3.0 else None


def elastic_field(
    rng: np.random.Generator, config: AugmentConfig, spacing_xyz: Sequence[float], tile_zyx
) -> np.ndarray:
    """A smooth displacement field (z, y, x, 3) in voxels (x, y, z order in the last axis).

    A ``config.elastic_grid``^3 grid of Gaussian displacements (standard deviation
    ``config.elastic_mm`` in mm, converted to voxels per axis) upsampled trilinearly to the tile;
    the coarse axis of a strongly anisotropic spacing is not displaced.
    """
    spacing = np.asarray(spacing_xyz, dtype=float)
    points = max(2, int(config.elastic_grid))
    coarse = (
        rng.normal(0.0, 1.0, size=(3, points, points, points))
        * (config.elastic_mm / spacing)[:, None, None, None]
    )
    axis = _coarse_axis(spacing_xyz)
    if axis is not None:
        coarse[axis] = 0.0
    field = F.interpolate(
        torch.from_numpy(coarse.astype(np.float32))[None], size=tuple(int(t) for t in tile_zyx),
        mode="trilinear", align_corners=True,
    )[0]  # fmt: skip
    return field.permute(1, 2, 3, 0).numpy()


def _warp(
    image: np.ndarray,
    labels: np.ndarray,
    matrix: np.ndarray,
    tile_zyx,
    displacement: Optional[np.ndarray] = None,
) -> tuple:
    """Sample a tile from a larger centred crop through ``matrix`` (voxel units, x, y, z), plus
    an optional displacement field (z, y, x, 3) in source voxels."""
    source_xyz = np.asarray(image.shape[1:][::-1], dtype=float)
    tile_xyz = np.asarray(tile_zyx[::-1], dtype=float)
    theta = np.zeros((1, 3, 4), dtype=np.float32)
    theta[0, :, :3] = np.diag(1.0 / source_xyz) @ matrix @ np.diag(tile_xyz)
    size = (1, image.shape[0], *tile_zyx)
    grid = F.affine_grid(torch.from_numpy(theta), list(size), align_corners=False)
    if displacement is not None:  # voxels -> grid_sample's [-1, 1] units, per axis
        scale = torch.from_numpy((2.0 / source_xyz).astype(np.float32))
        grid = grid + torch.from_numpy(displacement)[None] * scale
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
    displacement = None
    if config.enabled and rng.random() < config.elastic_probability:
        displacement = elastic_field(rng, config, spacing_xyz, tile)
        matrix = np.eye(3) if matrix is None else matrix
    if matrix is None:
        image, labels = crop(case, request.start, tile)
        image_t, labels_t = torch.from_numpy(image), torch.from_numpy(labels)
    else:
        needed_xyz = np.abs(matrix) @ np.asarray(tile[::-1], dtype=float)
        if displacement is not None:
            needed_xyz = needed_xyz + 2 * np.abs(displacement).reshape(-1, 3).max(axis=0)
        margin = np.maximum(0, np.ceil((needed_xyz[::-1] - tile) / 2).astype(int) + 1)
        start = np.asarray(request.start) - margin
        image, labels = crop(case, start, np.asarray(tile) + 2 * margin)
        image_t, labels_t = _warp(image, labels, matrix, tile, displacement)
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
    if rng.random() < config.gamma_probability:
        image_t = _gamma(image_t, rng.uniform(*config.gamma_range, size=channels))
    if rng.random() < config.low_resolution_probability:
        image_t = _low_resolution(image_t, rng, config, spacing_xyz)
    if rng.random() < config.noise_probability:
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        std = float(rng.uniform(0, config.noise_std))
        image_t = image_t + std * torch.randn(image_t.shape, generator=generator)
    return image_t.contiguous(), labels_t.contiguous()


def _gamma(image: torch.Tensor, gammas: np.ndarray) -> torch.Tensor:
    """Each channel of ``image`` (C, z, y, x) rescaled to [0, 1], raised to its gamma, and
    rescaled back to its own range (nnU-Net's GammaTransform without inversion)."""
    out = torch.empty_like(image)
    for channel, gamma in enumerate(gammas):
        values = image[channel]
        low, high = values.min(), values.max()
        span = float(high - low)
        if span <= 1e-8:
            out[channel] = values
            continue
        out[channel] = ((values - low) / span).clamp(0, 1).pow(float(gamma)) * span + low
    return out


def _low_resolution(
    image: torch.Tensor, rng: np.random.Generator, config: AugmentConfig, spacing_xyz
) -> torch.Tensor:
    """``image`` (C, z, y, x) down-sampled by a random factor per axis (area average) and
    up-sampled back trilinearly: a scan acquired at a coarser resolution. The coarse axis of a
    strongly anisotropic spacing keeps its resolution."""
    shape = np.asarray(image.shape[1:])
    zoom_zyx = rng.uniform(*config.low_resolution_zoom, size=3)
    axis = _coarse_axis(spacing_xyz)
    if axis is not None:
        zoom_zyx[2 - axis] = 1.0
    small = tuple(int(v) for v in np.maximum(1, np.round(shape * zoom_zyx)))
    reduced = F.interpolate(image[None], size=small, mode="area")
    restored = F.interpolate(reduced, size=tuple(int(v) for v in shape), mode="trilinear")
    return restored[0]


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
