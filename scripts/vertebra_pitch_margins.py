"""Study: can the vertebrae's pitch tell a wrong slice spacing? (docs/INPUT_CHECKS_PITCH.md)

A slice spacing wrong in the header by a factor 0.5-2 passes every header check and scales
every volume of the result silently. Adult vertebrae repeat along the body's axis every 20-45
mm, so a CT's spine could serve as a ruler for the slice spacing. This script holds the
estimator tried (``measure_pitch``, numpy only) and measures it on every CT of the shared data
as given (a warning there is a false alarm) and on copies whose slice spacing in the header is
scaled by 0.5, 0.67, 1.5 and 2 (the voxels unchanged). Result: NOT shipped (the doc says why).

The estimator: the image axis closest to head-foot is the slice axis; each slice is strided to
about FINE_MM and block-averaged to BLOCK_MM columns of clipped HU; each column's profile along
the slices is compared with itself shifted by a candidate period P (normalised
autocorrelation after removing a moving average over P, which keeps a P-periodic pattern and
removes slower trends); scores are averaged over 3 x 3 neighbouring columns, the best
neighbourhood is kept, and the period is the shortest P scoring within HARMONIC_SHARE of its
best (a P-periodic pattern also scores at 2P). ``--method slices`` scores instead one profile,
the count of voxels above 200 HU per slice; ``--method canal`` the vertebral bodies in front
of the tracked spinal canal.

    PYTHONPATH=UNetPlusPlus python scripts/vertebra_pitch_margins.py ../shared/data [--time N]
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from UNetPlusPlusLib.engine.image_read import read_volume

#: Adult vertebral pitch (mm, body height + disc), cervical to lumbar (docs/INPUT_CHECKS_PITCH.md).
ADULT_PITCH_MM = (20.0, 45.0)
#: Warn only beyond these (mm): the range widened by a margin for the spread of real spines.
WARN_BELOW_MM, WARN_ABOVE_MM = 14.0, 58.0
#: Evidence needed: at least this many periods in the field of view, and this score.
MIN_PERIODS = 4.0
MIN_SCORE = 0.5
#: Candidate periods (mm according to the header) and at least this many slices per period.
SEARCH_MM = (7.0, 130.0)
MIN_SLICES_PER_PERIOD = 3.0
#: The slice axis must lie within this angle of the patient's head-foot axis.
MAX_TILT_DEG = 30.0
#: In-plane: strided to about FINE_MM, then averaged over BLOCK_MM x BLOCK_MM columns.
FINE_MM = 2.0
BLOCK_MM = 8.0
#: HU clipped to this range before averaging (air and metal do not dominate a column).
CLIP_HU = (-100.0, 1000.0)
#: A column's profile must vary at least this much (HU, std) to be scored.
MIN_PROFILE_STD_HU = 5.0
#: The period is the shortest candidate scoring at least this share of the best score.
HARMONIC_SHARE = 0.85
#: Geometric step between candidate periods.
STEP_RATIO = 1.03


@dataclass
class Pitch:
    """What the ruler measured. ``pitch_mm``: the period according to the header (None: no
    periodic pattern found); ``score``: its autocorrelation (-1..1); ``periods``: how many fit
    in the field of view; ``slice_mm``: the header's slice spacing; ``column_mm``: the
    neighbourhood's centre, in-plane (mm from the first voxel along the two in-plane axes)."""

    slice_mm: float
    pitch_mm: Optional[float] = None
    score: float = 0.0
    periods: float = 0.0
    column_mm: Optional[tuple] = None

    @property
    def clear(self) -> bool:
        """Enough evidence to judge the header: a distinct pattern over MIN_PERIODS periods."""
        return (
            self.pitch_mm is not None and self.score >= MIN_SCORE and (self.periods >= MIN_PERIODS)
        )


