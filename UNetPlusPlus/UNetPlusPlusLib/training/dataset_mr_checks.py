"""The model input checks of inference, run on every training case (``dataset_check``).

A model trained on cases with a non-zero MR background, a channel given twice (rescaled) or
swapped sequences is silently bad, and at inference it would refuse inputs like its own
training cases. So each case goes through the engine's own checks,
:func:`..engine.sanity.check_model_samples`, for the model the run will write: its channels are
the dataset's and its ``inference`` options the ``--init`` model's (as
``package.build_manifest`` writes them). That is:

- **zero background** (``sanity.needs_zero_background``: every channel normalised as ``mr``
  and ``inference.crop_nonzero`` on, the default) and, if the ``--init`` model sets
  ``inference.max_nonzero_ml``, the skull-stripping extent (``sanity.check_nonzero_extent``);
- **near-duplicate channels** (Spearman rank correlation at least 0.98), any multi-channel
  dataset;
- **sequence order** (``engine/channel_order.py``): against the ``--init`` model's channel
  fingerprint when it has one; otherwise, for an all-MR multi-channel dataset with at least
  :data:`MIN_REFERENCE_CASES` other usable cases, each case against the reference of the
  other cases (leave one out, as the study of docs/INPUT_CHECKS.md scored its training cases).
  With a pre- and a post-contrast T1 channel (``contrast_pair.find_pair``, as ``unetpp train``
  names the pair in the model it writes) that reference holds the pair, so a T1 <-> T1ce swap
  is refused or warned by the enhancement asymmetry with inference's thresholds; with too few
  cases for a reference, the asymmetry alone warns (a refusal needs the fingerprint to fit).
  ``channel_check=False`` (``unetpp train --no-channel-check``) skips it, with a warning.

Problems come back per case for the one dataset error; warnings for the training log.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Sequence

import numpy as np

from ..engine import channel_order
from ..engine.contrast_pair import find_pair, pair_finding
from ..engine.sanity import channel_samples, check_sequence_order
from ..errors import UNetPlusPlusError
from .dataset_types import DatasetDescription

#: A leave-one-out reference needs at least this many other cases with a usable fingerprint
#: (the shipped reference holds 14; see docs/INPUT_CHECKS.md, "Training", for the margins).
MIN_REFERENCE_CASES = 11
#: At most this many other cases make one leave-one-out reference (``package``'s cap).
MAX_REFERENCE_CASES = 50


class CaseModelChecks:
    """Runs the model checks case by case (:meth:`check_case`), then the leave-one-out
    sequence-order check over the cases that passed (:meth:`finish`).

    ``dataset``: its channels are the model's; ``init``: the ``--init`` ModelManifest or None;
    ``channel_check``: False skips the sequence-order check (``--no-channel-check``)."""

    def __init__(self, dataset: DatasetDescription, init=None, channel_check: bool = True) -> None:
        inference = dict(getattr(init, "inference", None) or {})
        self.model = SimpleNamespace(channels=list(dataset.channels), inference=inference)
        self.names = [c.name for c in dataset.channels]
        multi_mr = 2 <= len(self.names) <= channel_order.MAX_CHANNELS and all(
            c.modality.strip().upper() in ("MR", "MRI") for c in dataset.channels
        )
        reference = channel_order.manifest_reference(self.model)
        self.against_init = channel_check and reference is not None
        declined = not inference.get("channel_check", True)  # the --init model's own switch
        self.self_reference = channel_check and multi_mr and reference is None and not declined
        self.skipped = not channel_check and (multi_mr or reference is not None)
        self.pair = find_pair(self.names)  # [pre, post] T1 / T1ce, or None
        self.prints: list[tuple[str, channel_order.Fingerprint]] = []

    def check_case(
        self, case_id: str, arrays: Sequence[np.ndarray], spacing: Sequence[float]
    ) -> list[str]:
        """The checks of one case's C (z, y, x) channel arrays (any voxel type, not copied) at
        ``spacing`` (mm, x y z).

        Returns warnings (without the case name); raises UNetPlusPlusError with the problem."""
        found = None  # one fingerprint serves the checks and the leave-one-out reference
        if len(arrays) > 1:
            found = channel_order.fingerprint(channel_samples(arrays))
        warnings = check_sequence_order(self.model, arrays, self.against_init, spacing, found)
        if self.self_reference and found is not None:
            self.prints.append((case_id, found))
        return warnings

    def finish(self) -> tuple[list[str], list[str]]:
        """(problems, warnings), each naming its case: the leave-one-out sequence order of the
        cases that passed :meth:`check_case`, or why the order was not checked."""
        order = ", ".join(self.names)
        if self.skipped:
            return [], [
                f"the sequence order ({order}) of the training cases was not checked "
                "(--no-channel-check); a case with swapped sequences trains a wrong model"
            ]
        if not self.self_reference:
            return [], []
        if len(self.prints) <= MIN_REFERENCE_CASES:
            alone = ""
            if self.pair:
                pre, post = (self.names[i] for i in self.pair)
                alone = f" ({pre} and {post} only by their contrast enhancement, below)"
            return [], [
                f"the sequence order ({order}) of the training cases was not checked{alone}: "
                f"{len(self.prints)} case(s) with a usable contrast fingerprint, more than "
                f"{MIN_REFERENCE_CASES} needed to compare each case with the others"
            ] + self._pair_warnings(order)
        problems: list[str] = []
        warnings: list[str] = []
        placeholders = [np.empty(0)] * len(self.names)  # only counted: the fingerprint is given
        for index, (case_id, found) in enumerate(self.prints):
            others = [p for i, (_, p) in enumerate(self.prints) if i != index]
            reference = channel_order.build_reference(others[:MAX_REFERENCE_CASES], (), self.pair)
            try:
                said = channel_order.check_channel_order(placeholders, reference, self.names, found)
            except UNetPlusPlusError as error:
                problems.append(f"Case '{case_id}': {_against_others(str(error))}")
                continue
            for warning in said:
                if warning.startswith(channel_order.UNCHECKED):
                    warning = (
                        "its contrasts are unlike the other cases' (the sequence order could "
                        f"not be checked against them); check that it holds skull-stripped {order}"
                    )
                warnings.append(f"Case '{case_id}': {_against_others(warning)}")
        return problems, warnings

    def _pair_warnings(self, order: str) -> list[str]:
        """A warning naming each case whose pre- and post-contrast T1 look swapped by the
        enhancement asymmetry alone (:func:`.contrast_pair.pair_finding`, inference's
        thresholds; no reference to fit, so a warning as for data unlike a model's)."""
        warnings = []
        for case_id, found in self.prints:
            status, said = pair_finding(found.asymmetry, self.pair, self.names)
            if status != "ok":
                warnings.append(
                    f"Case '{case_id}': The input volumes may be in the wrong order: {said}; "
                    f"check that they are {order}."
                )
        return warnings


def _against_others(message: str) -> str:
    """The engine's order message, said of a training case compared with the other cases."""
    return message.replace("(contrast fingerprint,", "(contrast fingerprint of the other cases,")
