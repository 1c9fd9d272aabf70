"""Patch sampling with foreground oversampling, and augmentation that keeps labels aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from UNetPlusPlusLib.training.augment import (
    AugmentConfig,
    augmented_patch,
    elastic_field,
    spatial_transform,
    training_batch,
)
from UNetPlusPlusLib.training.preprocess import PreprocessedCase, foreground_points
from UNetPlusPlusLib.training.sampler import PatchSampler, crop

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_case(shape=(40, 40, 40), box=(slice(20, 22), slice(5, 7), slice(30, 32))):
    labels = np.zeros(shape, dtype=np.uint8)
    labels[box] = 1
    image = np.linspace(0, 1, int(np.prod(shape)), dtype=np.float32).reshape(1, *shape)
    return PreprocessedCase(
        case_id="c",
        patient_id="c",
        image=image,
        labels=labels,
        foreground=foreground_points(labels, seed=0),
        pad_values=np.array([-1.0], dtype=np.float32),
    )


def _share_with_foreground(fraction: float, draws: int = 300) -> float:
    sampler = PatchSampler([make_case()], (16, 16, 16), foreground_fraction=fraction)
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(draws):
        request = sampler.request(rng)
        hits += bool(crop(sampler.cases[0], request.start, (16, 16, 16))[1].any())
    return hits / draws


def test_foreground_oversampling_finds_small_structures():
    assert _share_with_foreground(1.0) == 1.0
    assert _share_with_foreground(0.0) < 0.15  # a 2^3 cube in 40^3 is rarely hit by chance
    assert 0.4 < _share_with_foreground(0.5) < 0.7


def test_crop_pads_beyond_the_volume():
    case = make_case()
    image, labels = crop(case, (-4, 30, 36), (16, 16, 16))
    assert image.shape == (1, 16, 16, 16) and labels.shape == (16, 16, 16)
    assert np.all(image[:, :4] == -1.0) and np.all(image[:, :, 10:] == -1.0)
    assert np.array_equal(image[0, 4:, :10, :4], case.image[0, 0:12, 30:40, 36:40])


def test_patches_are_reproducible_from_the_seed():
    sampler = PatchSampler([make_case()], (16, 16, 16), foreground_fraction=0.5)
    config = AugmentConfig(rotate_probability=1.0, scale_probability=1.0, noise_probability=1.0)
    first = training_batch(sampler, np.random.default_rng(5), 3, config, (1.0, 1.0, 2.0))
    second = training_batch(sampler, np.random.default_rng(5), 3, config, (1.0, 1.0, 2.0))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert first[0].shape == (3, 1, 16, 16, 16) and first[1].dtype == torch.int64


def test_without_augmentation_a_patch_is_the_plain_crop():
    sampler = PatchSampler([make_case()], (16, 16, 16), foreground_fraction=1.0)
    image, labels = augmented_patch(
        sampler, np.random.default_rng(3), AugmentConfig(enabled=False), (1, 1, 1)
    )
    request = sampler.request(np.random.default_rng(3))
    expected = crop(sampler.cases[0], request.start, (16, 16, 16))
    assert np.array_equal(image.numpy(), expected[0])
    assert np.array_equal(labels.numpy(), expected[1])


@pytest.mark.parametrize("seed", range(4))
def test_rotation_scaling_and_flips_move_image_and_labels_together(seed):
    shape = (40, 40, 40)
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    ball = ((x - 20) ** 2 + (y - 18) ** 2 + ((z - 21) * 1.5) ** 2) <= 81
    case = make_case(shape, box=ball)
    case.image = ball.astype(np.float32)[None]  # the image shows exactly the label
    sampler = PatchSampler([case], (24, 24, 24), foreground_fraction=1.0)
    config = AugmentConfig(
        rotate_probability=1.0, scale_probability=1.0, intensity_probability=0.0,
        noise_probability=0.0, rotate_degrees=30.0, low_resolution_probability=0.0,
    )  # fmt: skip
    image, labels = augmented_patch(sampler, np.random.default_rng(seed), config, (1, 1, 1.5))
    agreement = ((image[0] > 0.5) == (labels == 1)).float().mean().item()
    assert agreement > 0.97
    assert labels.sum() > 50  # the structure is still in the patch


def test_strongly_anisotropic_spacing_rotates_in_plane_only():
    config = AugmentConfig(rotate_probability=1.0, scale_probability=0.0)
    for seed in range(5):
        matrix = spatial_transform(np.random.default_rng(seed), config, (0.7, 0.7, 5.0))
        assert matrix is not None
        assert matrix[2, 2] == pytest.approx(1.0)
        assert np.allclose(matrix[2, :2], 0) and np.allclose(matrix[:2, 2], 0)


def _ball_sampler(tile=(24, 24, 24)):
    shape = (40, 40, 40)
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    ball = ((x - 20) ** 2 + (y - 18) ** 2 + ((z - 21) * 1.5) ** 2) <= 81
    case = make_case(shape, box=ball)
    case.image = ball.astype(np.float32)[None]
    return PatchSampler([case], tile, foreground_fraction=1.0)


ONLY = dict(
    flip_probability=0.0, rotate_probability=0.0, scale_probability=0.0,
    intensity_probability=0.0, noise_probability=0.0, elastic_probability=0.0,
    gamma_probability=0.0, low_resolution_probability=0.0,
)  # fmt: skip


@pytest.mark.parametrize("seed", range(3))
def test_elastic_deformation_moves_image_and_labels_together(seed):
    sampler = _ball_sampler()
    config = AugmentConfig(**{**ONLY, "elastic_probability": 1.0, "elastic_mm": 3.0})
    image, labels = augmented_patch(sampler, np.random.default_rng(seed), config, (1, 1, 1.5))
    plain, plain_labels = augmented_patch(
        sampler, np.random.default_rng(seed), AugmentConfig(enabled=False), (1, 1, 1.5)
    )
    assert ((image[0] > 0.5) == (labels == 1)).float().mean().item() > 0.97
    assert not torch.equal(labels, plain_labels)  # the deformation changed the patch
    assert labels.sum() > 50


def test_elastic_field_is_smooth_in_mm_and_spares_the_coarse_axis():
    config = AugmentConfig(elastic_mm=4.0)
    field = elastic_field(np.random.default_rng(0), config, (0.7, 0.7, 5.0), (8, 32, 32))
    assert field.shape == (8, 32, 32, 3)
    assert np.all(field[..., 2] == 0)  # z is the coarse axis (5 mm): not displaced
    assert np.abs(field[..., 0]).max() > 1.0  # x: several 0.7 mm voxels
    neighbour_step = np.abs(np.diff(field[..., 0], axis=2)).max()
    assert neighbour_step < 0.5 * np.abs(field[..., 0]).max()  # smooth, not per-voxel noise


def test_gamma_keeps_each_channel_range_and_order():
    sampler = PatchSampler([make_case()], (16, 16, 16), foreground_fraction=0.0)
    config = AugmentConfig(**{**ONLY, "gamma_probability": 1.0, "gamma_range": (1.5, 1.5)})
    image, _ = augmented_patch(sampler, np.random.default_rng(2), config, (1, 1, 1))
    plain, _ = augmented_patch(
        sampler, np.random.default_rng(2), AugmentConfig(enabled=False), (1, 1, 1)
    )
    assert image.min().item() == pytest.approx(plain.min().item(), abs=1e-6)
    assert image.max().item() == pytest.approx(plain.max().item(), abs=1e-6)
    order = torch.argsort(plain.flatten())
    assert torch.all(torch.diff(image.flatten()[order]) >= -1e-6)  # monotonic
    assert not torch.allclose(image, plain)


def test_low_resolution_blurs_the_image_not_the_labels():
    sampler = _ball_sampler()
    config = AugmentConfig(
        **{**ONLY, "low_resolution_probability": 1.0, "low_resolution_zoom": (0.4, 0.4)}
    )
    image, labels = augmented_patch(sampler, np.random.default_rng(1), config, (1, 1, 1))
    plain, plain_labels = augmented_patch(
        sampler, np.random.default_rng(1), AugmentConfig(enabled=False), (1, 1, 1)
    )
    assert image.shape == plain.shape
    assert torch.equal(labels, plain_labels)
    between = ((image > 0.05) & (image < 0.95)).sum().item()
    assert between > 100  # edges are now partial-volume grey, as in a coarse scan
    assert ((image[0] > 0.5) == (labels == 1)).float().mean().item() > 0.9
