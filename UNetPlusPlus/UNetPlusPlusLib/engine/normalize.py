"""Intensity normalisation driven by the manifest's per-channel ``normalization`` entries.

Kinds (docs/ARCHITECTURE.md, "Model package"):

- ``{"kind": "ct", "window": [lo, hi]}``: clip to the Hounsfield window, scale to [0, 1].
- ``{"kind": "mr"}``: z-score inside the channel's non-zero voxels; zeros (for example outside
  a skull-stripped brain) stay 0. ``"mean"`` and ``"std"`` may be given (see
  :func:`with_volume_statistics`), with ``"clip"`` [low, high] when the volume holds absurd
  voxels; otherwise they are computed from the array itself. Absurd voxels (far outside the
  channel's percentile range, :mod:`.mr_robust`) are left out of the statistics and clipped; a
  channel without any is normalised exactly as before.
- ``{"kind": "none"}``: leave the channel as it is.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..errors import UNetPlusPlusError
from .mr_robust import robust_statistics
from .volume import Volume

KINDS = ("ct", "mr", "none")


def normalize(volume: Volume, channels: Sequence[Any]) -> Volume:
    """Return a new Volume with each channel normalised by its manifest entry.

    Each item of ``channels`` is a ``normalization`` dict, or a channel entry holding one (a
    dict with a ``"normalization"`` key or an object with a ``normalization`` attribute).
    """
    specs = [_normalization_entry(channel) for channel in channels]
    if len(specs) != volume.num_channels:
        raise UNetPlusPlusError(
            f"The model expects {len(specs)} input channel(s) but the volume has "
            f"{volume.num_channels}."
        )
    out = np.empty_like(volume.array, dtype=np.float32)
    for c, spec in enumerate(specs):
        out[c] = normalize_channel(volume.array[c], spec)
    return volume.with_array(out)


def needs_volume_statistics(channel: Any) -> bool:
    """Whether a channel's normalisation (a manifest entry or its spec, or None) is a z-score
    whose mean and std come from the image itself (``mr`` without a fixed ``mean``)."""
    entry = _normalization_entry(channel) if channel is not None else {}
    return str(entry.get("kind", "")).lower() == "mr" and "mean" not in entry


def with_volume_statistics(volume: Volume, channels: Sequence[Any]) -> list[dict]:
    """Normalization entries with the MR mean and std fixed from the whole `volume`.

    A region of interest around a tumour is mostly tumour: z-scoring the crop by its own
    statistics would shift its intensities away from what the model was trained on. Normalising
    the crop with the whole volume's statistics gives it the values it has in the whole volume.
    """
    specs = [dict(_normalization_entry(channel)) for channel in channels]
    for c, spec in enumerate(specs[: volume.num_channels]):
        if needs_volume_statistics(spec):
            spec.update(volume_statistics(volume.array[c]))
    return specs


def padding_values(channels: Sequence[Any]) -> list[Optional[float]]:
    """The value to pad each normalised channel with beyond the image (tiles larger than the
    volume): 0 for ``mr`` (zeros stay 0: the value outside a skull-stripped brain), None (the
    channel's own minimum, e.g. air for a windowed CT) for the other kinds."""
    kinds = [str(_normalization_entry(c).get("kind", "")).lower() for c in channels]
    return [0.0 if kind == "mr" else None for kind in kinds]


def normalize_channel(array: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """Normalise one (z, y, x) array according to one ``normalization`` entry (new array)."""
    kind = str(spec.get("kind", "")).lower()
    array = np.asarray(array, dtype=np.float32)
    if kind == "ct":
        lo, hi = _window(spec)
        out = np.clip(array, lo, hi)
        out -= lo
        out *= np.float32(1.0 / (hi - lo))
        return out
    if kind == "mr":
        return _zscore_nonzero(array, spec.get("mean"), spec.get("std"), spec.get("clip"))
    if kind == "none":
        return array.copy()
    raise UNetPlusPlusError(
        f"Unknown normalization kind {spec.get('kind')!r} in the model manifest; expected one "
        f"of {', '.join(KINDS)}."
    )


def _normalization_entry(channel: Any) -> Mapping[str, Any]:
    if isinstance(channel, Mapping):
        entry = channel.get("normalization", channel)
    else:
        entry = getattr(channel, "normalization", None)
    if not isinstance(entry, Mapping):
        raise UNetPlusPlusError(
            f"A channel in the model manifest has no valid normalization entry: {channel!r}."
        )
    return entry


def _window(spec: Mapping[str, Any]) -> tuple[float, float]:
    window = spec.get("window")
    try:
        lo, hi = (float(v) for v in window)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise UNetPlusPlusError(
            f"The CT normalization in the model manifest needs a window [low, high], got "
            f"{window!r}."
        ) from None
    if not np.isfinite([lo, hi]).all() or hi <= lo:
        raise UNetPlusPlusError(
            f"The CT window in the model manifest must have low < high, got {window!r}."
        )
    return lo, hi


def volume_statistics(array: np.ndarray) -> dict:
    """The z-score entries of one (z, y, x) MR channel, from its non-zero voxels: ``mean`` and
    ``std`` of the plausible ones, and ``clip`` [low, high] (the plausible extremes) only when
    the channel holds absurd voxels (:func:`.mr_robust.robust_statistics`)."""
    values = np.asarray(array)[np.asarray(array) != 0].astype(np.float64)
    if values.size == 0:
        return {"mean": 0.0, "std": 0.0}
    mean, std, clip = robust_statistics(values)
    return {"mean": mean, "std": std, **({"clip": list(clip)} if clip else {})}


def _zscore_nonzero(
    array: np.ndarray, mean: Any = None, std: Any = None, clip: Any = None
) -> np.ndarray:
    """Z-score over the non-zero voxels; zeros stay 0; a constant channel becomes 0. Without
    ``mean`` and ``std`` they come from the voxels, absurd ones left out and clipped; ``clip``
    (low, high) clips the non-zero voxels first."""
    mask = array != 0
    out = np.zeros_like(array, dtype=np.float32)
    if not mask.any():
        return out
    values = array[mask].astype(np.float64)
    if mean is None or std is None:
        mean, std, clip = robust_statistics(values)
    if clip is not None:
        values = np.clip(values, float(clip[0]), float(clip[1]))
    mean, std = float(mean), float(std)
    scale = 1.0 / std if std > 1e-8 * max(1.0, abs(mean)) else 0.0
    out[mask] = ((values - mean) * scale).astype(np.float32)
    return out
