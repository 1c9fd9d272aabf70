"""Patch sampling with foreground oversampling, and augmentation that keeps labels aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from UNetPlusPlusLib.training.augment import (
    AugmentConfig,
    augmented_patch,
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
        noise_probability=0.0, rotate_degrees=30.0,
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
