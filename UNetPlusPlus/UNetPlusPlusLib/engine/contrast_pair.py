"""Pre- and post-contrast T1 told apart by the physics of gadolinium (numpy only).

T1 and T1ce (T1 after a gadolinium-based contrast agent) are both T1-weighted, so the contrast
fingerprint of :mod:`.channel_order` often cannot tell them apart. Gadolinium only *raises* T1
signal (enhancing tumour, vessels, choroid plexus, dura). So inside the brain, the voxel-wise
difference ``d = z(post) - z(pre)`` of the two channels, each z-scored on the joint brain
mask, has a heavy positive tail and a light negative one. The **enhancement asymmetry**

    log((q99(d) - median(d)) / (median(d) - q1(d)))

is positive in the right order and exactly its negative when the two are swapped.

On the 19 shared BraTS cases (docs/INPUT_CHECKS_MR.md; ``scripts/channel_fingerprint.py
--study``), on the fingerprint's 50 000 voxels, it lies between 0.60 and 1.84 in the right
order; the fixed thresholds below were chosen by hand from that: below :data:`WARN_BELOW` a
warning, below :data:`REFUSE_BELOW` a refusal (``channel_order.check_channel_order``, when the
contrast fingerprint fits like a training case).
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np

from .manifest_options import parse_pair  # noqa: F401 - the manifest's check of a pair

#: Percent of the difference's voxels in each tail (q1 and q99: steadier than 0.5 %).
TAIL_PERCENT = 1.0
#: Asymmetry below this: a warning that the pre- and post-contrast channels may be swapped
#: (the study's correctly ordered cases: 0.60 or more, so a margin of 0.60).
WARN_BELOW = 0.0
#: Asymmetry below this: refused (the study's swapped cases: -0.60 or less, a margin of 0.35;
#: the correctly ordered ones are 0.85 or more above it).
REFUSE_BELOW = -0.25

_PRE = {"t1", "t1w", "t1pre", "t1native"}
_POST = {"t1ce", "t1c", "t1gd", "t1wce", "t1post", "t1contrast", "t1cegd", "t1wgd"}


def asymmetry_matrix(joint: np.ndarray) -> np.ndarray:
    """(C, C) enhancement asymmetry of C aligned samples ``joint`` (C, n) inside the joint
    brain mask: entry [i, j] is that of ``d = z(channel j) - z(channel i)`` (antisymmetric;
    0 where a tail is empty or a channel constant). Raises ValueError if ``joint`` is not 2-D."""
    if joint.ndim != 2:
        raise ValueError("joint samples must be (C, n)")
    channels = joint.shape[0]
    std = joint.std(axis=1)
    z = (joint - joint.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)[:, None]
    matrix = np.zeros((channels, channels))
    for i in range(channels):
        for j in range(i + 1, channels):
            low, mid, high = np.percentile(z[j] - z[i], [TAIL_PERCENT, 50, 100 - TAIL_PERCENT])
            if high > mid > low:
                matrix[i, j] = float(np.log((high - mid) / (mid - low)))
                matrix[j, i] = -matrix[i, j]
    return matrix


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def find_pair(names: Sequence[str]) -> Optional[list[int]]:
    """[pre, post]: the indexes of a pre-contrast T1 channel ('T1', 'T1w') and a post-contrast
    one ('T1ce', 'T1c', 'T1Gd', 'T1post', ...), case and punctuation ignored; None unless
    exactly one of each."""
    keys = [_key(n) for n in names]
    pre = [i for i, k in enumerate(keys) if k in _PRE]
    post = [i for i, k in enumerate(keys) if k in _POST]
    return [pre[0], post[0]] if len(pre) == 1 and len(post) == 1 else None


def pair_finding(
    asymmetry: Optional[np.ndarray], pair: Optional[Sequence[int]], names: Sequence[str]
) -> tuple[str, str]:
    """("ok" | "warn" | "refuse", what was found) for the channels at ``pair`` = [pre, post]
    of an input with this ``asymmetry`` matrix (:func:`asymmetry_matrix`); ("ok", "") without
    a pair or a matrix."""
    if asymmetry is None or not pair:
        return "ok", ""
    pre, post = pair
    value = float(asymmetry[pre, post])
    if value >= WARN_BELOW:
        return "ok", ""
    said = (
        f"the volume given as {names[pre]} looks like {names[post]}; the volume given as "
        f"{names[post]} looks like {names[pre]} (contrast enhancement: the volume given as "
        f"{names[post]} is not the brighter one where the two differ, asymmetry {value:.2f})"
    )
    return ("refuse" if value < REFUSE_BELOW else "warn"), said
