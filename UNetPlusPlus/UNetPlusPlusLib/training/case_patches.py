"""In-plane patch prints of a case: a crop within the slices (or its mirror image) is found.

A crop within the slices (an in-plane sub-box, such as Slicer's "Crop volume") changes every
slice, so no whole-slice print survives it; small square patches inside the crop keep their
exact voxels. Per axial slice (all channels, float32 bit patterns), positions are sampled by
their own content, the "0 mod p" selection (Manber 1994; Schleimer et al., SIGMOD 2003, sec.
3): a position whose key (a hash of the voxel and its left and right neighbours, symmetric in
left and right) is among the top :func:`sample_threshold` of the 2^32 keys, about
:data:`SAMPLES_PER_SLICE` positions per slice. That share only grows as the slice shrinks, so
a crop samples every position its original samples, wherever the crop starts. The
:data:`PATCH` x :data:`PATCH` patch centred on each sampled position gets a 40-bit print: the
smallest of four random linear hashes (mod 2^64) of the patch under its four in-plane flips, so
a mirrored copy prints the same. Flat runs (a voxel equal to both neighbours) and
near-constant patches (fewer than :data:`MIN_DISTINCT` distinct values: background, a clipped
region) give no print: they recur across patients. A case keeps the :data:`SKETCH` smallest
of its patch prints (a bottom-k sketch; Broder 1997) and model.json the smallest
:func:`stored_count` of them: a crop that holds a fraction f of a case's sampled patches shares
about f x (the prints stored) with it, whichever of the two is recorded.

2D winnowing (Schleimer et al.: the minimum of every w x w window of the hashes of all k x k
windows) guarantees a shared print for every shared (w+k-1) square, but hashes every window
of every slice: 7.6 s on a 512 x 512 x 300 CT in numpy, against 2.3 s for all of its v2 prints
(scripts/content_print_cost.py --winnow, at the same load); the bound on the size stored
would drop the guarantee anyway.
"""

from __future__ import annotations

import numpy as np

#: Patch side (voxels, odd: centred on the sampled voxel, so a flip maps it onto itself).
PATCH = 9
#: Positions sampled (by content) per slice on average, before flat runs and near-constant
#: patches are dropped: one in (y x / SAMPLES_PER_SLICE) positions, one in 2048 on 512 x 512...
SAMPLES_PER_SLICE = 128
#: ... but never more than one in SMALLEST_RATE (a 44 x 44 nodule crop: one in 16).
SMALLEST_RATE = 16
#: A patch with fewer distinct values (all channels) gives no print: it may recur anywhere.
MIN_DISTINCT = 16
#: The smallest SKETCH patch prints of a case are kept (in the dataset fingerprint cache) ...
SKETCH = 2048
#: ... and the smallest PRINTS_PER_SLICE per non-constant slice of them in model.json
#: (:func:`stored_count`): a crop of a quarter of the area over 10 slices shares about
#: PRINTS_PER_SLICE x 10 / 4 of them, however many slices the case has (up to SKETCH / 6).
PRINTS_PER_SLICE = 6
PATCH_HEX = 10  # 40 bits per patch print

_HALF = PATCH // 2
_K1, _K2 = np.uint32(0x9E3779B1), np.uint32(0x85EBCA77)
_BATCH = 16384  # patches hashed at a time


def _flip_weights() -> np.ndarray:
    """(4, PATCH * PATCH) uint64 random weights: one set and its three in-plane flips."""
    rng = np.random.Generator(np.random.PCG64(20030609))
    base = rng.integers(0, 2**64, (PATCH, PATCH), dtype=np.uint64, endpoint=False)
    flips = [base, base[:, ::-1], base[::-1, :], base[::-1, ::-1]]
    return np.ascontiguousarray(np.stack(flips).reshape(4, -1))


_WEIGHTS = _flip_weights()


