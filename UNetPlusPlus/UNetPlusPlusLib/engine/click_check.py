"""What lies under a lung-nodule click, in Hounsfield units, before and after inference.

A click on the spine gave a 22.7 ml "nodule" with only the box-edge warning (tester): the
model outlines what it is shown. Before inference the click's neighbourhood is read from the
CT (a few thousand voxels, no resampling):

- **air outside the body**: the voxels within :data:`BALL_MM` of the click have a median below
  :data:`AIR_HU`, and the air around the click on its slice (below :data:`BODY_HU`, connected
  to it) reaches the image's edge and holds at most :data:`LUNG_AIR_SHARE` of voxels above
  -900 HU: outside air is about -1000 HU, lung cut by the image's edge is not; and at most
  :data:`AIR_LUNG_SHARE` lung lies within :data:`LUNG_BALL_MM` (not a faint nodule in dark lung).
  Refused (``UNetPlusPlusError``): nothing there can be a nodule.
- **outside the body, whatever the HU** (a foam pad under the patient, about -835 HU; air near
  the skin; the table top, solid): the click's voxel lies outside the body's outline on its
  slice (the largest region above BODY_HU, holes filled, of at least :data:`MIN_BODY_CM2`),
  unless that region touches the image's edge (then undecided). Warned, before the bone and
  soft-tissue rules, whose anatomical wording would be wrong there.
- **bone** (or contrast-filled blood): that median above :data:`BONE_HU`, with little lung
  within :data:`LUNG_BALL_MM` (at most :data:`BONE_LUNG_SHARE`: a calcified nodule is small and
  lies in the lung). Warned.
- **soft tissue away from the lung**: no more than :data:`TISSUE_LUNG_SHARE` lung within
  :data:`LUNG_BALL_MM` where the image shows that neighbourhood (the heart, mediastinum, chest
  wall, liver). Warned.

After inference, a kept segment whose mean is above :data:`SEGMENT_BONE_HU` over more than
:data:`SEGMENT_BONE_ML` is warned as bone (the volume range is ``volume_plausibility.py``'s).
Thresholds and their measured margins on the LIDC nodules and on clicks on spine, ribs, heart,
liver, outside air and the table of the shared CTs: docs/INPUT_CHECKS_CT.md, "What lies under
a click".
numpy and SimpleITK (one 2D connected-component pass for the air rule).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import UNetPlusPlusError
from . import run_memo
from .volume import Volume

#: SNOMED CT code of the lung, the anatomic region of the labels these checks are for.
LUNG_CODE = "39607008"
#: Radius (mm) of the ball whose median HU is the clicked tissue.
BALL_MM = 3.0
#: Radius (mm) of the ball whose lung share tells lung from the body's solid parts.
LUNG_BALL_MM = 20.0
#: Lung parenchyma (HU), as in the anatomy check; below is gas, above is soft tissue.
LUNG_LOW_HU, LUNG_HIGH_HU = -950.0, -400.0
#: Below this median (HU) the click is on air or gas.
AIR_HU = -900.0
#: Soft tissue of the body is above this (HU) (the anatomy check's body threshold).
BODY_HU = -400.0
#: The click's air on its slice with at most this share of voxels above AIR_HU (lung, or the
#: skin's partial-volume rim) is outside air.
LUNG_AIR_SHARE = 0.2
#: The body's outline on the click's slice must cover at least this (cm^2; a neck about 100,
#: a torso 300 and more) for the outside-the-body rule: in a crop, the largest region above
#: BODY_HU is a vessel or the nodule itself.
MIN_BODY_CM2 = 100.0
#: Outside air has at most this share of lung parenchyma within LUNG_BALL_MM (measured: at most
#: 0.247, air 10 mm in front of example_ct); clicks on faint LIDC nodules in dark lung, refused
#: before as outside air, have at least 0.361 (tester 13: LIDC-IDRI-0140_R_1, 0416_R_1, 0659_R_4).
AIR_LUNG_SHARE = 0.3
#: Above this median (HU) the click is on bone.
BONE_HU = 300.0
#: A bone click with at most this share of lung around it is warned (calcified nodules have more).
BONE_LUNG_SHARE = 0.1
#: A soft-tissue click (median between AIR_HU and BONE_HU) with at most this lung share around.
TISSUE_LUNG_SHARE = 0.05
#: The lung ball must lie at least this share inside the image for the tissue rule.
MIN_SEEN_SHARE = 0.25
#: A kept segment whose mean is above this (HU) and larger than SEGMENT_BONE_ML is bone-like:
#: calcified nodules reach a mean of 609 HU, but at most 1.57 ml (LIDC outlines above 300 HU).
SEGMENT_BONE_HU = 300.0
SEGMENT_BONE_ML = 3.0


@dataclass
class Click:
    """What lies under a click: the median HU within BALL_MM, the lung share within
    LUNG_BALL_MM (of the voxels inside the image) and how much of that ball the image holds."""

    median_hu: float
    lung_share: float
    seen_share: float
    outside_air: bool = False
    verdict: str = ""  # "", "outside_air", "outside_body", "bone", "soft_tissue"


def _ball(volume: Volume, point: Sequence[float], radius: float) -> tuple[np.ndarray, float]:
    """CT values (channel 0) within ``radius`` mm of ``point`` (LPS) and the share of the
    ball's voxel positions that lie inside the image.

    The ball is the voxel positions of the box ``ceil(radius / spacing)`` around the click's
    nearest voxel whose physical distance (``norm(direction @ (spacing * offset))``) is at most
    ``max(radius, spacing / 2)``; values come in x-major order (x, then y, then z). The distance
    is computed on the box separably (one 1D table per index axis, broadcast), and only the
    positions within a relative 1e-9 of the radius are measured again the element-wise way
    (``step @ direction.T``, then ``np.linalg.norm``), so the ball is the same voxel set as the
    plain element-wise computation, with 14x less CPU (a 20 mm and a 3 mm ball on an LIDC crop)."""
    grid = volume.grid
    centre = grid.physical_to_index(np.asarray(point, dtype=np.float64))  # x, y, z
    spacing = np.asarray(grid.spacing, dtype=np.float64)
    reach = np.ceil(radius / spacing).astype(int)
    base = np.floor(centre + 0.5).astype(int)
    limit = max(radius, 0.5 * min(grid.spacing))
    index = [np.arange(b - r, b + r + 1) for b, r in zip(base, reach)]  # per axis
    steps = [(i - c) * s for i, c, s in zip(index, centre, spacing)]  # mm along index axes
    shapes = ((-1, 1, 1), (1, -1, 1), (1, 1, -1))
    direction = grid.direction
    distance2 = np.zeros([len(i) for i in index])
    for row in direction:  # one physical component at a time, broadcast over the box
        component = sum((st * d).reshape(sh) for st, d, sh in zip(steps, row, shapes))
        distance2 += component * component
    # Positions this close to the radius are measured again the element-wise way.
    bound = sum(np.abs(row) @ np.array([np.abs(st).max() for st in steps]) for row in direction)
    tol = 1e-9 * (bound * bound + limit * limit)
    near = distance2 <= limit * limit - tol
    shell = np.argwhere(np.abs(distance2 - limit * limit) <= tol)
    if len(shell):
        step = np.stack([steps[a][shell[:, a]] for a in range(3)], axis=1)
        near[tuple(shell.T)] = np.linalg.norm(step @ direction.T, axis=1) <= limit
    total = int(np.count_nonzero(near))
    size = np.asarray(grid.size_xyz)
    lo = np.clip(-(base - reach), 0, None)  # the box's part inside the image, per axis
    hi = np.clip(size - (base - reach), None, 2 * reach + 1)
    if np.any(hi <= lo):
        return np.empty(0, dtype=volume.array.dtype), 0.0
    kept = np.nonzero(near[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])  # x-major order
    x, y, z = (k + (b - r) + low for k, b, r, low in zip(kept, base, reach, lo))
    values = volume.array[0][z, y, x]
    return values, len(values) / total if total else 0.0


def _click_slice(volume: Volume, point: Sequence[float]) -> tuple[np.ndarray, int, int]:
    """The axial slice (the array's k-plane, HU) nearest ``point`` (LPS mm) and the click's
    (row j, column i) on it, clipped to the image."""
    i, j, k = np.floor(volume.grid.physical_to_index(np.asarray(point, float)) + 0.5).astype(int)
    plane = volume.array[0, int(np.clip(k, 0, volume.array.shape[1] - 1))]
    return plane, int(np.clip(j, 0, plane.shape[0] - 1)), int(np.clip(i, 0, plane.shape[1] - 1))


def _outside_air(volume: Volume, point: Sequence[float]) -> bool:
    """Whether the air at ``point`` is connected, on its axial slice (the array's k-plane),
    to the image's edge and holds at most LUNG_AIR_SHARE of lung-like voxels."""
    import SimpleITK as sitk

    plane, j, i = _click_slice(volume, point)
    air = plane < BODY_HU
    if not air[j, i]:
        return False
    image = sitk.GetImageFromArray(air.astype(np.uint8))
    regions = sitk.GetArrayFromImage(sitk.ConnectedComponent(image))
    region = regions == regions[j, i]
    edge = region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any()
    if not edge:
        return False
    lung = np.count_nonzero(region & (plane >= AIR_HU))  # lung, or the body's partial-volume rim
    return lung <= LUNG_AIR_SHARE * np.count_nonzero(region)


def _outside_body(volume: Volume, point: Sequence[float]) -> bool:
    """Whether ``point`` lies outside the body's outline on its axial slice, whatever its HU
    (air, a foam pad, the table top, an arm beside the trunk): the outline is the largest
    connected region above BODY_HU with its holes filled (the lungs, airways and bowel gas are
    holes of it). Undecided (False) when that region touches the image's edge (a small field
    of view: the outline is open) or covers less than MIN_BODY_CM2 (a crop: no body in it)."""
    import SimpleITK as sitk

    plane, j, i = _click_slice(volume, point)
    regions = sitk.RelabelComponent(
        sitk.ConnectedComponent(sitk.GetImageFromArray((plane >= BODY_HU).astype(np.uint8)))
    )
    body = sitk.GetArrayFromImage(regions) == 1
    if body[j, i]:  # on the body itself (liver, spine, chest wall): inside its outline
        return False
    if not body.any() or body[0].any() or body[-1].any() or body[:, 0].any() or body[:, -1].any():
        return False
    outline = sitk.BinaryFillhole(sitk.GetImageFromArray(body.astype(np.uint8)))
    outline = sitk.GetArrayFromImage(outline) > 0
    area = np.count_nonzero(outline) * volume.spacing[0] * volume.spacing[1] / 100.0  # cm^2
    return area >= MIN_BODY_CM2 and not outline[j, i]


def measure_click(volume: Volume, point: Sequence[float]) -> Click:
    """What lies under ``point`` (LPS mm) in the CT ``volume`` (HU, channel 0); the click must
    lie on the image (the CLI and the prompt boxes check that first)."""
    near, _ = _ball(volume, point, BALL_MM)
    around, seen = _ball(volume, point, LUNG_BALL_MM)
    lung = (around > LUNG_LOW_HU) & (around <= LUNG_HIGH_HU)
    click = Click(
        median_hu=float(np.median(near)) if near.size else float("nan"),
        lung_share=float(np.mean(lung)) if around.size else 0.0,
        seen_share=seen,
    )
    if click.median_hu < AIR_HU:
        click.outside_air = click.lung_share <= AIR_LUNG_SHARE and _outside_air(volume, point)
    if click.outside_air:
        click.verdict = "outside_air"
    elif _outside_body(volume, point):  # a foam pad, the air near the skin, the table: any HU
        click.verdict = "outside_body"
    elif click.median_hu > BONE_HU:
        click.verdict = "bone" if click.lung_share <= BONE_LUNG_SHARE else ""
    elif click.median_hu >= AIR_HU and click.lung_share <= TISSUE_LUNG_SHARE:
        click.verdict = "soft_tissue" if seen >= MIN_SEEN_SHARE else ""
    return click


def applies(manifest) -> bool:
    """Whether the click checks apply: a point-prompted model (``manifest.prompt`` kind
    "point") with a channel normalised as ``ct`` and a label in the lung (terminology
    anatomic region SCT 39607008, Lung: the shipped ``lung-nodule``)."""
    prompt = getattr(manifest, "prompt", None) or {}
    if prompt.get("kind") != "point":
        return False
    if not any(c.normalization["kind"] == "ct" for c in manifest.channels):
        return False
    regions = [((x.terminology or {}).get("anatomic_region") or {}) for x in manifest.labels]
    return any(region.get("code") == LUNG_CODE for region in regions)


def _measured(manifest, volume: Volume, point: Sequence[float]) -> Click:
    """:func:`measure_click` on the model's first CT channel of ``volume``; once per run inside
    ``run_memo.measured_once`` (the CLI's refusal before torch, then the click's warnings)."""
    channels = [i for i, c in enumerate(manifest.channels) if c.normalization["kind"] == "ct"]
    first = channels[0]
    channel = volume.with_array(volume.array[first : first + 1])  # a view: no copy
    key = (first, tuple(float(v) for v in point))
    return run_memo.once(volume, key, lambda: measure_click(channel, point))


def refuse_outside_air(
    manifest, volume: Volume, point: Sequence[float], where: str = "The clicked point"
) -> Optional[Click]:
    """Raise UNetPlusPlusError when ``point`` (LPS mm) of a lung CT point model
    (:func:`applies`) lies where no nodule can be: on an image too small around it or of pure
    noise (:func:`.click_context.refuse_unfit_context`), or in the air outside the body;
    ``where`` names the click in the message (e.g. "Point 2 of 3 (-56, -4, 30) mm RAS", as the
    user typed it). Returns the measured :class:`Click` (None when the checks do not apply)."""
    from .click_context import refuse_unfit_context

    if not applies(manifest):
        return None
    name = manifest.labels[0].name
    first = next(i for i, c in enumerate(manifest.channels) if c.normalization["kind"] == "ct")
    refuse_unfit_context(volume, point, name, where, channel=first)
    click = _measured(manifest, volume, point)
    if click.verdict == "outside_air":
        raise UNetPlusPlusError(
            f"{where} lies in the air outside the body (median {click.median_hu:.0f} "
            f"HU within {BALL_MM:g} mm), where no {name} can be: click on the {name} itself."
        )
    return click


def click_warnings(manifest, volume: Volume, point: Sequence[float]) -> tuple[list[str], dict]:
    """The warnings about what lies under a click of a lung CT point model (:func:`applies`;
    others: ([], {})), and the figures for ``info["click"]``. Raises UNetPlusPlusError for a
    click in the air outside the body (:func:`refuse_outside_air`)."""
    click = refuse_outside_air(manifest, volume, point)
    if click is None:
        return [], {}
    name = manifest.labels[0].name
    warnings = []
    if click.verdict == "outside_body" and click.median_hu >= BODY_HU:
        warnings.append(
            f"What lies at the clicked point is solid (median {click.median_hu:.0f} HU within "
            f"{BALL_MM:g} mm) but outside the body's outline on its slice (the trunk, the lungs "
            "inside it): the table, a pad or device on it, or an arm beside the trunk, where "
            f"no {name} can be. Click on the {name} itself."
        )
    elif click.verdict == "outside_body":
        warnings.append(
            "What lies at the clicked point is outside the body (median "
            f"{click.median_hu:.0f} HU within {BALL_MM:g} mm, outside the body's outline on its "
            "slice): on the table, its pad or the air around the patient, where no "
            f"{name} can be. Click on the {name} itself."
        )
    elif click.verdict == "bone":
        warnings.append(
            f"The tissue at the clicked point is bone (or contrast-filled blood: median "
            f"{click.median_hu:.0f} HU within {BALL_MM:g} mm, {click.lung_share:.0%} lung within "
            f"{LUNG_BALL_MM:g} mm), not a {name} in the lung: the result is probably bone (spine, "
            f"rib) or a vessel. Click on the {name} itself."
        )
    elif click.verdict == "soft_tissue":
        warnings.append(
            "The tissue at the clicked point is solid and away from the lung "
            f"({click.lung_share:.0%} lung within {LUNG_BALL_MM:g} mm, median "
            f"{click.median_hu:.0f} HU within {BALL_MM:g} mm): the spine, a rib, the heart, "
            f"the mediastinum, the chest wall or an organ below the lung, not a {name} in the "
            f"lung. Click on the {name} itself."
        )
    return warnings, asdict(click)


def segment_warning(manifest, volume: Volume, labels) -> Optional[str]:
    """The warning for a click's kept segment whose mean CT value is bone-like (above
    SEGMENT_BONE_HU over more than SEGMENT_BONE_ML), else None.
    ``labels``: the result's ``LabelVolume``, on the volume's voxels (the whole grid or the
    smallest extent that holds the segment, ``point_crop.py``)."""
    channels = [i for i, c in enumerate(manifest.channels) if c.normalization["kind"] == "ct"]
    mask = np.asarray(labels.array) != 0
    if not applies(manifest) or not mask.any():
        return None
    start = np.floor(volume.grid.physical_to_index(np.asarray(labels.origin)) + 0.5).astype(int)
    zyx = start[::-1]
    if np.any(zyx < 0) or np.any(zyx + mask.shape > np.asarray(volume.shape_zyx)):
        return None  # not on the volume's voxels: not judged
    region = tuple(slice(int(a), int(a) + n) for a, n in zip(zyx, mask.shape))
    mean = float(volume.array[channels[0]][region][mask].mean())
    ml = float(np.count_nonzero(mask)) * float(np.prod(volume.spacing)) / 1000.0
    if mean <= SEGMENT_BONE_HU or ml <= SEGMENT_BONE_ML:
        return None
    name = manifest.labels[0].name
    return (
        f"The {name} found at the clicked point has a mean of {mean:.0f} HU over {ml:.1f} ml, "
        f"as bone has (a calcified {name} that dense is small, under {SEGMENT_BONE_ML:g} ml): "
        "it is probably bone (spine, rib) rather than a lesion. Check the click and the result."
    )
