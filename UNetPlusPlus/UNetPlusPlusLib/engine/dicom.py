"""Reading a DICOM series folder with SimpleITK (GDCM), refusing ambiguous or broken series.

- A folder (or, when it holds no DICOM file itself, its sub-folders) with **several series** is
  ambiguous: :func:`read_dicom_folder` refuses it and lists each series (Series Instance UID,
  Series Description, slice count) unless ``series`` names one UID (``unetpp segment --series``).
- Files GDCM cannot parse (for example a truncated slice) are skipped with a warning naming
  them; a series whose slices are then missing or unevenly spaced is refused, because the volume
  would be distorted.
- A series whose slices advance away from their normal (a CT acquired with a **gantry tilt**) is
  refused: ITK stacks such slices along their normal, so every slice but the first would lie
  off its true place (:func:`_check_tilt`).
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..errors import UNetPlusPlusError
from .dicom_choice import NOT_IMAGES as _NOT_IMAGES
from .dicom_choice import DicomSeries, SliceGeometry, choose_series, image_series

_DICOM_SUFFIXES = ("", ".dcm", ".ima", ".dicom")
_SERIES_DESCRIPTION = "0008|103e"
_MODALITY = "0008|0060"


def sitk_reason(error: Exception) -> str:
    """The last meaningful line of a SimpleITK/ITK exception message; for an image's refused
    geometry ("ITK ERROR: Image(0x...): Bad direction, determinant is 0. Refusing to change
    direction from <matrix lines>"), the sentence before the matrix."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        refused = re.match(r".*ITK ERROR: \w+\(0x[0-9a-fA-F]+\): (.*?)\s*(Refusing to .*)?$", line)
        if refused and refused.group(1):
            return refused.group(1).rstrip(".")
    reason = lines[-1] if lines else type(error).__name__
    for prefix in ("sitk::ERROR:", "ITK ERROR:"):
        if prefix in reason:
            reason = reason.split(prefix, 1)[1].strip()
    return reason.rstrip(".")


def find_series(folder: Path, deep: bool = False) -> list[DicomSeries]:
    """Every DICOM series in ``folder`` or, if it holds none, in its sub-folders; ``deep``
    (``--series``): in them too when ``folder`` holds only objects made on images (a SEG
    beside the sub-folder of its CT), so that the CT can be named (review cli20)."""
    series = _with_headers(_dicom_series(folder))
    if not series or deep and all(item.modality in _NOT_IMAGES for item in series):
        for root, dirs, _ in os.walk(folder):
            dirs.sort()
            if Path(root) != folder:
                series.extend(_with_headers(_dicom_series(Path(root))))
    return series


def _with_headers(series: list[DicomSeries]) -> list[DicomSeries]:
    """``series`` with each one's first header read (one read, shared by every check after)."""
    for item in series:
        item.description, item.modality, item.first_geometry = _first_header(item.files[0])
    return series


def _warn_unread_subfolders(folder: Path) -> None:
    """Warn that sub-folders holding DICOM files are not read when ``folder`` holds a series
    itself: a series folder with another series in a sub-folder was read as its own series
    without a word about the other (tester 22). A file counts by a ``.dcm``/``.ima``/``.dicom``
    name or the ``DICM`` mark; each sub-folder stops at its first such file."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if Path(root) == folder:
            continue
        for name in sorted(files):
            path = Path(root) / name
            if path.suffix.lower() in _DICOM_SUFFIXES[1:] or _has_dicom_mark(path):
                found.append(os.path.relpath(root, folder))
                break
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        warnings.warn(
            f"{folder} holds a DICOM series itself and more DICOM files in {len(found)} "
            f"sub-folder(s) ({shown}), which were not read: the series in {folder} itself is "
            "segmented. To segment a series in a sub-folder, give that folder.",
            UserWarning,
            stacklevel=4,
        )


def _has_dicom_mark(path: Path) -> bool:
    """Whether ``path`` is a regular file with the ``DICM`` mark at byte 128."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


_IMAGE_FILE_SUFFIXES = (".nrrd", ".nii.gz", ".nii", ".mha", ".mhd")


def read_dicom_folder(folder: Path, series_uid: Optional[str] = None) -> sitk.Image:
    """Read the one DICOM series in ``folder`` (or the one ``series_uid`` names)."""
    series = find_series(folder, deep=series_uid is not None)
    if not series:
        images = sorted(
            p.name
            for p in folder.iterdir()
            if p.is_file() and p.name.lower().endswith(_IMAGE_FILE_SUFFIXES)
        )
        held = (
            f" (it holds {', '.join(images[:3])}{', ...' if len(images) > 3 else ''}: "
            "give such a file itself)"
            if images
            else ""
        )
        raise UNetPlusPlusError(
            f"No DICOM series found in {folder}{held}; choose a folder of DICOM slices or an "
            "image file."
        )
    if series_uid is None:
        candidates, left_out = image_series(folder, series, lambda: _series_below(folder))
    else:
        candidates, left_out = series, []
    chosen = choose_series(folder, candidates, series_uid, left_out)
    if left_out:  # said only once a series is chosen: a refusal names them itself
        warnings.warn(
            f"Left out of {folder}: {'; '.join(left_out)}; not an image to segment.",
            UserWarning,
            stacklevel=2,
        )
    files = chosen.files
    _refuse_non_image(folder, files[0], chosen.modality)
    if series_uid is None and Path(files[0]).parent == folder:
        _warn_unread_subfolders(folder)
    skipped = _unparsed_files(Path(files[0]).parent, [s.files for s in series])
    known = {s.files[0]: s.first_geometry for s in series if s.first_geometry is not None}
    _check_slice_spacing(files, skipped, known)
    try:
        return _read_series(files)
    except RuntimeError:
        pass  # a slice with a readable header but broken pixel data: find it (slow path)
    bad = [name for name in files if not _readable(name)]
    good = [name for name in files if name not in bad]
    if not bad or not good:
        raise UNetPlusPlusError(
            f"Cannot read the DICOM series in {Path(files[0]).parent}; its files are corrupt or "
            "in an unsupported encoding."
        )
    _warn_skipped(bad)
    _check_slice_spacing(good, skipped + [Path(name).name for name in bad], known)
    try:
        return _read_series(good)
    except RuntimeError as error:
        raise UNetPlusPlusError(
            f"Cannot read the DICOM series in {Path(files[0]).parent}: {sitk_reason(error)}."
        ) from error


def _first_header(name: str) -> tuple[str, str, Optional[SliceGeometry]]:
    """The Series Description (stripped), Modality (stripped, upper case) and geometry of
    DICOM file ``name``, from one read of its header; "", "", None for a header that cannot be
    read ("" for a tag absent)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(name)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return "", "", None

    def value(key: str) -> str:
        return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""

    return value(_SERIES_DESCRIPTION), value(_MODALITY).upper(), _geometry(reader)


def _geometry(reader: sitk.ImageFileReader) -> SliceGeometry:
    """The geometry of the header ``reader`` has read."""
    return reader.GetOrigin(), reader.GetDirection(), reader.GetSpacing()


def _refuse_non_image(folder: Path, first: str, modality: str) -> None:
    """Refuse a series that holds no image but a DICOM object made on one (``modality``, its
    first file's Modality: SEG, RTSTRUCT, SR, ...), naming ``first`` and the sub-folders that
    hold series: a folder with a DICOM SEG beside the sub-folder of its CT was read as the
    SEG's frames and refused as "a 4D image (for example a time series ...)" (tester 20).
    Raises UNetPlusPlusError."""
    what = _NOT_IMAGES.get(modality)
    if what is None:
        return
    raise UNetPlusPlusError(
        f"{first} is {what} (DICOM Modality {modality}), not an image: give the folder of "
        f"the image series itself{_series_below(folder)}."
    )


def _series_below(folder: Path) -> str:
    """A hint naming up to 3 sub-folders of ``folder`` that hold DICOM series (" (here: A, B)"),
    or "" when none do."""
    where = [
        str(Path(root))
        for root, _, _ in sorted(os.walk(folder))
        if Path(root) != folder and _dicom_series(Path(root))
    ]
    return f" (here: {', '.join(where[:3])})" if where else ""


def _dicom_series(folder: Path) -> list[DicomSeries]:
    """The DICOM series directly in ``folder``; none is not an error here.

    ITK's own "No Series were found" warning (printed for every folder searched, e.g. a patient
    folder above its series) is silenced: the caller reports a folder without DICOM itself.
    """
    _refuse_special_files(folder)
    reader = sitk.ImageSeriesReader()
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        ids = reader.GetGDCMSeriesIDs(str(folder)) or ()
        return [
            DicomSeries(uid, list(reader.GetGDCMSeriesFileNames(str(folder), uid))) for uid in ids
        ]
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _read_series(files: list[str]) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return reader.Execute()


def _readable(name: str) -> bool:
    try:
        sitk.ReadImage(name)
        return True
    except RuntimeError:
        return False


def _looks_like_dicom(path: Path) -> bool:
    """A regular file named as a slice: no extension, a DICOM one, or the digits of a UID
    (``CT.1.3.12.2...16573``, as scanners and TotalSegmentator's example name them; before,
    such a truncated end slice was left out without a word, tester 15), or one holding the
    ``DICM`` mark at byte 128."""
    name = path.name.lower()
    if not path.is_file() or name.startswith(".") or name == "dicomdir":
        return False
    suffix = path.suffix.lower()
    if suffix in _DICOM_SUFFIXES or suffix[1:].isdigit():
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _refuse_special_files(folder: Path) -> None:
    """A pipe, device or socket among the slices is one error: GDCM opened a named pipe in the
    demo series' folder and left 3 of its 20 slices out of the series (tester 15)."""
    for entry in sorted(folder.iterdir()):
        try:
            mode = entry.stat().st_mode
        except OSError:
            continue  # a dangling link: GDCM skips it too
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise UNetPlusPlusError(
                f"The DICOM folder {folder} holds {entry.name}, which is not a file but a pipe "
                "or a device; move it out of the folder (or copy the slices to a folder of "
                "their own) and run again."
            )


def _unparsed_files(folder: Path, series: list[list[str]]) -> list[str]:
    """Names of DICOM-looking files GDCM left out of every series (it does so silently)."""
    listed = {os.path.normpath(f) for files in series for f in files}
    skipped = [
        p.name
        for p in sorted(folder.iterdir())
        if _looks_like_dicom(p) and os.path.normpath(str(p)) not in listed
    ]
    if skipped:
        _warn_skipped([str(folder / name) for name in skipped])
    return skipped


def _warn_skipped(paths: list[str]) -> None:
    warnings.warn(
        f"Skipped {len(paths)} unreadable (truncated or corrupt) DICOM file(s): "
        f"{', '.join(paths)}.",
        UserWarning,
        stacklevel=2,
    )


def _check_slice_spacing(
    files: list[str],
    skipped: Sequence[str] = (),
    known: Optional[dict[str, SliceGeometry]] = None,
) -> None:
    """Refuse series with missing or unevenly spaced slices (they would be distorted).
    ``known``: slice file -> :data:`SliceGeometry` already read (the first file of each series,
    read by :func:`find_series`), not read again."""
    if len(files) < 3:
        return
    reader = sitk.ImageFileReader()
    known = known or {}
    origins, normal, pixel, first = [], None, 0.0, np.eye(3)
    for name in files:
        geometry = known.get(name)
        if geometry is None:
            reader.SetFileName(name)
            try:
                reader.ReadImageInformation()
            except RuntimeError as error:
                raise UNetPlusPlusError(f"Cannot read the DICOM header of {name}.") from error
            geometry = _geometry(reader)
        origin, cosines, spacing = geometry
        origins.append(origin)
        direction = np.array(cosines).reshape(3, 3)
        if normal is None:
            first, normal = direction, direction[:, 2]
            pixel = float(min(spacing[:2]))
        elif np.max(np.abs(direction - first)) > MAX_ORIENTATION_CHANGE:
            _refuse_orientations(name, direction, first)
    positions = np.asarray(origins) @ normal
    folder = Path(files[0]).parent
    _refuse_duplicates(positions, files, folder)
    steps = np.abs(np.diff(positions))
    median = float(np.median(steps))
    worst = int(np.argmax(np.abs(steps - median)))
    if abs(steps[worst] - median) > 0.1 * median:
        because = f" (skipped unreadable file(s): {', '.join(skipped)})" if skipped else ""
        raise UNetPlusPlusError(
            f"The DICOM series in {folder} has missing or unevenly spaced slices{because}: a "
            f"{steps[worst]:.3g} mm gap after {Path(files[worst]).name} where {median:.3g} mm "
            "is expected; restore the slices or export the series as one NRRD or NIfTI file."
        )
    _check_tilt(np.asarray(origins, dtype=float), normal, pixel, folder)


#: Two slices closer than this (mm, along the slice normal) lie at the same position.
SAME_POSITION_MM = 1e-3


def _refuse_duplicates(positions: np.ndarray, files: list[str], folder: Path) -> None:
    """Refuse two slices at one position (mm along the normal), naming both files: a slice
    copied twice (GDCM then leaves the files out of position order, and the gap check named
    a wrong gap) or two series mixed."""
    order = np.argsort(positions, kind="stable")
    same = np.flatnonzero(np.diff(positions[order]) < SAME_POSITION_MM)
    if same.size:
        first, second = (Path(files[order[i]]).name for i in (same[0], same[0] + 1))
        more = f"; {same.size - 1} more such pair(s)" if same.size > 1 else ""
        raise UNetPlusPlusError(
            f"The DICOM series in {folder} has two slices at the same position ({first} and "
            f"{second}, at {positions[order[same[0]]]:.4g} mm along the slice normal{more}): a "
            "slice copied twice, or several series mixed; remove the duplicate files, or export "
            "the series as one NRRD or NIfTI file."
        )


#: The slices' direction cosines may differ from the first slice's by at most this (about 0.06
#: degrees: half a 0.7 mm pixel at the edge of a 512-pixel slice is 0.002 radians).
MAX_ORIENTATION_CHANGE = 1e-3


def _refuse_orientations(name: str, direction: np.ndarray, first: np.ndarray) -> None:
    """One error for a slice whose orientation is not the first slice's: ITK's series reader
    gives every slice the first one's orientation, so a series whose slices turned (or holding
    a localizer of another plane under the same UID) was read as a straight stack, every
    slice but the first rotated off its true place, in silence (tester 15)."""
    cosine = float(np.clip(np.trace(first.T @ direction), -1.0, 3.0))
    angle = float(np.degrees(np.arccos(np.clip((cosine - 1) / 2, -1.0, 1.0))))
    raise UNetPlusPlusError(
        f"The DICOM series in {Path(name).parent} holds slices of different orientations "
        f"({Path(name).name} is turned {angle:.1f} degrees from the first slice): read as one "
        "stack, they would lie off their true places. Remove the slices of other planes (a "
        "localizer, for example) or resample the series onto a regular grid first (3D "
        "Slicer's DICOM import, then save the volume as NRRD)."
    )


#: Slice positions may drift from the first slice's normal by at most this share of the
#: in-plane pixel spacing (DICOM positions are written to about 1e-5 mm).
MAX_TILT_DRIFT_PIXELS = 0.5


def _check_tilt(origins: np.ndarray, normal: np.ndarray, pixel: float, folder: Path) -> None:
    """Refuse slices whose positions (``origins``: (n, 3) mm, sorted) leave the line along the
    first slice's ``normal`` by more than :data:`MAX_TILT_DRIFT_PIXELS` of ``pixel`` (mm): a
    gantry tilt, which ITK's series reader ignores (tester 14: a 20 degree tilt put the 20th
    slice 13 mm off, silently)."""
    offsets = origins - origins[0]
    along = offsets @ normal
    drift = np.linalg.norm(offsets - along[:, None] * normal[None, :], axis=1)
    worst = int(np.argmax(drift))
    if drift[worst] <= MAX_TILT_DRIFT_PIXELS * pixel:
        return
    angle = float(np.degrees(np.arctan2(drift[worst], abs(along[worst]))))
    raise UNetPlusPlusError(
        f"The DICOM series in {folder} was acquired with a gantry tilt (its slices advance "
        f"{angle:.1f} degrees away from their normal): read as a stack, its slice {worst + 1} "
        f"would lie {drift[worst]:.1f} mm from its true place, and the result with it. Resample "
        "it onto a regular grid first (3D Slicer's DICOM import with acquisition geometry "
        "regularization, then save the volume as NRRD; or dcm2niix, which writes a "
        "tilt-corrected file) and segment that file."
    )