def _mix64(value: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (uint64, wrapping): an even spread of the prints' values."""
    value = value ^ (value >> np.uint64(30))
    value = value * np.uint64(0xBF58476D1CE4E5B9)
    value = value ^ (value >> np.uint64(27))
    value = value * np.uint64(0x94D049BB133111EB)
    return value ^ (value >> np.uint64(31))


def sample_threshold(rows: int, cols: int) -> np.uint32:
    """How many keys (of 2^32) sample a position of a ``rows`` x ``cols`` slice: the top ones.
    It only grows as the slice shrinks, so a crop samples every position its original samples
    (and more)."""
    return np.uint32(min(2**32 // SMALLEST_RATE, 2**32 * SAMPLES_PER_SLICE // (rows * cols)))


def sampled_positions(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the patch centres sampled in one slice ``bits`` (C, y, x) uint32
    (float32 bit patterns); a centre is at least PATCH // 2 from the border. The choice depends
    on the voxel and its left and right neighbours only (all channels: the top bits of a sum of
    odd multiples, symmetric in left and right; the neighbours' sum alone takes too few values
    in a noisy integer image), so it is the same in a crop and in a mirror image; a voxel equal
    to both neighbours in every channel (a flat run: background) is not sampled."""
    _, rows, cols = bits.shape
    if rows < PATCH or cols < PATCH:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    flat_bits = bits.reshape(len(bits), -1)
    key = np.empty(rows * cols - 2, np.uint32)  # at p: the key of the centre p + 1
    term = np.empty_like(key)
    for index, channel in enumerate(flat_bits):
        np.add(channel[:-2], channel[2:], out=term if index else key)
        if index:
            term *= _K2
            key += term
        else:
            key *= _K2
        np.multiply(channel[1:-1], _K1, out=term)
        key += term
    # the top of the range: an all-zero neighbourhood (key 0, MR background) is never sampled
    centre = np.flatnonzero(key >= np.uint32(2**32 - int(sample_threshold(rows, cols)))) + 1
    values = flat_bits[:, centre]
    varying = ((values != flat_bits[:, centre - 1]) | (values != flat_bits[:, centre + 1])).any(0)
    found_rows, found_cols = np.divmod(centre[varying], cols)
    inside = (found_rows >= _HALF) & (found_rows < rows - _HALF)
    inside &= (found_cols >= _HALF) & (found_cols < cols - _HALF)
    return found_rows[inside], found_cols[inside]


def patch_prints(patches: np.ndarray) -> np.ndarray:
    """The prints (uint64, the low 4 x PATCH_HEX bits used) of ``patches`` (n, C, PATCH, PATCH)
    uint32 that are not near-constant: each voxel's channels are first combined into one 64-bit
    value (random odd multiples, summed); a patch with fewer than MIN_DISTINCT distinct values
    gives none; a print is the smallest of four random linear hashes (mod 2^64) of the values
    under the patch's in-plane flips, mixed: the same for a patch and its mirror images."""
    if len(patches) == 0:
        return np.empty(0, np.uint64)
    voxels = np.zeros((len(patches), PATCH * PATCH), np.uint64)
    for channel, factor in enumerate(_channel_factors(patches.shape[1])):
        voxels += patches[:, channel].reshape(len(patches), -1).astype(np.uint64) * factor
    ordered = np.sort(voxels, axis=1)
    distinct = 1 + np.count_nonzero(ordered[:, 1:] != ordered[:, :-1], axis=1)
    voxels = voxels[distinct >= MIN_DISTINCT]
    if len(voxels) == 0:
        return np.empty(0, np.uint64)
    hashes = voxels @ _WEIGHTS.T  # (n, 4), wraps mod 2^64
    return _mix64(hashes.min(axis=1)) >> np.uint64(64 - 4 * PATCH_HEX)


def _channel_factors(channels: int) -> list[np.uint64]:
    """Random odd 64-bit factors, one per channel (fixed seed)."""
    rng = np.random.Generator(np.random.PCG64(19970101))
    return [np.uint64(v | 1) for v in rng.integers(0, 2**64, channels, np.uint64, endpoint=False)]


def stored_count(slices: int) -> int:
    """How many of a case's patch prints model.json keeps, for ``slices`` non-constant
    slices: the smallest, a prefix of the sketch (so a bottom-k sketch too)."""
    return min(SKETCH, PRINTS_PER_SLICE * slices)


class PatchSketch:
    """A case's patch sketch, slice by slice: :meth:`add` each slice, then :meth:`text`.
    Patches are hashed in batches, so memory stays bounded whatever the case's size."""

    def __init__(self) -> None:
        self._pending: list[np.ndarray] = []
        self._waiting = 0
        self._smallest = np.empty(0, np.uint64)

    def add(self, bits: np.ndarray) -> None:
        """Sample and keep the patches of one slice ``bits`` (C, y, x) uint32."""
        rows, cols = sampled_positions(bits)
        if rows.size:
            windows = np.lib.stride_tricks.sliding_window_view(bits, (PATCH, PATCH), axis=(1, 2))
            self._pending.append(windows[:, rows - _HALF, cols - _HALF].transpose(1, 0, 2, 3))
            self._waiting += rows.size
            if self._waiting >= _BATCH:
                self._hash()

    def _hash(self) -> None:
        if self._pending:
            found = patch_prints(np.concatenate(self._pending))
            self._smallest = np.unique(np.concatenate([self._smallest, found]))[:SKETCH]
        self._pending, self._waiting = [], 0

    def text(self) -> str:
        """The SKETCH smallest distinct prints, PATCH_HEX hex characters each, ascending."""
        self._hash()
        return "".join(f"{int(value):0{PATCH_HEX}x}" for value in self._smallest)
