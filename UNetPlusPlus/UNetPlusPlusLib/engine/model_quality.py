"""A warning when the model itself scored poorly on its own validation, before any result.

A model trained for a few epochs (a user's quick fine-tune, an interrupted run) still returns a
confident segmentation: a tester's 45 s training run recorded a mean validation Dice of 0.13 in
its model.json, and `unetpp segment` with it printed "label 1 1046.925 ml" without a word, a
blob over the whole image (session 16). The trainer records each depth's Dice on its
validation cases (``model.json`` ``validation.per_depth``); :func:`low_dice_warning` says so
when the depth about to run scored below :data:`LOW_MEAN_DICE`. Every shipped depth is above it
(the lowest, brain tumour L1, 0.537), so a shipped model never warns; a model without recorded
figures is not judged.
"""

from __future__ import annotations

import math
from typing import Optional, Union

#: A mean validation Dice below this: most of what the model segments overlaps nothing right.
LOW_MEAN_DICE = 0.5


def low_dice_warning(manifest, depth: Union[int, str]) -> Optional[str]:
    """The warning for a model whose recorded mean validation Dice at ``depth`` (1..4 or
    "ensemble") is below :data:`LOW_MEAN_DICE`, else None (no figure recorded: no warning).
    ``manifest``: a :class:`.manifest_model.ModelManifest`."""
    figures = manifest.validation_for(depth)
    mean = figures.get("mean_dice")
    if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean):
        return None  # not a figure (a validation without foreground records NaN): not judged
    if mean >= LOW_MEAN_DICE:
        return None
    where = f"depth {depth}" if depth != "ensemble" else "the ensemble of its depths"
    return (
        f"Model '{manifest.name}' scored a mean Dice of only {mean:.2f} at {where} on its own "
        "validation cases (model.json): most of what it segments may be wrong. Check the "
        "result against the image before using it; train it longer or with more cases, or use "
        "another model."
    )
