"""Sequence-order check of multi-channel MR inputs (numpy only: no torch, no Slicer).

A model trained on FLAIR, T1, T1ce, T2 gives a confident but wrong segmentation when the
volumes come in another order. Each MR sequence has its own contrast, so the channels of a
skull-stripped case carry a **fingerprint**: inside the voxels that are non-zero in every
channel (the brain), the C x C Spearman (rank) correlations between the channels and the
skewness of each channel. The manifest stores the mean and standard deviation of that
fingerprint over the model's training cases (``inference.channel_fingerprint``,
``scripts/channel_fingerprint.py``). The input's fingerprint is compared with it under every
order of its channels (C! orders, 24 for four channels): ``distance`` is the mean squared
z-score of the features. ``gap`` = distance of the order given minus the best distance of any
other order; a clear positive gap means another order fits the model's training data better.

Decision (thresholds from the study of docs/INPUT_CHECKS_MR.md, 18 BraTS 2018 cases and one
BRATS 2012 case, every one of the 23 wrong orders of each):

- gap > :data:`REFUSE_GAP` and the best order fits like a training case
  (distance <= :data:`MAX_FIT`): refused, naming which input looks like which sequence;
- gap > :data:`WARN_GAP` otherwise: a warning;
- a reference with a ``contrast_pair`` [pre, post] (T1 and T1ce): their enhancement asymmetry
  (:mod:`.contrast_pair`) below its refusal threshold is refused too (the fingerprint fitting
  like a training case), below its warning threshold a warning: the fingerprint alone refuses
  a T1 <-> T1ce swap on only 8 of the 19 study cases;
- even the best order fits worse than :data:`MAX_FIT`: a warning that the order could not be
  checked (the volumes do not look like the model's training data);
- no reference in the manifest, fewer than :data:`MIN_VOXELS` joint non-zero voxels in the
  sample, a single channel or more than :data:`MAX_CHANNELS`: no check.

The samples are the strided samples of :mod:`.sanity` (``channel_samples``), so the
whole-array and the streamed (``streamed_checks``) paths decide on the same voxels; the check
of a manifest and its arrays is ``sanity.check_sequence_order`` (this module imports nothing
of the engine but the error type).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from ..errors import UNetPlusPlusError
from .contrast_pair import asymmetry_matrix, pair_finding

# FINGERPRINT_VERSION: the fingerprint format written into the manifest
from .manifest_options import FINGERPRINT_VERSION
from .manifest_options import parse_fingerprint as parse_reference  # noqa: F401 - former home

if TYPE_CHECKING:
    from .manifest import ModelManifest

#: Voxels of each channel's sample searched for the joint non-zero mask (a strided part).
MASK_VOXELS = 250_000
#: Joint non-zero voxels used for the ranks (a strided part of the mask beyond this).
RANK_VOXELS = 50_000
#: Fewer joint non-zero voxels than this in the sample: no check (nothing to compare).
MIN_VOXELS = 1000
#: More channels than this: no check (C! orders).
MAX_CHANNELS = 6
#: Floor on a feature's reference standard deviation (no feature divides by ~0).
STD_FLOOR = 0.05
#: Gap (mean squared z-score) above which a non-identity order is "clearly" better: refused.
#: The worst correctly ordered case of the study had gap -0.11 (leave-one-out reference).
REFUSE_GAP = 1.0
#: Gap above which the user is warned that the order may be wrong.
WARN_GAP = 0.25
#: A refusal needs the best order to fit like a real case: distance at most this (the study's
#: correctly ordered cases: 0.19 to 2.5, leave-one-out). Beyond it the input is unlike the
#: training data, and only a warning is given.
MAX_FIT = 6.0
#: How the warning for volumes unlike the reference (even the best order beyond
#: :data:`MAX_FIT`) begins; ``training/dataset_mr_checks.py`` recognises it.
UNCHECKED = "The sequence order could not be checked"


@dataclass
class Fingerprint:
    """Contrast fingerprint of C channels: ``spearman`` (C, C) rank correlations, ``skewness``
    (C,) of each channel, both inside the joint non-zero mask; ``voxels``: voxels used;
    ``asymmetry`` (C, C): the enhancement asymmetry of each pair (:mod:`.contrast_pair`);
    ``share``: the share (0..1) of the searched sample non-zero in every channel (the brain)."""

    spearman: np.ndarray
    skewness: np.ndarray
    voxels: int
    asymmetry: Optional[np.ndarray] = None
    share: Optional[float] = None

    def reordered(self, order: Sequence[int]) -> Fingerprint:
        """The fingerprint of the same samples given with slot s holding channel ``order[s]``:
        rows and columns moved; ``voxels`` and ``share`` do not depend on the order."""
        index = list(order)
        pairs = np.ix_(index, index)
        asymmetry = None if self.asymmetry is None else self.asymmetry[pairs]
        return Fingerprint(
            self.spearman[pairs], self.skewness[index], self.voxels, asymmetry, self.share
        )

    def features(self, order: Sequence[int]) -> np.ndarray:
        """The feature vector with slot s holding input channel ``order[s]``: the upper
        triangle of the reordered correlation matrix (row-major), then the skewness."""
        index = list(order)
        matrix = self.spearman[np.ix_(index, index)]
        upper = np.triu_indices(len(index), 1)
        return np.concatenate([matrix[upper], self.skewness[index]])


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 with ties given their mean rank (Spearman's convention)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # first of each value
    ends = np.r_[starts[1:], ordered.size]
    mean_rank = (starts + ends - 1) / 2.0
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def fingerprint(samples: Sequence[np.ndarray]) -> Optional[Fingerprint]:
    """The fingerprint of C aligned 1-D samples (the same voxels in every channel).

    Returns None when fewer than :data:`MIN_VOXELS` voxels are non-zero in every channel or a
    channel is constant there. Raises ValueError if the samples differ in length."""
    if len({len(s) for s in samples}) != 1:
        raise ValueError("channel samples must have one length")
    step = -(-len(samples[0]) // MASK_VOXELS)
    parts = [np.asarray(s)[::step] for s in samples]
    inside = parts[0] != 0
    for part in parts[1:]:
        inside &= part != 0
    count = int(np.count_nonzero(inside))
    if count < MIN_VOXELS:
        return None
    where = np.flatnonzero(inside)[:: -(-count // RANK_VOXELS)]
    joint = np.stack([part[where].astype(np.float64) for part in parts])
    std = joint.std(axis=1)
    if np.any(std == 0):
        return None
    z = (joint - joint.mean(axis=1, keepdims=True)) / std[:, None]
    skewness = (z**3).mean(axis=1)
    ranks = np.stack([_average_ranks(row) for row in joint])
    spearman = np.corrcoef(ranks) if len(samples) > 1 else np.ones((1, 1))
    asymmetry = asymmetry_matrix(joint)
    share = count / max(1, inside.size)
    return Fingerprint(np.atleast_2d(spearman), skewness, int(joint.shape[1]), asymmetry, share)


# ------------------------------------------------------------------------ the reference
def build_reference(
    prints: Sequence[Fingerprint], cases: Sequence[str] = (), pair: Optional[list[int]] = None
) -> dict:
    """The manifest's ``channel_fingerprint`` from training-case fingerprints (at least 3):
    per-feature mean and standard deviation (identity order); ``pair``: [pre, post] indexes
    of pre- and post-contrast T1 (``contrast_pair.find_pair``), checked by the enhancement
    asymmetry (:mod:`.contrast_pair`). Raises ValueError."""
    if len(prints) < 3:
        raise ValueError("a channel fingerprint needs at least 3 training cases")
    channels = len(prints[0].skewness)
    vectors = np.array([p.features(range(channels)) for p in prints])
    return {
        "version": FINGERPRINT_VERSION,
        "features": "spearman upper triangle (row-major), then skewness per channel",
        "channels": channels,
        "cases": list(cases) or len(prints),
        "mean": [round(float(v), 4) for v in vectors.mean(axis=0)],
        "std": [round(float(v), 4) for v in vectors.std(axis=0, ddof=1)],
        **({"contrast_pair": list(pair)} if pair else {}),
    }


# ------------------------------------------------------------------------ the decision
@dataclass
class OrderVerdict:
    """Distances of every order; ``best``: the best order other than the one given
    (slot s should hold input ``best[s]``); ``gap``: given minus best distance."""

    orders: list[tuple[int, ...]]
    distances: np.ndarray
    best: tuple[int, ...]
    gap: float
    best_distance: float


def compare(print_: Fingerprint, reference: dict) -> OrderVerdict:
    """Distance of ``print_`` to ``reference`` under each of the C! channel orders."""
    mean = np.asarray(reference["mean"], dtype=np.float64)
    std = np.maximum(np.asarray(reference["std"], dtype=np.float64), STD_FLOOR)
    channels = len(print_.skewness)
    orders = list(itertools.permutations(range(channels)))
    distances = np.array([np.mean(((print_.features(o) - mean) / std) ** 2) for o in orders])
    other = 1 + int(np.argmin(distances[1:]))
    return OrderVerdict(
        orders,
        distances,
        orders[other],
        float(distances[0] - distances[other]),
        float(distances[other]),
    )


def _swaps(best: Sequence[int], names: Sequence[str]) -> str:
    """'the volume given as T2 looks like FLAIR; ...' for every slot s with best[s] != s."""
    moved = [(s, i) for s, i in enumerate(best) if s != i]
    return "; ".join(f"the volume given as {names[i]} looks like {names[s]}" for s, i in moved)


def small_brain_warning(
    found: Fingerprint, image_ml: Optional[float], min_ml: float, order: str
) -> Optional[str]:
    """The warning that the order could not be checked because the brain of an image of
    ``image_ml`` ml (``found.share`` of it non-zero in every channel) fills less than
    ``min_ml`` ml: the reference holds whole-brain statistics, which a crop does not have.
    None when it is large enough, or ``image_ml``, ``min_ml`` or the share is unknown."""
    if not image_ml or not min_ml or found.share is None:
        return None
    brain_ml = found.share * image_ml
    if brain_ml >= min_ml:
        return None
    return (
        f"{UNCHECKED}: the brain (the voxels non-zero in every volume) fills only "
        f"{brain_ml:.0f} ml, less than the {min_ml:.0f} ml of a whole brain, and the check "
        "compares whole-brain statistics (a crop has others). If this is a crop, give the "
        "whole skull-stripped image and limit the region with --roi (Slicer: the ROI) instead; "
        f"otherwise check that the volumes are {order}."
    )


def check_channel_order(
    samples: Sequence[np.ndarray],
    reference: Optional[dict],
    channel_names: Sequence[str],
    found: Optional[Fingerprint] = None,
    image_ml: Optional[float] = None,
    min_ml: float = 0.0,
) -> list[str]:
    """Refuse a clearly wrong channel order; return a warning for a doubtful one, or when even
    the best order fits worse than :data:`MAX_FIT` or the brain is smaller than ``min_ml``
    (the order could not be checked).

    ``samples``: C aligned 1-D samples (``sanity.channel_samples``); ``reference``: the
    manifest's ``inference.channel_fingerprint`` (None: no check); ``found``: their
    :func:`fingerprint` if already computed; ``image_ml``: the image's volume (ml; None:
    unknown) and ``min_ml``: the smallest brain (ml non-zero in every channel) the reference's
    whole-brain statistics hold for (0: any; :func:`small_brain_warning`). Raises
    UNetPlusPlusError with one line naming the suspected swap."""
    count = len(samples)
    if not reference or count < 2 or count > MAX_CHANNELS or reference.get("channels") != count:
        return []
    found = found if found is not None else fingerprint(samples)
    if found is None:
        return []
    small = small_brain_warning(found, image_ml, min_ml, ", ".join(channel_names))
    if small is not None:
        return [small]
    verdict = compare(found, reference)
    names = list(channel_names)
    order = ", ".join(names)
    swaps = _swaps(verdict.best, names)
    fit = float(verdict.distances.min())
    pair, paired = pair_finding(found.asymmetry, reference.get("contrast_pair"), names)
    pair_warning = []  # pre- and post-contrast T1 told apart by enhancement (contrast_pair.py)
    if pair != "ok":
        pair_warning = [f"The input volumes may be in the wrong order: {paired}; check that "
                        f"they are {order}."]  # fmt: skip
    if fit > MAX_FIT:
        closest = f"; the closest order: {swaps}" if verdict.gap > WARN_GAP else ""
        return [
            f"{UNCHECKED}: these volumes do not look like the "
            f"model's training data (contrast fingerprint distance {fit:.1f}, more than "
            f"{MAX_FIT:g}{closest}); check that they are skull-stripped {order}."
        ] + pair_warning
    if verdict.gap > REFUSE_GAP or pair == "refuse":  # the best order fits (fit <= MAX_FIT)
        why = paired
        if verdict.gap > REFUSE_GAP:
            why = f"{swaps} (contrast fingerprint, gap {verdict.gap:.2f})"
        raise UNetPlusPlusError(
            f"The input volumes seem to be in the wrong order: {why}. Give the "
            f"sequences as {order}; if this order is right, run again with --no-channel-check "
            "(Slicer: uncheck 'Check sequence order')."
        )
    if verdict.gap <= WARN_GAP:
        return pair_warning
    return pair_warning + [
        f"The input volumes may be in the wrong order: {swaps} (contrast fingerprint, gap "
        f"{verdict.gap:.2f}); check that they are {order}."
    ]


def manifest_reference(manifest) -> Optional[dict]:
    """The manifest's channel fingerprint, or None (none stored, or ``channel_check`` off)."""
    inference = getattr(manifest, "inference", None) or {}
    if not inference.get("channel_check", True):
        return None
    return inference.get("channel_fingerprint")


def order_check_applies(manifest: ModelManifest) -> bool:
    """Whether the sequence-order check runs for ``manifest``'s inputs at all: two channels
    or more and a channel fingerprint (:func:`manifest_reference`). False (a CT model, an MR
    model without a fingerprint): ``channel_check=False`` changes nothing."""
    return len(manifest.channels) > 1 and manifest_reference(manifest) is not None
