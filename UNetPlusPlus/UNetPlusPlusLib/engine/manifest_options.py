"""Checks of a manifest's optional per-model references, without numpy.

``unetpp models list`` (and the Slicer panel, before PyTorch is installed) reads every
``model.json``; the checks of ``postprocess.plausible_ml``, ``test_time_augmentation``,
``inference.channel_fingerprint`` and ``inference.bias_field`` lived beside the numpy code that
uses them, so listing models imported numpy (about 0.2 s). They live here, standard library
only; :mod:`.volume_plausibility`, :mod:`.tta`, :mod:`.channel_order` and :mod:`.bias_field`
re-export them under their former names. Each raises ValueError naming the problem (the
manifest validator adds the file and the field).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

#: The axes the model may be mirrored along (LPS axes of the model grid), all by default.
MIRROR_AXES = ("x", "y", "z")
#: Format versions of ``inference.channel_fingerprint`` and ``inference.bias_field``.
FINGERPRINT_VERSION = 1
BIAS_VERSION = 1


def parse_ranges(value: Any, label_names: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Validate ``postprocess.plausible_ml``: {label name: [low, high]} in ml, with
    0 <= low < high < inf and every name a label of the model. Returns the ranges as tuples;
    raises ValueError with the problem (the manifest validator names the file and field)."""
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object of label name -> [low, high] ml (got {value!r})")
    ranges = {}
    for name, bounds in value.items():
        if name not in label_names:
            raise ValueError(
                f"names {name!r}, which is not a label of this model ({', '.join(label_names)})"
            )
        numbers = bounds if isinstance(bounds, (list, tuple)) else ()
        if len(numbers) != 2 or any(
            isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b)
            for b in numbers
        ):
            raise ValueError(f"[{name!r}] must be [low, high], two finite numbers of ml")
        low, high = float(numbers[0]), float(numbers[1])
        if not 0.0 <= low < high:
            raise ValueError(f"[{name!r}] must satisfy 0 <= low < high (got [{low:g}, {high:g}])")
        ranges[name] = (low, high)
    return ranges


def parse_tta_config(value: Any) -> dict:
    """Validate a manifest's ``test_time_augmentation`` mapping; raises ValueError with the
    problem (the manifest reader adds the file and field)."""
    if not isinstance(value, dict):
        raise ValueError('must be an object such as {"mirror_axes": ["y", "z"]}')
    unknown = sorted(set(value) - {"mirror_axes"})
    if unknown:
        raise ValueError(f"has an unknown field {unknown[0]!r} (known: mirror_axes)")
    axes = value.get("mirror_axes", list(MIRROR_AXES))
    if not isinstance(axes, list) or any(a not in MIRROR_AXES for a in axes):
        raise ValueError("mirror_axes must be a list of 'x', 'y', 'z' (LPS axes of the model grid)")
    if len(set(axes)) != len(axes):
        raise ValueError("mirror_axes lists an axis twice")
    return {"mirror_axes": list(axes)}


def parse_fingerprint(value: Any, channels: int) -> dict:
    """Check a manifest's ``channel_fingerprint`` for a model with ``channels`` inputs.

    Raises ValueError naming the problem (the manifest validator adds file and field)."""
    if not isinstance(value, dict):
        raise ValueError("must be an object")
    if value.get("version") != FINGERPRINT_VERSION:
        raise ValueError(f"version must be {FINGERPRINT_VERSION}")
    if value.get("channels") != channels:
        raise ValueError(f"channels must be {channels}, the model's input count")
    length = channels * (channels - 1) // 2 + channels
    for key in ("mean", "std"):
        numbers = value.get(key)
        if (
            not isinstance(numbers, list)
            or len(numbers) != length
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers)
        ):
            raise ValueError(f"{key} must hold {length} finite numbers")
    if any(v < 0 for v in value["std"]):
        raise ValueError("std must be non-negative")
    if "contrast_pair" in value:  # [pre, post] contrast T1 channels (contrast_pair.py)
        parse_pair(value["contrast_pair"], channels)
    return dict(value)


def parse_pair(value: Any, channels: int) -> list[int]:
    """Check a channel fingerprint's ``contrast_pair`` (engine/contrast_pair.py): two distinct
    channel indexes in [0, channels). Raises ValueError."""
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or value[0] == value[1]
        or not all(0 <= v < channels for v in value)
    ):
        raise ValueError(f"contrast_pair must be two different channel indexes below {channels}")
    return list(value)


def parse_bias_reference(value: Any, channels: int) -> dict:
    """Check a manifest's ``bias_field`` for a model with ``channels`` inputs. Raises
    ValueError naming the problem (the manifest validator adds file and field)."""
    if not isinstance(value, dict):
        raise ValueError("must be an object")
    if value.get("version") != BIAS_VERSION:
        raise ValueError(f"version must be {BIAS_VERSION}")
    for key in ("warn_ratio", "linear_warn_ratio", "channel_warn_ratio"):
        ratio = value.get(key)
        if not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio <= 1:
            raise ValueError(f"{key} must be a number above 1")
    return dict(value)
