"""``unetpp train`` settings checked before any case is read: values that do not depend on the
data. ``--tile 16 16 16`` (one voxel at the deepest level, which instance normalisation cannot
train) was refused by the Trainer only after the dataset check had read every case and the
fingerprint had read them again: minutes on real data. No torch here."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Optional

from ..engine.network_shape import tile_problem
from ..errors import UNetPlusPlusError

if TYPE_CHECKING:
    from ..engine.manifest import ModelManifest
    from .dataset_types import DatasetDescription


def _first(*candidates: tuple[Any, str]) -> tuple[Any, str]:
    """The first (value, source) whose value is not None, else (None, "")."""
    for value, source in candidates:
        if value is not None:
            return value, source
    return None, ""


def check_tile_and_norm(
    args: argparse.Namespace,
    init: Optional[ModelManifest] = None,
    saved: Optional[dict] = None,
    dataset: Optional[DatasetDescription] = None,
) -> None:
    """Refuse a tile that the run's normalisation cannot train (``network_shape.tile_problem``),
    taking each from where the run will (first match wins): the command line, the checkpoint's
    config ``saved`` (``--resume``; its tile comes first, as the resumed run keeps it), the
    dataset description ``dataset`` (when read), the
    ``--init`` model (ModelManifest); the norm defaults to instance. Without ``dataset``, a
    ``--dataset-json`` run whose norm is not yet known is left to the call after it is read
    (reading a description reads no case). Raises UNetPlusPlusError naming the tile's source."""
    saved = saved or {}
    training = (dataset.training or {}) if dataset is not None else {}
    network = dict(getattr(init, "network", None) or {})
    init_name = getattr(init, "name", "the --init model")
    tile, tile_source = _first(  # a resumed run keeps its tile (another --tile is refused)
        (saved.get("tile_size"), "the checkpoint"),
        (args.tile, "--tile"),
        (getattr(dataset, "tile_size", None), "the dataset description"),
        (getattr(init, "tile_size", None), f"the --init model {init_name}"),
    )
    if tile is None:  # planned from the cases: the planner's tiles are valid
        return
    norm, norm_source = _first(
        (args.norm, "--norm"),
        (saved.get("norm"), "the checkpoint"),
        (training.get("norm"), "the dataset description"),
        (network.get("norm"), f"the --init model {init_name}"),
    )
    if norm is None:
        if args.dataset_json and dataset is None:  # its training.norm may say otherwise
            return
        norm, norm_source = "instance", "the default"
    problem = tile_problem(tile, str(norm))
    if problem is None:
        return
    raise UNetPlusPlusError(
        f"{problem[0].upper()}{problem[1:]} ({tile_source}; norm {norm} from {norm_source}). "
        "Nothing was read or written."
    )