def _moving_average(profiles: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` samples along axis 0 (edges repeated)."""
    before = width // 2
    after = width - before - 1
    padded = np.concatenate(
        [np.repeat(profiles[:1], before, 0), profiles, np.repeat(profiles[-1:], after, 0)]
    )
    total = np.concatenate([np.zeros((1,) + profiles.shape[1:]), np.cumsum(padded, 0)])
    return (total[width:] - total[:-width]) / width


def _scores(profiles: np.ndarray, period: float) -> np.ndarray:
    """Normalised autocorrelation at lag ``period`` (samples, may be fractional) of each
    profile (axis 0) after removing its moving average over the period; (columns,)."""
    rest = profiles - _moving_average(profiles, max(2, int(round(period))))
    n = profiles.shape[0]
    whole = int(np.floor(period))
    part = period - whole
    a = rest[: n - whole - 1]
    b = (1.0 - part) * rest[whole : n - 1] + part * rest[whole + 1 : n]
    num = (a * b).sum(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return np.where(den > 0, num / np.maximum(den, 1e-12), 0.0)


def _slice_axis(direction: np.ndarray) -> Optional[int]:
    """Index (x=0, y=1, z=2) of the image axis along the patient's head-foot axis, or None."""
    cosines = np.abs(np.asarray(direction, float).reshape(3, 3)[2])  # LPS z of each axis
    axis = int(np.argmax(cosines))
    return axis if cosines[axis] >= np.cos(np.radians(MAX_TILT_DEG)) else None


def _columns(array: np.ndarray, spacing_zyx: Sequence[float]) -> tuple[np.ndarray, float]:
    """(slices, columns) mean clipped HU of BLOCK_MM columns of a (slice, a, b) array, and
    the block size in mm along the first in-plane axis."""
    steps = [max(1, int(FINE_MM / s)) for s in spacing_zyx[1:]]
    part = array[:, :: steps[0], :: steps[1]]
    sizes = [max(1, int(round(BLOCK_MM / (s * k)))) for s, k in zip(spacing_zyx[1:], steps)]
    n, h, w = part.shape
    h2, w2 = h // sizes[0] * sizes[0], w // sizes[1] * sizes[1]
    if not h2 or not w2:
        return np.zeros((n, 0, 0), np.float32), 0.0
    clipped = np.clip(part[:, :h2, :w2].astype(np.float32), *CLIP_HU)
    blocks = clipped.reshape(n, h2 // sizes[0], sizes[0], w2 // sizes[1], sizes[1]).mean((2, 4))
    return blocks, (sizes[0] * steps[0] * spacing_zyx[1], sizes[1] * steps[1] * spacing_zyx[2])


def measure_pitch(
    array: np.ndarray, spacing_xyz: Sequence[float], direction: np.ndarray
) -> Optional[Pitch]:
    """The vertebral pitch of a CT (HU) according to its header.

    ``array``: (z, y, x) in HU as stored; ``spacing_xyz`` (mm) and ``direction`` (3x3, LPS)
    from the header. Returns None when no axis lies within MAX_TILT_DEG of head-foot;
    else a :class:`Pitch` (``clear`` False when the evidence is weak: too few slices, no spine,
    no distinct period). Never raises for a valid 3D array."""
    axis = _slice_axis(direction)
    if axis is None:
        return None
    moved = np.moveaxis(np.asarray(array), 2 - axis, 0)  # slices first; in-plane keeps order
    spacing_zyx = [float(spacing_xyz[2 - a]) for a in range(3)]
    in_plane = [spacing_zyx[a] for a in range(3) if a != 2 - axis]
    slice_mm = float(spacing_xyz[axis])
    found = Pitch(slice_mm=slice_mm)
    n = moved.shape[0]
    low = max(SEARCH_MM[0] / slice_mm, MIN_SLICES_PER_PERIOD)
    high = min(SEARCH_MM[1] / slice_mm, n / MIN_PERIODS)
    if high < low:
        return found
    blocks, block_mm = _columns(moved, [slice_mm] + in_plane)
    _, h, w = blocks.shape
    if h < 3 or w < 3:
        return found
    profiles = blocks.reshape(n, -1).astype(np.float64)
    live = profiles.std(0) >= MIN_PROFILE_STD_HU
    periods = low * STEP_RATIO ** np.arange(int(np.log(high / low) / np.log(STEP_RATIO)) + 1)
    maps = np.stack([np.where(live, _scores(profiles, p), 0.0).reshape(h, w) for p in periods])
    padded = np.pad(maps, ((0, 0), (1, 1), (1, 1)), mode="edge")
    smooth = sum(padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0
    best = smooth.max(0)
    y, x = np.unravel_index(int(np.argmax(best[1:-1, 1:-1])), (h - 2, w - 2))
    y, x = y + 1, x + 1
    curve = smooth[:, y, x]
    top = float(curve.max())
    if top <= 0:
        return found
    first = int(np.nonzero(curve >= HARMONIC_SHARE * top)[0][0])
    found.pitch_mm = float(periods[first] * slice_mm)
    found.score = float(curve[first])
    found.periods = float(n * slice_mm / found.pitch_mm)
    found.column_mm = (float((y + 0.5) * block_mm[0]), float((x + 0.5) * block_mm[1]))
    return found


def _single_profile_pitch(
    found: Pitch, profile: np.ndarray, low: float, high: float, slice_mm: float
) -> Pitch:
    """``found`` filled from one (z, 1) profile: the shortest period (in slices, searched from
    ``low`` to ``high``) scoring at least HARMONIC_SHARE of the best, in mm of the header."""
    periods = low * STEP_RATIO ** np.arange(int(np.log(high / low) / np.log(STEP_RATIO)) + 1)
    curve = np.array([_scores(profile, p)[0] for p in periods])
    top = float(curve.max())
    if top <= 0:
        return found
    first = int(np.nonzero(curve >= HARMONIC_SHARE * top)[0][0])
    found.pitch_mm = float(periods[first] * slice_mm)
    found.score = float(curve[first])
    found.periods = float(len(profile) * slice_mm / found.pitch_mm)
    return found


def slice_profile_pitch(
    array: np.ndarray, spacing_xyz: Sequence[float], direction: np.ndarray
) -> Optional[Pitch]:
    """The same search on one profile: voxels above 200 HU per slice (every 2nd voxel
    in-plane), no localisation of the spine."""
    axis = _slice_axis(direction)
    if axis is None:
        return None
    moved = np.moveaxis(np.asarray(array), 2 - axis, 0)
    slice_mm = float(spacing_xyz[axis])
    found = Pitch(slice_mm=slice_mm)
    n = moved.shape[0]
    low = max(SEARCH_MM[0] / slice_mm, MIN_SLICES_PER_PERIOD)
    high = min(SEARCH_MM[1] / slice_mm, n / MIN_PERIODS)
    if high < low:
        return found
    profile = (moved[:, ::2, ::2] > 200).sum((1, 2)).astype(np.float64)[:, None]
    return _single_profile_pitch(found, profile, low, high, slice_mm)


def _box_mean(maps: np.ndarray, radius: int) -> np.ndarray:
    """Mean over (2 radius + 1)^2 cells in the last two axes of (z, y, x) maps."""
    rows = np.moveaxis(_moving_average(np.moveaxis(maps, 1, 0), 2 * radius + 1), 0, 1)
    return np.moveaxis(_moving_average(np.moveaxis(rows, 2, 0), 2 * radius + 1), 0, 2)


def canal_pitch(
    array: np.ndarray, spacing_xyz: Sequence[float], direction: np.ndarray
) -> Optional[Pitch]:
    """The same search on the vertebral bodies found through the spinal canal: on 4 mm
    cells of clipped HU averaged over 40 mm of slices, the canal is the cell whose centre
    (12 mm) is darker than 120 HU inside a ring (10-18 mm) brighter than 120 HU, by the
    most; its track (median over 60 mm of slices) gives a 24 x 16 mm box 20-36 mm in front
    of it, whose mean HU per slice is the profile. Axial images (direction diagonal) only."""
    matrix = np.asarray(direction, float).reshape(3, 3)
    if not np.allclose(np.abs(matrix), np.eye(3), atol=0.1):
        return None
    ct = np.asarray(array)
    if matrix[1, 1] < 0:  # rows towards posterior, columns towards the patient's left
        ct = ct[:, ::-1]
    if matrix[0, 0] < 0:
        ct = ct[:, :, ::-1]
    slice_mm = float(spacing_xyz[2])
    found = Pitch(slice_mm=slice_mm)
    n = ct.shape[0]
    low = max(SEARCH_MM[0] / slice_mm, MIN_SLICES_PER_PERIOD)
    high = min(SEARCH_MM[1] / slice_mm, n / MIN_PERIODS)
    k = max(1, int(round(4.0 / spacing_xyz[0])))
    cell = float(spacing_xyz[0]) * k
    h, w = ct.shape[1] // k * k, ct.shape[2] // k * k
    r1, r2, r3 = 1, max(2, int(round(10 / cell))), max(3, int(round(18 / cell)))
    if high < low or min(h, w) // k < 2 * r3 + 3:
        return found
    hu = np.clip(ct[:, :h, :w].astype(np.float32), -100, 600)
    hu = hu.reshape(n, h // k, k, w // k, k).mean((2, 4)).astype(np.float64)
    smooth = _moving_average(hu, max(1, int(round(40 / slice_mm))))
    centre, inner, outer = (_box_mean(smooth, r) for r in (r1, r2, r3))
    n2, n3 = (2 * r2 + 1) ** 2, (2 * r3 + 1) ** 2
    ring = (outer * n3 - inner * n2) / (n3 - n2)
    score = (ring - centre) * (ring > 120) * (centre < 120)
    score[:, :r3], score[:, -r3:], score[:, :, :r3], score[:, :, -r3:] = 0, 0, 0, 0
    flat = score.reshape(n, -1).argmax(1)
    track = np.stack(np.unravel_index(flat, score.shape[1:]), 1).astype(float)
    m = max(1, int(round(30 / slice_mm)))
    track = np.array([np.median(track[max(0, z - m) : z + m + 1], 0) for z in range(n)])
    near, far, side = (int(round(v / cell)) for v in (20, 36, 12))
    profile = np.empty((n, 1))
    for z, (y, x) in enumerate(track.round().astype(int)):
        part = hu[z, max(0, y - far) : max(1, y - near + 1), max(0, x - side) : x + side + 1]
        profile[z, 0] = part.mean() if part.size else 0.0
    return _single_profile_pitch(found, profile, low, high, slice_mm)


def phantom(pitch_mm: float = 30.0, slice_mm: float = 3.0, slices: int = 100) -> np.ndarray:
    """A synthetic torso (z, y, x) at 3 mm in-plane: soft tissue in air, a 36 mm vertebral
    body behind its centre every ``pitch_mm`` (bone 250 HU, discs 80 HU of 0.25 pitch), and
    behind it a 16 mm spinal canal (20 HU) in a bony arch (400 HU, 8 mm thick)."""
    z, y, x = np.meshgrid(
        np.arange(slices) * slice_mm, np.arange(100) * 3.0, np.arange(120) * 3.0, indexing="ij"
    )
    ct = np.full(z.shape, -1000.0, np.float32)
    ct[((x - 180) / 160) ** 2 + ((y - 150) / 110) ** 2 < 1] = 40.0
    canal = (x - 180) ** 2 + (y - 238) ** 2
    ct[canal < 16.0**2] = 400.0
    ct[canal < 8.0**2] = 20.0
    body = (x - 180) ** 2 + (y - 210) ** 2 < 18.0**2
    bone = (z % pitch_mm) < 0.75 * pitch_mm
    ct[body] = 80.0
    ct[body & bone] = 250.0
    return ct


def pitch_warning(found: Optional[Pitch], source: str = "The input volume") -> Optional[str]:
    """One warning when a clear pitch lies outside WARN_BELOW_MM..WARN_ABOVE_MM, else None."""
    if found is None or not found.clear:
        return None
    if WARN_BELOW_MM <= found.pitch_mm <= WARN_ABOVE_MM:
        return None
    factor = found.pitch_mm / float(np.sqrt(ADULT_PITCH_MM[0] * ADULT_PITCH_MM[1]))
    low, high = ADULT_PITCH_MM
    return (
        f"{source}: the vertebrae repeat every {found.pitch_mm:.0f} mm according to the "
        f"header, where {low:.0f}-{high:.0f} mm is expected in adults; the slice spacing "
        f"({found.slice_mm:.3g} mm) is probably wrong by about a factor {factor:.1f} (closer "
        f"to {found.slice_mm / factor:.2g} mm), and so are the result's volumes: check the "
        "spacing in the header."
    )


SCALES = (1.0, 0.5, 0.67, 1.5, 2.0)


def ct_inputs(data: Path, every: int = 1):
    """(name, path) of every CT in the shared data: liver CTs, chest crops, LIDC slabs and
    crops (every ``every``-th)."""
    liver = data / "liver"
    examples = liver / "totalsegmentator-examples"
    for name in ("example_ct", "example_ct_sm", "pulm_ct_cropped", "aorta_ct_cropped"):
        yield name, examples / f"{name}.nii.gz"
    yield "example_ct_dicom", examples / "example_ct_dicom"
    yield "s0009", liver / "totalsegmentator-dataset-s0009" / "ct.nii.gz"
    for path in sorted((liver / "lits-partial").glob("*_ct.nii.gz")):
        yield path.name.split(".")[0], path
    yield "dcmqi ct-3slice", liver / "dcmqi-liver" / "ct-3slice"
    nodules = data / "lung-nodule"
    for path in sorted((nodules / "lidc-dicom-slabs").iterdir()):
        if path.is_dir():
            yield path.name + " slab", path
    for path in sorted((nodules / "lidc-vois" / "image").glob("*.nii.gz"))[::every]:
        yield path.name.split(".")[0], path


def scaled(spacing, direction, scale):
    """The spacing with the slice (head-foot) axis scaled by ``scale``."""
    axis = int(np.argmax(np.abs(np.asarray(direction).reshape(3, 3)[2])))
    out = list(spacing)
    out[axis] *= scale
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default="../shared/data", type=Path)
    parser.add_argument("--every", type=int, default=1, help="every N-th LIDC crop")
    parser.add_argument("--time", type=int, default=0, help="time N runs on a 512x512x300 CT")
    parser.add_argument(
        "--method",
        choices=("columns", "slices", "canal"),
        default="columns",
        help="columns: best 3x3 column neighbourhood (default); slices: voxels above 200 HU "
        "per slice; canal: the vertebral bodies in front of the tracked spinal canal",
    )
    args = parser.parse_args()
    measure = {"columns": measure_pitch, "slices": slice_profile_pitch, "canal": canal_pitch}[
        args.method
    ]
    for scale in SCALES:  # the estimator on an ideal spine: 30 mm pitch, 3 mm slices
        found = measure(phantom(), [3.0, 3.0, 3.0 * scale], np.eye(3))
        pitch = f"{found.pitch_mm:.1f} mm" if found and found.pitch_mm else "none"
        score = found.score if found else 0.0
        print(
            f"phantom (30 mm pitch), header x{scale:g}: pitch {pitch}, score {score:.2f}, "
            f"warned {pitch_warning(found) is not None}"
        )
    counts = {s: [0, 0] for s in SCALES}  # scale: [warned, clear evidence]
    cases = 0
    print("| CT | voxels | slice mm | scale | pitch mm (header) | score | periods | warned |")
    print("|---|---|---|---|---|---|---|---|")
    for name, path in ct_inputs(args.data, args.every):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                volume = read_volume([path], ["CT"])
        except Exception as error:  # noqa: BLE001 - the truncated DICOM slice, reported
            print(f"| {name} | unreadable: {error} |")
            continue
        cases += 1
        array = volume.array[0]
        direction = np.asarray(volume.grid.direction)
        for scale in SCALES:
            spacing = scaled(volume.grid.spacing, direction, scale)
            found = measure(array, spacing, direction)
            warned = pitch_warning(found) is not None
            counts[scale][0] += warned
            counts[scale][1] += bool(found and found.clear)
            small = array.shape[0] * array.shape[1] * array.shape[2] < 200_000
            if small and not warned and scale != 1.0:
                continue  # LIDC crops: one row each
            pitch = f"{found.pitch_mm:.1f}" if found and found.pitch_mm else "-"
            score = f"{found.score:.2f}" if found and found.pitch_mm else "-"
            periods = f"{found.periods:.1f}" if found and found.pitch_mm else "-"
            print(
                f"| {name} | {'x'.join(str(v) for v in array.shape[::-1])} | "
                f"{spacing[2]:.3g} | {scale:g} | {pitch} | {score} | {periods} | "
                f"{'**yes**' if warned else 'no'} |"
            )
    print(f"\n{cases} CTs")
    for scale in SCALES:
        what = "false alarms" if scale == 1.0 else "detected"
        print(f"scale {scale:g}: {what} {counts[scale][0]} of {cases} (clear: {counts[scale][1]})")
    if args.time:
        example = read_volume(
            [args.data / "liver/totalsegmentator-examples/example_ct.nii.gz"], ["CT"]
        )
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(example.array[0])
        image.SetSpacing(example.grid.spacing)
        big = sitk.Resample(
            image,
            [512, 512, 300],
            sitk.Transform(),
            sitk.sitkLinear,
            (0.0, 0.0, 0.0),
            (366 / 512, 303 / 512, 336 / 300),
        )
        array = sitk.GetArrayFromImage(big).astype(np.int16)
        spacing = big.GetSpacing()
        seconds = []
        for _ in range(args.time):
            start = time.perf_counter()
            found = measure(array, spacing, np.eye(3))
            seconds.append(time.perf_counter() - start)
        print(
            f"512x512x300 int16: median {np.median(seconds):.3f} s "
            f"({min(seconds):.3f}-{max(seconds):.3f}, {args.time} runs), pitch {found.pitch_mm}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
