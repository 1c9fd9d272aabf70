"""Choosing the DICOM series to segment among those a folder holds (``dicom.find_series``).

An ambiguous folder is refused listing its series; ``--series UID`` picks one; DICOM objects
made on images (a SEG, an RT structure set) are left out of the choice and named as not
images. No reading of voxels here; ``dicom.py`` reads the chosen series.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import UNetPlusPlusError

#: DICOM objects made on images that hold none to segment, by their Modality (0008,0060).
NOT_IMAGES = {
    "SEG": "a DICOM Segmentation object",
    "RTSTRUCT": "an RT Structure Set",
    "RTPLAN": "an RT Plan",
    "SR": "a Structured Report",
    "PR": "a Presentation State",
    "KO": "a Key Object Selection",
    "REG": "a Registration object",
}


#: A slice header's geometry as ITK reads it: origin (mm), direction (9 cosines, row major)
#: and spacing (mm), each in x, y, z order (LPS).
SliceGeometry = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]


@dataclass
class DicomSeries:
    """One series found in a folder: its UID, description and sorted slice files, the
    Modality (0008,0060) of its first file, upper case ("" if absent), and that file's
    geometry (None if its header could not be read), reused by the slice-spacing check."""

    uid: str
    files: list[str]
    description: str = ""
    modality: str = ""
    first_geometry: Optional[SliceGeometry] = None

    def summary(self) -> str:
        text = self.description or "no description"
        uid = self.uid or "a series without a Series Instance UID"
        return f"{uid} ({text!r}, {len(self.files)} slice(s))"


def choose_series(
    folder: Path, series: list[DicomSeries], uid: Optional[str], left_out: Sequence[str] = ()
) -> DicomSeries:
    """The series named by ``uid``, or the only one; refuses an ambiguous folder, naming also
    the non-image objects ``left_out`` of ``series`` (see :func:`image_series`)."""
    listing = "; ".join(s.summary() for s in series)
    if uid:
        chosen = [s for s in series if s.uid == uid.strip()]
        if not chosen:
            images_first = sorted(series, key=lambda s: s.modality in NOT_IMAGES)
            held = "; ".join(listed(folder, s) for s in images_first)
            raise UNetPlusPlusError(f"DICOM series {uid} is not in {folder}; it holds: {held}.")
        if len(chosen) > 1:  # the same UID in several sub-folders: the slices belong together
            files = sorted({f for s in chosen for f in s.files})
            return DicomSeries(chosen[0].uid, files, chosen[0].description, chosen[0].modality)
        return chosen[0]
    if len({s.uid for s in series}) > 1:
        unnamed = any(not s.uid for s in series)  # --series cannot name it: move it
        kind = " image" if left_out else ""
        what = "not an image" if len(left_out) == 1 else "not images"
        besides = f" It also holds {'; '.join(left_out)}: {what} to segment." if left_out else ""
        raise UNetPlusPlusError(
            f"{folder} holds {len(series)} DICOM{kind} series: {listing}. Choose one with "
            "--series UID (or move each series into its own folder"
            + ("; a series without a UID can only be moved" if unnamed else "")
            + f").{besides}"
        )
    if len(series) > 1:  # one UID split over sub-folders: GDCM sorts them per folder
        return choose_series(folder, series, series[0].uid)
    return series[0]


def listed(folder: Path, series: DicomSeries) -> str:
    """``series`` as the ``--series`` refusal lists it: its summary, the sub-folder of
    ``folder`` that holds it (if not ``folder`` itself) and, for a DICOM object made on images
    (a SEG), what it is: "1.2.3 ('Liver', 1 slice(s)), a DICOM Segmentation object, not an
    image". The UID of an image series in a sub-folder was missing from that list when
    ``folder`` itself held only a SEG (review cli20)."""
    parent = Path(series.files[0]).parent if series.files else folder
    where = "" if parent == folder else f" in {os.path.relpath(parent, folder)}"
    what = NOT_IMAGES.get(series.modality)
    return series.summary() + where + (f", {what}, not an image" if what else "")


def image_series(
    folder: Path, series: list[DicomSeries], below: Callable[[], str]
) -> tuple[list[DicomSeries], list[str]]:
    """The image series among ``series`` when the folder also holds DICOM objects made on
    images (a SEG or an RT structure set beside the slices of its CT, as a PACS export gives
    them), and a description of each object left out (the caller warns once a series is chosen,
    or names them in its refusal: a warning followed by "holds 2 DICOM series" said the same
    folder's content twice); ``series`` unchanged and nothing left out when none are there, or
    one such object alone (refused by ``dicom._refuse_non_image``). Several such objects and no
    image raise UNetPlusPlusError, with ``below()`` (a hint naming the sub-folders that hold
    series, " (here: ...)", or ""). Before, the SEG counted as a second series and the folder was
    refused as ambiguous (fresh user 27)."""
    kinds = [item.modality for item in series]  # read by find_series
    images = [item for item, kind in zip(series, kinds) if kind not in NOT_IMAGES]
    if len(images) == len(series) or len(series) == 1:
        return series, []
    left = [
        f"{NOT_IMAGES[k]} ({item.summary()})" for item, k in zip(series, kinds) if k in NOT_IMAGES
    ]
    if not images:  # "holds 2 DICOM series ... choose one with --series" led to a refusal
        raise UNetPlusPlusError(
            f"{folder} holds no image series, only {'; '.join(left)}: give the folder of the "
            f"image series itself{below()}."
        )
    return images, left
