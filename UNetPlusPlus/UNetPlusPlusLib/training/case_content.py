"""Image-content fingerprints of training cases: the same image under another name is found.

A fine-tune (``--init``) keeps its parent's held-out cases out of training and does not validate
on the parent's training cases (parent_split.py). Matching by case id and patient missed a
renamed copy (a Slicer export saved as ``case001``) and let it leak. A case's print has two
parts, both over its voxels read as float32 in a canonical axis order (the stored axes permuted
and flipped to the nearest of x, y, z in LPS), all channels of a slice together:

- ``image``: sha256 (first 128 bits, hex) of the method, channel count, shape and the digests
  of every slice: the same whole image;
- ``slices``: sha256 (first 48 bits, hex) of each axial slice (canonical z) that is not
  near-constant (in some channel, at least :data:`MIN_VARYING_VOXELS` voxels differ from its
  first voxel and as many from its minimum): a slab of the same image, such as the first 30
  slices of a CT, shares them.

What it catches: the same voxels under another file name or case id, in another file format
(NRRD, NIfTI, MHA, a DICOM series), voxel type (int16 saved as float32; every value an integer
type holds is exact in float32) or axis order (a flipped or permuted copy with a matching
direction), and with another origin or spacing (neither is hashed: identical voxel values are
the same acquisition); and a slab of whole axial slices of it (or an image that contains the
parent's slab). What it does not catch: a crop within the slices, a resampled copy, any change
of value (a rescaled or offset intensity, lossy compression, a re-reconstruction), an
oblique axis order and a mirror image (the array flipped, the direction kept; tester 11);
two acquisitions of one patient differ anyway and are matched by patient id only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional, Sequence

import numpy as np

#: The method recorded beside the prints in model.json; another method's are not compared.
CONTENT_METHOD = "float32-canonical-axes-sha256-image128-slices48/v1"
#: A slice with fewer voxels than this differing from its first voxel or from its minimum, in
#: every channel (an empty border slice, a zero slice of a skull-stripped MR with a few brain
#: voxels), gives no slice print: such slices can be alike across patients.
MIN_VARYING_VOXELS = 64
SLICE_HEX = 12  # 48 bits per slice print
SAME_IMAGE, SHARED_SLICES = "same image", "shared slices"


def canonical_axes(direction: np.ndarray) -> Optional[tuple[tuple[int, int, int], tuple]]:
    """For a (3, 3) ``direction`` (column a: LPS direction of index axis a), the transpose and
    the flips that put a (z, y, x) array into LPS axis order, or None for an oblique direction
    (two index axes nearest to the same LPS axis)."""
    nearest = np.abs(direction).argmax(axis=0)  # LPS axis of each index axis (x, y, z)
    if sorted(nearest.tolist()) != [0, 1, 2]:
        return None
    index_of = {int(p): a for a, p in enumerate(nearest)}  # LPS axis -> index axis
    order = tuple(2 - index_of[p] for p in (2, 1, 0))  # array axes (z, y, x) for LPS (z, y, x)
    flips = tuple(i for i, p in enumerate((2, 1, 0)) if direction[p, index_of[p]] < 0)
    return order, flips


@dataclass(frozen=True)
class CasePrint:
    """A case's fingerprint: ``image`` (32 hex) and its non-constant axial ``slices`` (12 hex
    each, in canonical z order)."""

    image: str
    slices: tuple[str, ...] = ()

    def slices_text(self) -> str:
        """The slice prints as one string (model.json keeps them compact)."""
        return "".join(self.slices)

    @classmethod
    def from_text(cls, image: str, slices: str = "") -> CasePrint:
        """The print whose slice prints are ``slices`` as :meth:`slices_text` wrote them."""
        return cls(
            image, tuple(slices[i : i + SLICE_HEX] for i in range(0, len(slices), SLICE_HEX))
        )


def case_print(array: np.ndarray, direction: np.ndarray) -> CasePrint:
    """The print of an image ``array`` (C, z, y, x), any numeric type, stored with
    ``direction`` (3, 3). One float32 copy of one slice (all channels) at a time."""
    view = np.asarray(array)
    axes = canonical_axes(np.asarray(direction, float))
    if axes is not None:
        order, flips = axes
        view = np.transpose(view, (0, *(a + 1 for a in order)))
        for axis in flips:
            view = np.flip(view, axis + 1)
    image = hashlib.sha256(f"{CONTENT_METHOD};{'x'.join(map(str, view.shape))};".encode())
    slices = []
    for z in range(view.shape[1]):
        plane = np.ascontiguousarray(view[:, z], dtype="<f4")
        digest = hashlib.sha256(plane.data).digest()
        image.update(digest)
        flat = plane.reshape(len(plane), -1)
        if (_varying(flat, flat[:, :1]) & _varying(flat, flat.min(axis=1, keepdims=True))).any():
            slices.append(digest.hex()[:SLICE_HEX])
    return CasePrint(image.hexdigest()[:32], tuple(slices))


def _varying(flat: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per channel (rows of ``flat``): at least MIN_VARYING_VOXELS voxels differ from
    ``reference`` (one value per row)."""
    return np.count_nonzero(flat != reference, axis=1) >= MIN_VARYING_VOXELS


