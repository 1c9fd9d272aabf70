"""`unetpp segment`'s options: the argparse sub-parser, each option typed and checked when parsed
(cli_args); the run itself is cli_segment.run_segment."""

from __future__ import annotations

from .cli_args import (
    LABELMAP_EXTENSIONS,
    MAX_OVERLAP,
    PREVIEW_EXTENSIONS,
    SEGMENTATION_EXTENSIONS,
    depth_choice,
    device_choice,
    finite_float,
    output_file,
    overlap_fraction,
    positive_int,
    series_uid,
    thread_count,
)
from .cli_segment import run_segment


# ---------------------------------------------------------------------------- options
def add_segment_parser(subparsers) -> None:
    """The `segment` sub-command and its options, each checked at parse time (cli_args)."""
    parser = subparsers.add_parser(
        "segment",
        help="segment a volume (or co-registered volumes) with a model",
        description="Segment INPUT volumes (NRRD, NIfTI, MetaImage or a DICOM folder).",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="input volume(s), in the order the model lists its channels",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", help="built-in task: liver, brain-tumor, lung-nodule")
    which.add_argument("--model", metavar="MANIFEST", help="path to a model.json")
    parser.add_argument(
        "--depth",
        default="auto",
        type=depth_choice,
        help="1, 2, 3, 4 (pruned UNet++ depth), ensemble, or auto (default)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        type=device_choice,
        help="auto (default), cpu, cuda, cuda:N or mps",
    )
    parser.add_argument(
        "--series",
        metavar="UID",
        type=series_uid,
        help="DICOM folder holding several series: the Series Instance UID to segment",
    )
    parser.add_argument(
        "--roi",
        nargs=6,
        type=finite_float,
        metavar=("X1", "Y1", "Z1", "X2", "Y2", "Z2"),
        help="restrict inference to a box given by two opposite corners (mm)",
    )
    parser.add_argument(
        "--point",
        nargs=3,
        type=finite_float,
        action="append",
        metavar=("X", "Y", "Z"),
        help="a point on a lesion (mm); crops a model-sized box around it. Repeat it for "
        "several lesions: one segment per point (e.g. 'nodule 1', 'nodule 2')",
    )
    parser.add_argument(
        "--point-name",
        action="append",
        metavar="NAME",
        help="how messages name the point (one per --point, in order), followed by its "
        "position at 0.1 mm, e.g. \"Point 'F-2' (2 of 3)\" as the Slicer module passes; "
        "default: 'The clicked point' (or 'Point 2 of 3') and the position as typed",
    )
    parser.add_argument(
        "--lps",
        action="store_true",
        help="--roi and --point are LPS (ITK) rather than RAS (Slicer) mm",
    )
    labelmaps = ", ".join(LABELMAP_EXTENSIONS)
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT.seg.nrrd",
        type=output_file(
            SEGMENTATION_EXTENSIONS + LABELMAP_EXTENSIONS,
            "-o",
            " (a .seg.nrrd is a Slicer segmentation; the others write a labelmap, as --labelmap)",
        ),
        help="write a Slicer segmentation (.seg.nrrd, with names, colours and codes), or a "
        f"labelmap in the format its extension names ({labelmaps})",
    )
    parser.add_argument(
        "--labelmap",
        metavar="OUT",
        type=output_file(LABELMAP_EXTENSIONS, "--labelmap"),
        help=f"also write a labelmap ({labelmaps})",
    )
    parser.add_argument(
        "--probabilities",
        metavar="OUT",
        type=output_file(LABELMAP_EXTENSIONS, "--probabilities"),
        help="also write the class probabilities (multi-component image)",
    )
    parser.add_argument(
        "--preview",
        metavar="PNG",
        type=output_file(PREVIEW_EXTENSIONS, "--preview"),
        help="write a PNG preview of three planes",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace output files even if they are not unchanged unetpp outputs (by default "
        "an existing file is replaced only if this tool wrote it and it has not changed since, "
        "so a segmentation corrected by hand is never lost)",
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average mirrored passes (slower; see the model card)",
    )
    parser.add_argument(
        "--disagreement",
        metavar="OUT",
        type=output_file(LABELMAP_EXTENSIONS, "--disagreement"),
        help="also write where the deep-supervision heads disagree (0..1, input grid; depth >= 2)",
    )
    parser.add_argument(
        "--overlap",
        type=overlap_fraction,
        help=f"tile overlap, a fraction from 0 to {MAX_OVERLAP:g} (default: the model's)",
    )
    parser.add_argument(
        "--no-channel-check",
        dest="channel_check",
        action="store_false",
        help="skip the sequence-order check of multi-channel MR models (you are sure of the "
        "order; docs/INPUT_CHECKS_MR.md)",
    )
    parser.add_argument(
        "--tile-batch",
        type=positive_int,
        default=None,
        help="tiles per forward pass (>= 1; default: 2 on the CPU for tiles of up to 64^3 "
        "voxels, which runs faster with the same labels, else 1)",
    )
    parser.add_argument(
        "--threads", type=thread_count, help="CPU threads (default: physical cores)"
    )
    components = parser.add_mutually_exclusive_group()  # one of them, or the model's choice
    components.add_argument(
        "--largest-component",
        dest="largest_component",
        action="store_true",
        default=None,
        help="keep only the largest component of each label (with --point: the one at the point)",
    )
    components.add_argument(
        "--all-components",
        dest="largest_component",
        action="store_false",
        help="keep every connected component (no component filter of the model's post-processing)",
    )
    parser.add_argument(
        "--progress-json",
        action="store_true",
        help="print progress and the result as JSON lines on stdout",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--cancel-file",
        metavar="PATH",
        help="stop (exit status 3, nothing written) as soon as this file exists",
    )
    parser.set_defaults(handler=run_segment)
