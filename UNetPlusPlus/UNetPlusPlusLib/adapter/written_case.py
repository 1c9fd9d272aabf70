"""What one training export wrote: :class:`WrittenCase`, the files and the message the panel
shows (adapter/training_export.py writes them)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..errors import same_image_also_text
from . import replaced_labels
from .replaced_labels import REPLACED_FOLDER, KeptVersions


class WrittenCase(list):
    """The files written (a list of Paths), with ``case``: the case they belong to,
    ``replaced``: True when they replaced the labels of ``case``, an earlier export of the same
    image (then only ``<case>.seg.nrrd`` was written), ``kept``: where the labels they replaced
    were moved (``<folder>/.replaced/<case>-<UTC time>.seg.nrrd``), or None, ``versions``: the
    earlier labels of ``case`` kept there (:class:`.replaced_labels.KeptVersions`), or None,
    ``also``: other cases of the folder with the same image, ``requested``: the case name
    asked for (``case`` differs when the image is in the folder under another name), and
    ``images``: where the image files an overwrite replaced were moved (``.replaced/``),
    ``labelmaps``: (original, kept) pairs of the case's labelmaps (``<case>-label.nrrd``, its
    colour table) that lay beside the ``.seg.nrrd`` written, moved to ``.replaced/`` so that
    the case has one label file (:func:`.replaced_labels.labelmaps`), ``identical``: True
    when the labels replaced were the labels written, byte for byte (no copy kept: ``kept``
    is None). The message names only files that exist after the export."""

    def __init__(
        self,
        files: Sequence[Path],
        case: str,
        replaced: bool = False,
        kept: Optional[Path] = None,
        versions: Optional[KeptVersions] = None,
        also: Sequence[str] = (),
        requested: str = "",
        images: Sequence[Path] = (),
        labelmaps: Sequence[tuple[Path, Path]] = (),
        identical: bool = False,
    ) -> None:
        super().__init__(files)
        self.case = case
        self.replaced = replaced
        self.kept = kept
        self.versions = versions
        self.also = list(also)
        self.requested = requested or case
        self.images = list(images)
        self.labelmaps = list(labelmaps)
        self.identical = identical

    @property
    def message(self) -> str:
        """One paragraph on what happened to the dataset (the panel's status line): the case
        whose labels were replaced, where the old ones are kept and how many versions of them
        that folder holds, and other copies of the same image; "" for a plain new case."""
        text = ""
        if self.replaced:
            text = (
                f"The image is already in the dataset as {self.case}: its labels were replaced "
                "by the current segmentation"
            )
            if self.requested != self.case:  # before: "(nothing written as case002, so that...)"
                text += (
                    f", and nothing was saved as {self.requested} (the same image twice would "
                    "be trained on twice)"
                )
            text += "."
        if self.images:
            kept = ", ".join(str(path) for path in self.images)
            text += f" The image that {self.case} held before is kept in {kept}."
        if self.labelmaps:
            names = ", ".join(original.name for original, _ in self.labelmaps)
            kept = ", ".join(str(backup) for _, backup in self.labelmaps)
            text += (
                f" The older labelmap of {self.case} ({names}) was moved to {kept}: the case "
                f"now has one label file, {self.case}.seg.nrrd (training would have ignored "
                "the labelmap)."
            )
        if self.kept is not None:
            text += f" The old labels are kept in {self.kept}"
            if self.versions is not None:
                count, size = self.versions.count, replaced_labels.size_text(self.versions.bytes)
                text += (
                    f" ({count} earlier version(s) of {self.case} kept in {REPLACED_FOLDER}, "
                    f"{size}; delete them there when no longer needed)"
                )
            text += "."
        if self.identical:
            text += (
                f" The labels {self.case} held before were the same as the labels written, "
                "byte for byte: no copy of them was needed."
            )
        return (text + same_image_also_text(self.also)).strip()
