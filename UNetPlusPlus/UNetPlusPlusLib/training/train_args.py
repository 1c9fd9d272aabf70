"""The ``unetpp train`` options, each checked when the command line is parsed (a bad value is one
``error:`` line, exit status 2, before any data is read): types from ``cli_args``. Defaults are
None where the checkpoint, dataset.json, the --init model or the plan may give the value; they
are resolved in ``training.cli``."""

from __future__ import annotations

import argparse

from .. import cli_args as types
from ..engine.network_shape import features_problem

#: The most ``--epochs`` and ``--iterations-per-epoch`` accepted: far beyond any real schedule
#: (the planner caps epochs at 1000), small enough for the schedule's arithmetic in floats.
MAX_EPOCHS = 100_000
MAX_ITERATIONS_PER_EPOCH = 1_000_000
#: The most ``--batch-size`` accepted: far beyond any real use (the planner chooses 2-4, GPU
#: runs use tens); whether a batch fits in memory is checked once the tile is known
#: (``step_memory.fit_batch``).
MAX_BATCH_SIZE = 1024


class _FeaturesAction(argparse.Action):
    """``--features``: the six widths, refused when parsed (before any case is read) where the
    network could not be built of them (``engine/network_shape.features_problem``)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        problem = features_problem(values)
        if problem is not None:
            raise argparse.ArgumentError(self, problem)
        setattr(namespace, self.dest, list(values))


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``unetpp train`` options (defaults None: resolved in ``run_train``); negative values
    (``--time-budget -5m``) reach the options' checks (``cli_args.accept_negative_values``)."""
    types.accept_negative_values(parser)
    parser.add_argument("data_dir", metavar="DATA_DIR", help="folder with the cases")
    parser.add_argument(
        "-o",
        "--output",
        dest="out_dir",
        required=True,
        metavar="OUT_DIR",
        help="where model.json, weights, checkpoint, log and plots go",
    )
    data = parser.add_argument_group("dataset")
    data.add_argument(
        "--dataset-json",
        metavar="FILE",
        help="dataset description (patterns relative to DATA_DIR), or the name of one the "
        "package ships (brats2018, lidc-vois, liver, liver-lits); without it, "
        "DATA_DIR is read as a folder of Slicer exports",
    )
    data.add_argument(
        "--labels",
        type=_csv,
        metavar="NAME[,NAME...]",
        help="labels to learn: segment names or terminology codes, or numbers (label values: "
        "the segment of that label value in a .seg.nrrd); default: all",
    )
    data.add_argument(
        "--channels",
        type=_csv,
        metavar="NAME[,NAME...]",
        help="Slicer exports: channel file suffixes in model order "
        "(<case>_<channel>.nrrd), e.g. flair,t1,t1ce,t2",
    )
    data.add_argument(
        "--modality",
        choices=["auto", "CT", "MR"],
        default="auto",
        help="Slicer exports: CT window or MR z-score normalisation (auto: guess)",
    )
    data.add_argument(
        "--ct-window",
        type=types.finite_float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="Slicer exports: CT window in HU (default -1000 1000)",
    )
    data.add_argument(
        "--patient-regex",
        type=types.regex,
        metavar="REGEX",
        help="regex extracting the patient id from a case id, for the split",
    )
    data.add_argument(
        "--val-cases",
        type=types.regex_list,
        metavar="ID[,ID...]",
        help="validation case or patient ids (regexes), instead of a fraction",
    )
    data.add_argument(
        "--val-fraction",
        metavar="F",
        type=types.fraction(False, True),
        help="fraction of patients held out (0.2)",
    )
    data.add_argument(
        "--max-cases", metavar="N", type=types.positive_int, help="use only the first N cases"
    )
    data.add_argument(
        "--max-val-cases", metavar="N", type=types.positive_int, help="validate on at most N cases"
    )
    data.add_argument(
        "--train-fraction",
        metavar="F",
        type=types.fraction(True, False),
        help="train on this seeded share of the training patients, validation unchanged "
        "(learning curves: a run with half the data is --train-fraction 0.5)",
    )
    data.add_argument(
        "--no-channel-check",
        action="store_true",
        help="multi-channel MR: do not check each case's sequence order (against the --init "
        "model's contrast fingerprint, else the other cases'); said as a warning",
    )
    data.add_argument(
        "--strict-labels",
        action="store_true",
        help="refuse the dataset (before any training) when a case's label or image fails the "
        "--init model's result checks (a liver where the heart is or left of the midline, a "
        "volume outside postprocess.plausible_ml, a CT flipped front-back); default: a warning "
        "per case",
    )
    data.add_argument(
        "--cache-dir", metavar="DIR", help="preprocessing cache (default OUT_DIR/cache)"
    )

    model = parser.add_argument_group("model")
    model.add_argument(
        "--init",
        metavar="MODEL",
        help="fine-tune: start from this model (a task or model name such as 'liver', or a "
        "model.json / package folder); its post-processing, prompt, normalisation and label "
        "codes are kept unless the dataset description sets them",
    )
    model.add_argument(
        "--spacing",
        type=types.positive_float,
        nargs=3,
        metavar=("X", "Y", "Z"),
        help="model voxel spacing in mm (default: planned)",
    )
    model.add_argument(
        "--tile",
        type=types.tile_edge,
        nargs=3,
        metavar=("X", "Y", "Z"),
        help="training and inference tile in voxels, multiples of 16 (default: planned)",
    )
    model.add_argument(
        "--features",
        type=int,
        nargs=6,
        metavar="F",
        action=_FeaturesAction,
        help="channels f0..f4 and f_final, each at least 1, f2..f4 at least 2 (default: planned)",
    )
    model.add_argument("--norm", choices=["instance", "batch", "none"])
    model.add_argument(
        "--name", metavar="NAME", help="model name in the manifest (default: the dataset's)"
    )
    model.add_argument(
        "--task", metavar="NAME", help="task name in the manifest (default: the dataset's)"
    )
    model.add_argument(
        "--overlap", metavar="F", type=types.overlap_fraction, help="sliding-window overlap (0.25)"
    )
    model.add_argument("--weights-dtype", choices=["float32", "float16"])

    run = parser.add_argument_group("training")
    run.add_argument(
        "--time-budget",
        metavar="DURATION",
        type=types.duration,
        help="fit the schedule to this wall time, e.g. 30m, 2h, 8h (default: 1h on a CPU, 4h "
        "on a GPU, unless --epochs is given)",
    )
    run.add_argument(
        "--plan-only", action="store_true", help="print the plan and its ETA, write plan.json, stop"
    )
    run.add_argument(
        "--progress-json",
        action="store_true",
        help="one JSON line per epoch (epoch, loss, ETA, latest per-depth Dice), then the result "
        "or the error (for the Slicer module)",
    )
    run.add_argument(
        "--cancel-file",
        metavar="PATH",
        help="stop (exit status 3, no model written) as soon as this file exists; checked at "
        "every iteration (the Slicer module's Cancel)",
    )
    run.add_argument(
        "--epochs",
        metavar="N",
        type=types.count_up_to(MAX_EPOCHS),
        help=f"epochs, at most {MAX_EPOCHS} (default: planned)",
    )
    run.add_argument(
        "--iterations-per-epoch",
        metavar="N",
        type=types.count_up_to(MAX_ITERATIONS_PER_EPOCH),
        help=f"iterations per epoch, at most {MAX_ITERATIONS_PER_EPOCH} (planned)",
    )
    run.add_argument(
        "--batch-size",
        metavar="N",
        type=types.count_up_to(MAX_BATCH_SIZE),
        help=f"patches per iteration and rank, at most {MAX_BATCH_SIZE}, and as many as one "
        "training step can hold in memory (planned)",
    )
    run.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "amp"],
        default="auto",
        help="auto: measured (bf16 autocast on CPUs with native bf16 where faster and not "
        "worse; autocast on CUDA); fp32; bf16 (CPU); amp (CUDA)",
    )
    run.add_argument(
        "--lr",
        metavar="LR",
        type=types.positive_float,
        help="AdamW learning rate (3e-4; with --init half of it, 1.5e-4)",
    )
    run.add_argument(
        "--weight-decay",
        metavar="WD",
        type=types.non_negative_float,
        help="AdamW weight decay (3e-5)",
    )
    run.add_argument("--schedule", choices=["poly", "cosine", "constant"])
    run.add_argument(
        "--foreground-fraction",
        metavar="F",
        type=types.fraction(False, False),
        help="share of patches centred on a labelled voxel (0.33)",
    )
    run.add_argument("--no-augment", action="store_true", help="no augmentation")
    run.add_argument("--no-amp", action="store_true", help="= --precision fp32")
    run.add_argument("--seed", metavar="N", type=types.random_seed, help="random seed (0)")
    run.add_argument("--device", metavar="DEVICE", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument(
        "--threads", metavar="N", type=types.thread_count, help="CPU threads per process"
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT_DIR/checkpoint with the same plan.json (--epochs may grow)",
    )
    run.add_argument(
        "--accept-changed-cases",
        action="store_true",
        help="with --resume: continue although an image or label changed since the checkpoint "
        "(by default such a resume is refused, naming the cases)",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run (model, plan, checkpoint) in OUT_DIR; without it or "
        "--resume such a folder is refused",
    )
    run.add_argument(
        "--val-every",
        metavar="N",
        type=types.positive_int,
        help="validate every N epochs (planned)",
    )
    run.add_argument(
        "--depth-tolerance",
        metavar="DICE",
        type=types.non_negative_float,
        help="recommend the shallowest depth within this Dice of the best (0.01)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--no-prepare",
        action="store_true",
        help="do not prepare the trained model's OpenVINO graphs at the end (`unetpp models "
        "prepare`); its first segmentation, or its install, prepares them",
    )
