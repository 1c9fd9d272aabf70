"""Does the ``--init`` model fit the dataset? Said before any case is read for training.

A fine-tune takes from its parent the channels and their normalisation, the spacing, the tile
and the network's widths, and keeps every weight whose shape fits (the output heads start
afresh when the labels differ: ``trainer_setup._load_initial_weights``). ``--init lung-nodule``
on a liver CT folder trained in silence with the nodule model's lung window, 0.7 mm spacing and
48 x 48 x 16 tile. Now a parent of another task or modality is a warning that says what carries
over and what starts afresh; what cannot fit at all (another channel count, other widths, an
explicit ``--modality`` the parent contradicts) is refused. No torch here.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Optional, Sequence

from ..errors import UNetPlusPlusError

if TYPE_CHECKING:
    from ..engine.manifest import ModelManifest
    from .dataset_types import DatasetDescription


def _names(items: Sequence) -> str:
    return ", ".join(str(getattr(item, "name", item)) for item in items)


def _normalisation(channel) -> str:
    norm = dict(getattr(channel, "normalization", None) or {})
    if norm.get("kind") == "ct" and norm.get("window"):
        low, high = norm["window"]
        return f"CT window {low:g} to {high:g} HU"
    return "z-score per case" if norm.get("kind") == "mr" else "its own"


def _channel_modality(channel) -> str:
    """CT or MR of one ChannelSpec: its declared modality when that says CT or MR (MRI), else
    its normalisation's kind (a dataset.json may declare the sequence, "FLAIR" or "T1w", with
    the MR z-score); the declared text, upper case, when neither tells."""
    declared = str(channel.modality).strip().upper().replace("MRI", "MR")
    if declared in ("CT", "MR"):
        return declared
    kind = str(dict(getattr(channel, "normalization", None) or {}).get("kind", "")).lower()
    return {"ct": "CT", "mr": "MR"}.get(kind, declared)


def channels_modality(channels: Sequence) -> str:
    """CT, MR (or CT/MR) of ``channels`` (ChannelSpec), by their declared modality or, for a
    sequence name ("FLAIR"), their normalisation."""
    return "/".join(sorted({_channel_modality(c) for c in channels}))


def check_init_fit(
    init: Optional[ModelManifest],
    dataset: DatasetDescription,
    args: argparse.Namespace,
    data_channels: Sequence,
    data_modality: Optional[str],
    where: tuple[str, str],
) -> list[str]:
    """Warnings (lines for the log) when the ``--init`` ModelManifest ``init`` was made for
    another task (labels) or modality than ``dataset`` (DatasetDescription, its channels
    already the parent's); raises UNetPlusPlusError where its weights cannot fit.

    ``data_channels``: what the cases hold (a dataset description's own channels, or a Slicer
    export's channel suffixes); ``data_modality``: CT or MR of the cases (declared, given or
    guessed), None when unknown; ``where``: how each was learnt, for the messages
    (``("the first case has", "the cases look like")``)."""
    if init is None or args.resume:  # a resumed run loads its checkpoint, not the parent
        return []
    name = init.name
    channels = list(init.channels)
    if len(data_channels) and len(data_channels) != len(channels):
        raise UNetPlusPlusError(
            f"The --init model {name} takes {len(channels)} channel(s) ({_names(channels)}), "
            f"but {where[0]} {len(data_channels)} ({_names(data_channels) or 'one image'}): its "
            "first layer cannot take another number of channels. Give cases with its "
            "channels, or leave --init out to train from scratch."
        )
    parent_widths = [int(f) for f in (init.network or {}).get("features") or []]
    for given, option in ((args.features, "--features"), (dataset.features, "dataset.json")):
        if given is not None and parent_widths and [int(f) for f in given] != parent_widths:
            raise UNetPlusPlusError(
                f"{option} gives the widths {' '.join(map(str, given))}, but the --init model "
                f"{name} has {' '.join(map(str, parent_widths))}: its layers of other widths "
                "cannot load, and a fine-tune starts from its weights. Leave the widths out "
                "(the parent's are kept), or leave --init out to train from scratch."
            )
    parent_modality = channels_modality(channels)
    notes: list[str] = []
    if data_modality is not None and data_modality != parent_modality:
        if getattr(args, "modality", "auto") != "auto" and not args.dataset_json:
            raise UNetPlusPlusError(
                f"--modality {args.modality} contradicts the --init model {name}, which takes "
                f"{parent_modality} ({_normalisation(channels[0])}); a fine-tune keeps its "
                "parent's channels. Leave --modality out, or --init out to train from scratch."
            )
        notes.append(
            f"the --init model {name} takes {parent_modality} "
            f"({', '.join(dict.fromkeys(_normalisation(c) for c in channels))}), but {where[1]} "
            f"{data_modality}: the cases are normalised as its channels, made for another kind "
            "of image; leave --init out to train from scratch, or --init a model made for "
            f"{data_modality}"
        )
    parent_labels = [label.name for label in init.labels]
    learnt_later = getattr(dataset, "learn_label_values", False)  # labelmaps: read with cases
    other_labels = [n.lower() for n in parent_labels] != [n.lower() for n in dataset.label_names]
    if other_labels and not learnt_later:
        kept = [f"the channel normalisation ({_normalisation(channels[0])})"]
        if args.spacing is None and dataset.spacing is None:
            kept.append(f"the spacing {' x '.join(f'{v:g}' for v in init.spacing)} mm")
        if args.tile is None and dataset.tile_size is None:
            kept.append(f"the tile {' x '.join(map(str, init.tile_size))} voxels")
        listed = " and ".join([", ".join(kept[:-1]), kept[-1]] if len(kept) > 1 else kept)
        notes.append(
            f"the --init model {name} was trained for the task '{init.task}' "
            f"({_names(parent_labels)}), this dataset learns {_names(dataset.label_names)}: "
            "its output heads start afresh (the labels differ) and its other layers carry "
            f"over; from it also come {listed}, chosen for that task (--spacing and --tile "
            "set them)"
        )
    return notes