def volume_print(volume) -> CasePrint:
    """The print of an engine ``Volume`` (array (C, z, y, x), ``direction``)."""
    return case_print(volume.array, volume.direction)


class ContentIndex:
    """One side (training or validation) of a model's recorded prints, to look cases up in."""

    def __init__(self, images: Mapping[str, str], slices: Optional[Mapping[str, str]] = None):
        """``images``: case id -> image print; ``slices``: case id -> its slice prints as one
        string (:meth:`CasePrint.slices_text`)."""
        self.by_image = {str(fp): str(case) for case, fp in images.items()}
        self.by_slice: dict[str, str] = {}
        for case, text in (slices or {}).items():
            for piece in CasePrint.from_text("", str(text)).slices:
                self.by_slice.setdefault(piece, str(case))

    def match(self, found: Optional[CasePrint]) -> Optional[tuple[str, str]]:
        """(the recorded case id, ``"same image"`` or ``"shared slices"``) of the recorded case
        ``found`` is a copy or a slab of, or None."""
        if found is None:
            return None
        if found.image in self.by_image:
            return self.by_image[found.image], SAME_IMAGE
        for piece in found.slices:
            if piece in self.by_slice:
                return self.by_slice[piece], SHARED_SLICES
        return None


def recorded_indexes(training: Optional[Mapping]) -> Optional[dict[str, ContentIndex]]:
    """The ``training`` and ``validation`` ContentIndex of a model.json ``training`` record's
    ``case_fingerprints``, or None when it holds none or another method's."""
    found = (training or {}).get("case_fingerprints")
    if not isinstance(found, Mapping) or found.get("method") != CONTENT_METHOD:
        return None
    return {
        side: ContentIndex(found.get(side) or {}, found.get(f"{side}_slices") or {})
        for side in ("training", "validation")
    }


def fingerprint_record(
    content: Mapping[str, CasePrint], training: list[str], validation: list[str]
) -> Optional[dict]:
    """model.json ``training.case_fingerprints`` for the case ids of each side, or None when a
    case has no print (``content``: case id -> CasePrint)."""
    if any(content.get(i) is None for i in [*training, *validation]):
        return None
    record: dict = {"method": CONTENT_METHOD}
    for side, ids in (("training", training), ("validation", validation)):
        record[side] = {i: content[i].image for i in ids}
    for side, ids in (("training", training), ("validation", validation)):
        record[f"{side}_slices"] = {i: content[i].slices_text() for i in ids}
    return record


def join_copies(cases: Sequence, content: Mapping[str, CasePrint]) -> tuple[list, list[str]]:
    """``cases`` (CaseFiles) with the patients of cases whose prints match (the same image, or
    a shared axial slice) joined into one (the patient id of the first in sorted order), so the
    split by patient never puts a copy on the other side of its original; and one note per
    copy. Cases without a print in ``content`` are left as they are."""
    group = {case.patient_id: case.patient_id for case in cases}

    def root(patient: str) -> str:
        while group[patient] != patient:
            patient = group[patient]
        return patient

    first: dict[str, Any] = {}
    notes = []
    for case in cases:
        found = content.get(case.case_id)
        if found is None:
            continue
        for key in (f"image:{found.image}", *(f"slice:{s}" for s in found.slices)):
            original = first.setdefault(key, case)
            a, b = root(original.patient_id), root(case.patient_id)
            if a != b:
                group[max(a, b)] = min(a, b)
                notes.append(
                    f"case {case.case_id} has the image content of case {original.case_id} "
                    f"(the same image or shared axial slices): patients {original.patient_id} "
                    f"and {case.patient_id} are split as one"
                )
    joined = [
        case if root(case.patient_id) == case.patient_id
        else replace(case, patient_id=root(case.patient_id))
        for case in cases
    ]  # fmt: skip
    return joined, notes
