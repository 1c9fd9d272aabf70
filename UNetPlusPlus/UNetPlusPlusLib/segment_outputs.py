"""The files `unetpp segment` (and `unetpp serve`) write: every output or none.

The segmentation outputs (``-o``, ``--labelmap``) carry the run record (``run_record.py``: the
model, the depth and the run's warnings) in their header, or, for NIfTI, in a JSON sidecar
written with them; the preview draws the same warnings (``preview.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from .cli_args import SEGMENTATION_EXTENSIONS, extension_of
from .cli_outputs import OutputSet
from .output_stamp import stamp_of
from .run_record import add_header_fields, sidecar_path, write_sidecar

#: The outputs that hold the segmentation, and so its run record.
RECORDED_OPTIONS = ("-o", "--labelmap")


def record_outputs(outputs: dict[str, Optional[str]]) -> dict[str, str]:
    """The sidecars of the NIfTI segmentation outputs among ``outputs`` (option -> path), as
    more outputs to check before any work (``cli_outputs.check_output_paths``): option
    ``"-o's run record"`` -> ``x.json`` for ``-o x.nii.gz``."""
    extra = {}
    for option in RECORDED_OPTIONS:
        sidecar = sidecar_path(outputs[option]) if outputs.get(option) else None
        if sidecar is not None:
            extra[f"{option}'s run record"] = str(sidecar)
    return extra


def write_probabilities(probabilities, path: Path) -> None:
    """The class probabilities as one multi-component image (component k = class k)."""
    import SimpleITK as sitk

    from .engine.volume import volume_to_sitk

    channels = [volume_to_sitk(probabilities, c) for c in range(probabilities.num_channels)]
    sitk.WriteImage(sitk.Compose(channels), str(path), True)


def write_disagreement(disagreement, path: Path) -> None:
    """The heads' disagreement map (0..1, float32) on the input grid."""
    import SimpleITK as sitk

    from .engine.volume import volume_to_sitk

    sitk.WriteImage(volume_to_sitk(disagreement), str(path), True)


def _stage_recorded(outputs: OutputSet, target: str, write, record: dict) -> None:
    """Stage the segmentation ``target`` written by ``write(path)`` with the ``record``: in
    its header, or in the sidecar staged after it (NIfTI; it names the image's stamp)."""
    sidecar = sidecar_path(target)
    if sidecar is None:
        outputs.stage(target, lambda p: (write(p), add_header_fields(p, record)))
        return
    outputs.stage(target, write)
    image_stamp = stamp_of(outputs.staged(target)) or ""
    outputs.stage(str(sidecar), lambda p: write_sidecar(p, record, target, image_stamp))


def write_outputs(
    args: argparse.Namespace,
    manifest,
    volume,
    labels,
    probabilities,
    depth,
    disagreement,
    said: Sequence[str] = (),
    record: Optional[dict] = None,
) -> None:
    """Write every output of ``args`` or none (``cli_outputs.OutputSet``). ``said``: the
    run's warnings, drawn into the preview; ``record``: the run record
    (``run_record.make_record``) the segmentation outputs carry."""
    from .engine.volume import write_labelmap

    record = record or {}
    with OutputSet(overwrite=args.overwrite) as outputs:
        if args.output and extension_of(args.output, SEGMENTATION_EXTENSIONS):
            from .segfile import write_seg_nrrd

            _stage_recorded(outputs, args.output, lambda p: write_seg_nrrd(labels, p), record)
        elif args.output:  # -o with a labelmap extension writes that format
            _stage_recorded(outputs, args.output, lambda p: write_labelmap(labels, p), record)
        if args.labelmap:
            _stage_recorded(outputs, args.labelmap, lambda p: write_labelmap(labels, p), record)
        if args.probabilities:
            outputs.stage(args.probabilities, lambda p: write_probabilities(probabilities, p))
        if args.disagreement:
            outputs.stage(args.disagreement, lambda p: write_disagreement(disagreement, p))
        if args.preview:
            from .preview import render_preview

            norm = manifest.channels[0].normalization
            window = norm.get("window") if norm.get("kind") == "ct" else None
            title = f"{manifest.name}  depth {depth}  {Path(args.inputs[0]).name}"
            outputs.stage(
                args.preview,
                lambda p: render_preview(volume, labels, p, window, title, warnings=said),
            )
        outputs.commit()
