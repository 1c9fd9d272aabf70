"""Image-content fingerprints of training cases: the same image under another name is found.

A fine-tune (``--init``) keeps its parent's held-out cases out of training and does not validate
on the parent's training cases (parent_split.py). Matching by case id and patient missed a
renamed copy (a Slicer export saved as ``case001``) and let it leak. A case's print has three
parts, all over its voxels read as float32 in a canonical axis order (the stored axes permuted
and flipped to the nearest of x, y, z in LPS), all channels of a slice together:

- ``image``: sha256 (first 128 bits, hex) of the method, channel count, shape and the digests
  of every slice: the same whole image;
- ``slices``: sha256 (first 48 bits, hex) of each axial slice (canonical z) that is not
  near-constant (in some channel, at least :data:`MIN_VARYING_VOXELS` voxels differ from its
  first voxel and as many from its minimum): a slab of the same image, such as the first 30
  slices of a CT, shares them;
- ``patches``: the in-plane patch prints of case_patches.py (a bottom-k sketch of 9 x 9 patches
  at positions sampled by content): a crop within the slices shares some of them.

Each slice is hashed in its canonical mirror state: of the slice and its flips left-right,
front-back and both, the smallest in row-major order of the voxels' bit patterns; the patch
prints are flip-invariant too. So a mirror image (the array flipped in-plane, the direction
kept, as a converter that drops a flip writes it; tester 11) prints as its original.

What it catches: the same voxels under another file name or case id, in another file format
(NRRD, NIfTI, MHA, a DICOM series), voxel type (int16 saved as float32; every value an integer
type holds is exact in float32) or axis order (a flipped or permuted copy with a matching
direction), with another origin or spacing (neither is hashed: identical voxel values are the
same acquisition), mirrored in-plane; a slab of whole axial slices of it (or an image that
contains the parent's slab); and a crop within the slices (over 10 slices and a quarter of the
slice area, about 15 shared patch prints expected, against the rule's
:data:`MIN_SHARED_PATCHES`; scripts/content_match_margins.py measures both sides). What it
does not catch: a resampled copy, any change of value (a rescaled or offset intensity, lossy
compression, a re-reconstruction), an oblique axis order, a transposed slice (x and y swapped,
the direction kept), a crop that shares fewer than MIN_SHARED_PATCHES sampled patches (a small
or mostly background one); two acquisitions of one patient differ anyway and are
matched by patient id only.

Models trained before this method record :data:`LEGACY_METHOD` prints (whole image and slices,
no mirror state, no patches); those are still read and compared with prints of that method
(``legacy``), so renamed copies and slabs are still found, mirror images and crops are not.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .case_patches import PATCH, PATCH_HEX, PatchSketch, stored_count

#: The method recorded beside the prints in model.json; another method's are not compared.
CONTENT_METHOD = "float32-canonical-axes-mirror-sha256-image128-slices48-patches9x9-48/v2"
#: The method of models trained before v2: read and compared with ``CasePrint.legacy`` only.
LEGACY_METHOD = "float32-canonical-axes-sha256-image128-slices48/v1"
#: A slice with fewer voxels than this differing from its first voxel or from its minimum, in
#: every channel (an empty border slice, a zero slice of a skull-stripped MR with a few brain
#: voxels), gives no slice print: such slices can be alike across patients.
MIN_VARYING_VOXELS = 64
#: Two cases whose patch sketches share at least this many prints hold the same in-plane
#: patches (a crop within the slices): different patients of the shared data share at most one
#: (a chance collision of two 40-bit prints; scripts/content_match_margins.py).
MIN_SHARED_PATCHES = 2
SLICE_HEX = 12  # 48 bits per slice print
SAME_IMAGE, SHARED_SLICES, SHARED_PATCHES = "same image", "shared slices", "shared patches"
PATCH_WORDS = f"{PATCH}x{PATCH}-voxel in-plane patches"
_ROWS = 8  # rows compared at a time to find a slice's mirror state
_STATES = ((False, False), (False, True), (True, False), (True, True))  # (flip y, flip x)


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


def _flipped(plane: np.ndarray, state: tuple[bool, bool]) -> np.ndarray:
    """``plane`` (C, y, x) flipped front-back and / or left-right (a view)."""
    return plane[:, :: -1 if state[0] else 1, :: -1 if state[1] else 1]


def mirror_state(bits: np.ndarray) -> tuple[bool, bool]:
    """(flip y, flip x) that puts a slice ``bits`` (C, y, x; float32 bit patterns as uint32)
    in its canonical mirror state: the smallest of it and its three in-plane flips in row-major
    order. The four flips of one slice share it. Rows are compared in blocks that double in
    height (an empty top of an MR slice is passed in a few steps)."""
    alive = list(_STATES)
    for channel in range(bits.shape[0]):
        top, height = 0, _ROWS
        while top < bits.shape[1] and len(alive) > 1:
            rows = np.stack([_flipped(bits, s)[channel, top : top + height].ravel() for s in alive])
            while len(alive) > 1:
                differ = (rows != rows[:1]).any(axis=0)
                if not differ.any():
                    break
                column = rows[:, int(differ.argmax())]
                smallest = column == column.min()
                alive, rows = [s for s, k in zip(alive, smallest) if k], rows[smallest]
            top, height = top + height, 2 * height
        if len(alive) == 1:
            return alive[0]
    return alive[0]  # the remaining states are the same voxels


@dataclass(frozen=True)
class CasePrint:
    """A case's fingerprint: ``image`` (32 hex), its non-constant axial ``slices`` (12 hex
    each, in canonical z order), its in-plane ``patches`` sketch (12 hex each, ascending) and,
    where needed, the ``legacy`` (LEGACY_METHOD) print of the same case."""

    image: str
    slices: tuple[str, ...] = ()
    patches: tuple[str, ...] = ()
    legacy: Optional[CasePrint] = None

    def slices_text(self) -> str:
        """The slice prints as one string (model.json keeps them compact)."""
        return "".join(self.slices)

    def patches_text(self) -> str:
        """The patch prints as one string."""
        return "".join(self.patches)

    def stored(self) -> CasePrint:
        """This print with the patch prints model.json keeps (case_patches.stored_count)."""
        return replace(self, patches=self.patches[: stored_count(len(self.slices))])

    @classmethod
    def from_text(cls, image: str, slices: str = "", patches: str = "") -> CasePrint:
        """The print whose slice and patch prints are ``slices`` and ``patches`` as
        :meth:`slices_text` and :meth:`patches_text` wrote them."""
        return cls(image, _pieces(slices, SLICE_HEX), _pieces(patches, PATCH_HEX))


def _pieces(text: str, width: int) -> tuple[str, ...]:
    return tuple(text[i : i + width] for i in range(0, len(text), width))


def case_print(array: np.ndarray, direction: np.ndarray, legacy: bool = False) -> CasePrint:
    """The print of an image ``array`` (C, z, y, x), any numeric type, stored with
    ``direction`` (3, 3); with ``legacy``, the LEGACY_METHOD print (no mirror state, no
    patches) instead. One float32 copy of one slice (all channels) at a time."""
    view = np.asarray(array)
    axes = canonical_axes(np.asarray(direction, float))
    if axes is not None:
        order, flips = axes
        view = np.transpose(view, (0, *(a + 1 for a in order)))
        for axis in flips:
            view = np.flip(view, axis + 1)
    method = LEGACY_METHOD if legacy else CONTENT_METHOD
    image = hashlib.sha256(f"{method};{'x'.join(map(str, view.shape))};".encode())
    slices, patches = [], PatchSketch()
    for z in range(view.shape[1]):
        plane = np.ascontiguousarray(view[:, z], dtype="<f4")
        if not legacy:
            bits = plane.view("<u4")
            plane = np.ascontiguousarray(_flipped(plane, mirror_state(bits)))
        digest = hashlib.sha256(plane.data).digest()
        image.update(digest)
        flat = plane.reshape(len(plane), -1)
        if (_varying(flat, flat[:, :1]) & _varying(flat, flat.min(axis=1, keepdims=True))).any():
            slices.append(digest.hex()[:SLICE_HEX])
            if not legacy:
                patches.add(bits)
    found = CasePrint(image.hexdigest()[:32], tuple(slices))
    return found if legacy else replace(found, patches=_pieces(patches.text(), PATCH_HEX))


def training_print(
    image: str, labels: np.ndarray, spacing_xyz: Sequence[float], direction: np.ndarray
) -> str:
    """sha256 (first 128 bits, hex) of what training reads of a case: its ``image`` print
    (:func:`case_print`), its model-class ``labels`` (z, y, x, on the image grid) and its
    spacing (x, y, z mm), the labels and spacing in the canonical axis order the image print
    uses, so a case re-saved in another axis order keeps its print. ``--resume`` compares it
    with the checkpoint's (resume_checks.py): a replaced image or label changes it."""
    view, spacing = np.asarray(labels), [round(float(v), 4) for v in spacing_xyz]
    axes = canonical_axes(np.asarray(direction, float))
    if axes is not None:
        order, flips = axes
        view = np.transpose(view, order)
        for axis in flips:
            view = np.flip(view, axis)
        spacing_zyx = spacing[::-1]
        spacing = [spacing_zyx[a] for a in order][::-1]
    digest = hashlib.sha256(f"{image};{'x'.join(map(str, view.shape))};{spacing!r};".encode())
    dtype = "<u1" if view.size == 0 or (view.min() >= 0 and view.max() <= 255) else "<i4"
    for plane in view:  # one slice at a time: no copy of the whole label map
        digest.update(np.ascontiguousarray(plane, dtype=dtype).data)
    return digest.hexdigest()[:32]


