"""The one exception type for user-facing errors (see docs/ARCHITECTURE.md, "Errors").

Raise :class:`UNetPlusPlusError` (or a subclass) when the *input* or the *environment* is wrong
and a clinician or researcher can act on the message: a missing sequence, a corrupt file, a
checksum mismatch, a NaN volume. The CLI prints it as one line and the Slicer module shows it in
a message box. Programming errors still raise their ordinary exceptions.
"""

from __future__ import annotations

from typing import Sequence


class UNetPlusPlusError(Exception):
    """An error whose message is meant for the user, one actionable sentence."""


class CancelledError(UNetPlusPlusError):
    """The user cancelled a running job; nothing was written."""

    def __init__(self, message: str = "Cancelled by the user.") -> None:
        super().__init__(message)


class ChecksumError(UNetPlusPlusError):
    """Model weights do not match the sha256 recorded in their manifest."""


class PointRefusedError(UNetPlusPlusError):
    """A clicked point refused before its run starts (off the image: adapter/input_checks.py
    ``check_point``): that point only, so a batch of placed points goes on with the next, as
    after a point the engine refused (widget/point_batch.py)."""


class DuplicateCaseError(UNetPlusPlusError):
    """A training case is in the export folder already (the same image and labels) as
    ``case``; nothing was written (adapter/training_export.py). ``also``: other cases of the
    folder with the same image (copies made before the export recognised them), said in the
    message. Here, not there, so the panel can catch it without importing Slicer's export code
    at file scope."""

    def __init__(self, case: str, folder: object, also: Sequence[str] = ()) -> None:
        super().__init__(
            f"This case is already in the dataset as {case} (the same image and labels, in "
            f"{folder}); nothing was written." + same_image_also_text(also)
        )
        self.case = case
        self.also = list(also)


def same_image_also_text(also: Sequence[str]) -> str:
    """The sentence (with a leading space) naming other copies of the same image in an export
    folder, or "" when there are none."""
    if not also:
        return ""
    return (
        f" The same image is also there as {', '.join(also)}: training counts each copy as a "
        "case of its own (and may split them between training and validation); remove the "
        "extra copies."
    )
