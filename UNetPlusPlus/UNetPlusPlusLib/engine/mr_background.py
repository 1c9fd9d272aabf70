"""Multi-channel MR models' background and duplicate checks: a background of exactly 0 and
no two channels that are the same image up to scale (docs/INPUT_CHECKS_MR.md, "Background and
near-duplicate MR channels"). Called through :mod:`.sanity` (``check_model_samples``)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import UNetPlusPlusError

#: An MR channel of a zero-background model (:func:`needs_zero_background`) with less than this
#: share of its sample exactly 0 is refused: the 19 shared BraTS cases hold 76.4 % to 87.8 %
#: (``scripts/mr_background_margins.py``); background at 1, noise or an offset gives ~0 %.
MR_MIN_ZERO_SHARE = 0.01
#: Of the zero voxels of such a channel's sample, at least this share must have a zero next
#: sample voxel (a few voxels further along the row): a zero background is one region, so the
#: 19 shared BraTS cases hold 0.988 or more, while integer-rounded noise in the background
#: (``round(|N(0, s)|)``, s = 0.7..10, which keeps 3-44 % exact zeros) gives 0.05-0.52.
MR_MIN_ZERO_CONTIGUITY = 0.9
#: An image smaller than this (ml) cannot hold a whole adult brain (the 19 shared BraTS cases:
#: 1080-1730 ml non-zero): a background refusal then says it looks like a crop, whose inside
#: has no 0 background (a 24-64 mm cube around a tumour, tester 21), rather than only blaming
#: the skull-stripping.
MIN_WHOLE_BRAIN_ML = 600.0
#: Voxels of the sample that find its most frequent value (0 for a zero background).
MODE_SAMPLE_VOXELS = 200_000
#: Two channels whose Spearman correlation inside the joint non-zero mask is at least this are
#: the same image up to scale (FLAIR x 1000 given as T1ce: 1.000); the largest between two
#: different sequences of the 19 shared BraTS cases is 0.780 (Brats18_TCIA02_135_1).
NEAR_DUPLICATE_RHO = 0.98


def needs_zero_background(manifest) -> bool:
    """Whether the model's MR normalisation and non-zero crop rely on a background of exactly
    0: every channel normalised as ``"mr"`` and the manifest's ``inference.crop_nonzero`` on
    (the default; ``nonzero_crop.crop_enabled`` without a run's override)."""
    from .nonzero_crop import crop_enabled

    return crop_enabled(manifest)


def check_zero_background(
    samples: Sequence[np.ndarray], channel_names: Sequence[str], image_ml: float = 0.0
) -> None:
    """Refuse a channel whose sample (``channel_samples``, strided) does not show a background
    of exactly 0: less than :data:`MR_MIN_ZERO_SHARE` of it at 0; a most frequent value other
    than 0 (a background of 1 with a few zero slices); zeros scattered as in noise (less than
    :data:`MR_MIN_ZERO_CONTIGUITY` of them followed by another 0). ``image_ml``: the image's
    volume (ml; 0: unknown); under :data:`MIN_WHOLE_BRAIN_ML` the error adds that it may be a
    crop. Raises UNetPlusPlusError naming the channel."""
    advice = (
        "this model needs skull-stripped MR with the background set to exactly 0; an offset, "
        "noise or a background of another value gives false tumour along the brain edge."
    )
    if 0 < image_ml < MIN_WHOLE_BRAIN_ML:
        advice += (
            f" The image is only {image_ml:.0f} ml, less than a whole brain: if it is a crop, "
            "give the whole skull-stripped image (its intensities are normalised over the "
            "brain) and limit the region with --roi (Slicer: the ROI) instead."
        )
    for sample, name in zip(samples, channel_names):
        zero = sample == 0
        share = float(np.count_nonzero(zero)) / max(1, sample.size)
        if share < MR_MIN_ZERO_SHARE:
            raise UNetPlusPlusError(
                f"Input '{name}' has {share:.2%} of its voxels exactly 0 (at least "
                f"{MR_MIN_ZERO_SHARE:.0%} needed): {advice}"
            )
        values, counts = np.unique(
            sample[:: max(1, sample.size // MODE_SAMPLE_VOXELS)], return_counts=True
        )
        mode = values[int(np.argmax(counts))]
        if mode != 0 and counts.max() > counts[values == 0].sum():
            raise UNetPlusPlusError(
                f"Input '{name}': its most frequent value is {float(mode):.4g}, not 0, so its "
                f"background is not 0: {advice}"
            )
        together = float(np.count_nonzero(zero[1:] & zero[:-1])) / max(
            1, np.count_nonzero(zero[:-1])
        )
        if together < MR_MIN_ZERO_CONTIGUITY:
            raise UNetPlusPlusError(
                f"Input '{name}': its zero voxels are scattered as in noise (only "
                f"{together:.0%} lie next to another 0; a zero background gives "
                f"{MR_MIN_ZERO_CONTIGUITY:.0%} or more): {advice}"
            )


def check_near_duplicates(spearman: np.ndarray, channel_names: Sequence[str]) -> None:
    """Refuse two channels whose Spearman correlation (``spearman``, (C, C), inside the joint
    non-zero mask, ``channel_order.fingerprint``) is at least :data:`NEAR_DUPLICATE_RHO`.
    Raises UNetPlusPlusError naming both."""
    count = len(spearman)
    for a in range(count):
        for b in range(a + 1, count):
            if spearman[a, b] >= NEAR_DUPLICATE_RHO:
                raise UNetPlusPlusError(
                    f"Input channels '{channel_names[a]}' and '{channel_names[b]}' are the same "
                    f"image up to scale (rank correlation {spearman[a, b]:.3f}); give each "
                    "channel its own sequence."
                )