def _varying(flat: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per channel (rows of ``flat``): at least MIN_VARYING_VOXELS voxels differ from
    ``reference`` (one value per row). Every 16th voxel is counted first: enough there is
    enough in all (the usual slice, counted in a sixteenth of the time)."""
    found = np.count_nonzero(flat[:, ::16] != reference, axis=1) >= MIN_VARYING_VOXELS
    if found.all():
        return found
    return np.count_nonzero(flat != reference, axis=1) >= MIN_VARYING_VOXELS


def volume_print(volume, legacy: bool = False) -> CasePrint:
    """The print of an engine ``Volume`` (array (C, z, y, x), ``direction``); ``legacy``: as
    :func:`case_print`."""
    return case_print(volume.array, volume.direction, legacy)


class ContentIndex:
    """One side (training or validation) of a model's recorded prints, to look cases up in."""

    def __init__(
        self,
        images: Mapping[str, str],
        slices: Optional[Mapping[str, str]] = None,
        patches: Optional[Mapping[str, str]] = None,
        method: str = CONTENT_METHOD,
    ):
        """``images``: case id -> image print; ``slices`` and ``patches``: case id -> its slice
        or patch prints as one string (:meth:`CasePrint.slices_text`, ``patches_text``);
        ``method``: the method they were made with (LEGACY_METHOD: matched with
        ``CasePrint.legacy``)."""
        self.method = method
        self.by_image = {str(fp): str(case) for case, fp in images.items()}
        self.by_slice: dict[str, str] = {}
        for case, text in (slices or {}).items():
            for piece in _pieces(str(text), SLICE_HEX):
                self.by_slice.setdefault(piece, str(case))
        self.by_patch: dict[str, list[str]] = {}
        for case, text in (patches or {}).items():
            for piece in _pieces(str(text), PATCH_HEX):
                self.by_patch.setdefault(piece, []).append(str(case))

    def match(self, found: Optional[CasePrint]) -> Optional[tuple[str, str, str]]:
        """(the recorded case id, ``"same image"``, ``"shared slices"`` or ``"shared
        patches"``, what matched in words) of the recorded case ``found`` is a copy, a slab or
        a crop of (or contains), or None."""
        if found is not None and self.method == LEGACY_METHOD:
            found = found.legacy
        if found is None:
            return None
        if found.image in self.by_image:
            return self.by_image[found.image], SAME_IMAGE, "the same image"
        shared = Counter(self.by_slice[s] for s in found.slices if s in self.by_slice)
        if shared:
            case, count = shared.most_common(1)[0]
            return case, SHARED_SLICES, f"{count} whole axial slice(s)"
        counts = Counter(c for p in found.patches for c in self.by_patch.get(p, ()))
        case, count = max(counts.items(), key=lambda item: item[1], default=("", 0))
        if count >= MIN_SHARED_PATCHES:
            return case, SHARED_PATCHES, f"{count} sampled {PATCH_WORDS}"
        return None


def parent_method(manifest: Any) -> Optional[str]:
    """The method of the prints a parent ``manifest`` (ModelManifest or None) records, or None."""
    found = (getattr(manifest, "training", None) or {}).get("case_fingerprints")
    return str(found.get("method")) if isinstance(found, Mapping) else None


def recorded_indexes(training: Optional[Mapping]) -> Optional[dict[str, ContentIndex]]:
    """The ``training`` and ``validation`` ContentIndex of a model.json ``training`` record's
    ``case_fingerprints`` (CONTENT_METHOD or LEGACY_METHOD), or None when it holds none or
    another method's."""
    found = (training or {}).get("case_fingerprints")
    if not isinstance(found, Mapping) or found.get("method") not in (CONTENT_METHOD, LEGACY_METHOD):
        return None
    return {
        side: ContentIndex(
            found.get(side) or {},
            found.get(f"{side}_slices") or {},
            found.get(f"{side}_patches") or {},
            str(found["method"]),
        )
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
    for side, ids in (("training", training), ("validation", validation)):
        record[f"{side}_patches"] = {i: content[i].stored().patches_text() for i in ids}
    return record


def join_copies(cases: Sequence, content: Mapping[str, CasePrint]) -> tuple[list, list[str]]:
    """``cases`` (CaseFiles) with the patients of cases whose prints match (the same image, a
    shared axial slice, or MIN_SHARED_PATCHES shared patch prints) joined into one (the patient
    id of the first in sorted order), so the split by patient never puts a copy on the other
    side of its original; and one note per copy. Cases without a print in ``content`` are left
    as they are."""
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
    for (original, case), count in _shared_patches(cases, content):
        a, b = root(original.patient_id), root(case.patient_id)
        if a != b:
            group[max(a, b)] = min(a, b)
            notes.append(
                f"case {case.case_id} shares {count} sampled {PATCH_WORDS} with case "
                f"{original.case_id} (one is a crop within the slices of the other): patients "
                f"{original.patient_id} and {case.patient_id} are split as one"
            )
    joined = [
        case if root(case.patient_id) == case.patient_id
        else replace(case, patient_id=root(case.patient_id))
        for case in cases
    ]  # fmt: skip
    return joined, notes


def _shared_patches(cases: Sequence, content: Mapping[str, CasePrint]) -> list[tuple[tuple, int]]:
    """((case, later case), shared patch prints) of the pairs of ``cases`` that share at least
    MIN_SHARED_PATCHES, in the cases' order."""
    holders: dict[str, list[int]] = {}
    for index, case in enumerate(cases):
        found = content.get(case.case_id)
        for piece in found.patches if found is not None else ():
            holders.setdefault(piece, []).append(index)
    pairs: Counter = Counter()
    for held in holders.values():
        pairs.update((a, b) for n, a in enumerate(held) for b in held[n + 1 :])
    return [
        ((cases[a], cases[b]), count)
        for (a, b), count in sorted(pairs.items())
        if count >= MIN_SHARED_PATCHES
    ]
