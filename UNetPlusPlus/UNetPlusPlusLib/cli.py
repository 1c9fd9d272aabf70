"""The `unetpp` command line: `segment`, `models` and `train`.

User errors (`UNetPlusPlusError`) print as one line, `error: ...`, and exit with status 2. With
`--progress-json`, progress goes to stdout as JSON lines (`{"stage": "infer", "done": 3,
"total": 8}`), then `{"result": {...}}` or `{"error": "..."}`; the Slicer module reads them.
Coordinates on the command line are RAS millimetres, as 3D Slicer shows them, unless `--lps`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from .errors import CancelledError, UNetPlusPlusError

EXIT_USER_ERROR = 2
EXIT_CANCELLED = 3
EXIT_INTERNAL_ERROR = 1


# ---------------------------------------------------------------------------- progress output
class JsonProgress:
    """Progress as JSON lines on stdout, for the Slicer module's background runner."""

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.emit({"stage": stage, "done": int(done), "total": int(total)})

    @staticmethod
    def emit(payload: dict) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        pass


class BarProgress:
    """A tqdm bar per stage on stderr."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.stage: Optional[str] = None
        self.bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if stage.startswith("fallback"):
            tqdm.write(f"warning: {stage.split(':', 1)[-1].strip()}", file=sys.stderr)
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(
                total=total,
                desc=stage,
                unit="tile" if stage == "infer" else "step",
                file=sys.stderr,
                leave=False,
                disable=None,  # no bar when stderr is not a terminal
            )
        if self.bar is not None:
            self.bar.total = total
            self.bar.n = done
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ---------------------------------------------------------------------------- helpers
def ras_to_lps(point: Sequence[float]) -> tuple:
    """RAS and LPS differ by the sign of the first two axes."""
    return (-float(point[0]), -float(point[1]), float(point[2]))


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file in the same folder, so a failure leaves no partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    handle, temporary = tempfile.mkstemp(prefix=".unetpp-", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _check_outputs(inputs: Sequence[str], outputs: Sequence[Optional[str]]) -> None:
    resolved_inputs = {Path(p).resolve() for p in inputs}
    for output in outputs:
        if output and Path(output).resolve() in resolved_inputs:
            raise UNetPlusPlusError(f"Refusing to overwrite the input file {output}.")


# ---------------------------------------------------------------------------- segment
def _load_manifest(args: argparse.Namespace):
    from .engine.manifest import ModelManifest
    from .engine.registry import find_model

    if args.model:
        return ModelManifest.load(args.model)
    return find_model(args.task)


def _roi_box(args: argparse.Namespace):
    from .engine.volume import Box

    if args.roi is None:
        return None
    first, second = args.roi[:3], args.roi[3:]
    if not args.lps:
        first, second = ras_to_lps(first), ras_to_lps(second)
    return Box(tuple(first), tuple(second))


def _write_probabilities(result, path: Path) -> None:
    """The class probabilities as one multi-component image (component k = class k)."""
    import SimpleITK as sitk

    from .engine.volume import volume_to_sitk

    probabilities = result.probabilities
    channels = [volume_to_sitk(probabilities, c) for c in range(probabilities.num_channels)]
    sitk.WriteImage(sitk.Compose(channels), str(path), True)


def run_segment(args: argparse.Namespace, progress) -> dict:
    from .engine.predictor import Predictor
    from .engine.volume import read_volume, write_labelmap

    if not (args.output or args.labelmap or args.probabilities):
        raise UNetPlusPlusError("Nothing to write: give -o OUT.seg.nrrd and/or --labelmap.")
    _check_outputs(args.inputs, [args.output, args.labelmap, args.probabilities, args.preview])
    progress("load", 0, 1)
    manifest = _load_manifest(args)
    names = [channel.name for channel in manifest.channels]
    if len(args.inputs) != len(names):
        raise UNetPlusPlusError(
            f"Model '{manifest.name}' needs {len(names)} input volume(s) in this order: "
            f"{', '.join(names)}; got {len(args.inputs)}."
        )
    volume = read_volume(args.inputs, channel_names=names)
    predictor = Predictor(manifest, device=args.device, threads=args.threads)
    progress("load", 1, 1)
    point = None
    if args.point is not None:
        point = tuple(args.point) if args.lps else ras_to_lps(args.point)
    result = predictor.segment(
        volume,
        depth=args.depth,
        roi=_roi_box(args),
        point=point,
        overlap=args.overlap,
        tile_batch=args.tile_batch,
        largest_component=args.largest_component,
        return_probabilities=bool(args.probabilities),
        progress=progress,
    )
    progress("write", 0, 1)
    if args.output:
        from .segfile import write_seg_nrrd

        _atomic_write(Path(args.output), lambda p: write_seg_nrrd(result.labels, p))
    if args.labelmap:
        _atomic_write(Path(args.labelmap), lambda p: write_labelmap(result.labels, p))
    if args.probabilities:
        _atomic_write(Path(args.probabilities), lambda p: _write_probabilities(result, p))
    if args.preview:
        from .preview import render_preview

        window = None
        norm = manifest.channels[0].normalization
        if norm.get("kind") == "ct":
            window = norm.get("window")
        title = f"{manifest.name}  depth {result.info['depth']}  {Path(args.inputs[0]).name}"
        _atomic_write(
            Path(args.preview),
            lambda p: render_preview(volume, result.labels, p, window=window, title=title),
        )
    progress("write", 1, 1)
    volumes = {}
    voxel_ml = float(abs(__import__("numpy").prod(result.labels.spacing))) / 1000.0
    for label in result.labels.labels:
        volumes[label.name] = round(float((result.labels.array == label.value).sum()) * voxel_ml, 3)
    info = dict(result.info)
    info.update(
        {
            "volumes_ml": volumes,
            "outputs": {
                "segmentation": args.output,
                "labelmap": args.labelmap,
                "probabilities": args.probabilities,
                "preview": args.preview,
            },
        }
    )
    return info


def _add_segment_parser(subparsers) -> None:
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
        help="1, 2, 3, 4 (pruned UNet++ depth), ensemble, or auto (default)",
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda:N")
    parser.add_argument(
        "--roi",
        nargs=6,
        type=float,
        metavar=("X1", "Y1", "Z1", "X2", "Y2", "Z2"),
        help="restrict inference to a box given by two opposite corners (mm)",
    )
    parser.add_argument(
        "--point",
        nargs=3,
        type=float,
        metavar=("X", "Y", "Z"),
        help="a point on the lesion (mm); crops a model-sized box around it",
    )
    parser.add_argument(
        "--lps",
        action="store_true",
        help="--roi and --point are LPS (ITK) rather than RAS (Slicer) mm",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT.seg.nrrd",
        help="write a Slicer segmentation file with names, colours and codes",
    )
    parser.add_argument("--labelmap", metavar="OUT", help="also write a labelmap (.nii.gz, .nrrd)")
    parser.add_argument(
        "--probabilities",
        metavar="OUT",
        help="also write the class probabilities (multi-component image)",
    )
    parser.add_argument("--preview", metavar="PNG", help="write a PNG preview of three planes")
    parser.add_argument("--overlap", type=float, help="tile overlap 0..0.9 (model default)")
    parser.add_argument("--tile-batch", type=int, default=1, help="tiles per forward pass")
    parser.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    parser.add_argument(
        "--largest-component",
        dest="largest_component",
        action="store_true",
        default=None,
        help="keep only the largest component of each label",
    )
    parser.add_argument(
        "--all-components",
        dest="largest_component",
        action="store_false",
        help="keep every connected component",
    )
    parser.add_argument(
        "--progress-json",
        action="store_true",
        help="print progress and the result as JSON lines on stdout",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_segment)


# ---------------------------------------------------------------------------- models
def run_models(args: argparse.Namespace, progress) -> dict:
    from .engine import registry

    if args.models_command == "install":
        manifest = registry.install_model(args.source, expected_sha256=args.sha256)
        print(f"installed {manifest.name} ({manifest.task}) into {Path(manifest.path).parent}")
        return {"installed": manifest.name}
    if args.models_command == "info":
        manifest = registry.find_model(args.name)
        print(json.dumps(manifest.to_dict(), indent=2))
        return {}
    manifests = registry.list_models()
    if not manifests:
        print("no models found in: " + ", ".join(str(p) for p in registry.model_dirs()))
    for manifest in manifests:
        print(f"{manifest.task}: {manifest.name}  ({Path(manifest.path).parent})")
        print(
            f"  inputs: {', '.join(c.name for c in manifest.channels)}; "
            f"labels: {', '.join(label.name for label in manifest.labels)}"
        )
        for depth in [*manifest.depths, "ensemble"]:
            print("  " + describe_depth(manifest, depth))
    return {}


def describe_depth(manifest, depth) -> str:
    """One line per depth: validation Dice per label and seconds per volume, when recorded."""
    figures = manifest.validation_for(depth)
    name = f"L{depth}" if isinstance(depth, int) else str(depth)
    marker = " (recommended)" if depth == manifest.recommended_depth else ""
    dice = figures.get("dice") or {}
    parts = [f"Dice {k} {v:.3f}" for k, v in dice.items() if isinstance(v, (int, float))]
    seconds = figures.get("seconds_per_volume")
    if isinstance(seconds, (int, float)):
        parts.append(f"{seconds:.1f} s/volume")
    return f"{name:<9}{marker:<14} " + ("; ".join(parts) if parts else "no validation figures")


def _add_models_parser(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list, inspect or install model packages")
    inner = parser.add_subparsers(dest="models_command")
    inner.add_parser("list", help="list the available models (default)")
    info = inner.add_parser("info", help="print a model's manifest")
    info.add_argument("name", help="task or model name")
    install = inner.add_parser("install", help="install a model from a folder, .zip or URL")
    install.add_argument("source", help="model.json, folder, .zip file, or http(s) URL")
    install.add_argument("--sha256", help="expected sha256 of the downloaded archive")
    parser.set_defaults(handler=run_models, models_command="list")


# ---------------------------------------------------------------------------- train
def _add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train or fine-tune a model on a dataset")
    try:
        from .training.cli import add_train_arguments, run_train
    except ImportError as error:  # the training package is optional at run time
        parser.set_defaults(handler=None, import_error=str(error))
        return
    add_train_arguments(parser)
    parser.set_defaults(handler=lambda args, progress: run_train(args))


# ---------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="unetpp", description="3D UNet++ segmentation (Zhou et al., IEEE TMI 2019)."
    )
    parser.add_argument("--version", action="version", version=f"unetpp {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_segment_parser(subparsers)
    _add_models_parser(subparsers)
    _add_train_parser(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    json_mode = bool(getattr(args, "progress_json", False))
    progress = JsonProgress() if json_mode else BarProgress(getattr(args, "quiet", False))

    def fail(message: str, code: int) -> int:
        progress.close()
        if json_mode:
            JsonProgress.emit({"error": message})
        print(f"error: {message}", file=sys.stderr)
        return code

    if args.handler is None:
        return fail(f"training is unavailable: {args.import_error}", EXIT_USER_ERROR)
    try:
        result = args.handler(args, progress)
    except CancelledError as error:
        return fail(str(error), EXIT_CANCELLED)
    except KeyboardInterrupt:
        return fail("Cancelled by the user.", EXIT_CANCELLED)
    except UNetPlusPlusError as error:
        return fail(str(error), EXIT_USER_ERROR)
    except MemoryError:
        return fail(
            "Out of memory. Use a region of interest or a shallower depth.", EXIT_USER_ERROR
        )
    except Exception as error:  # noqa: BLE001 - last resort: one line, traceback on request
        if args.debug:
            traceback.print_exc()
        return fail(
            f"internal error ({type(error).__name__}: {error}); "
            "please report it, with the output of --debug",
            EXIT_INTERNAL_ERROR,
        )
    progress.close()
    if isinstance(result, int):
        return result
    if json_mode and args.command == "segment":
        JsonProgress.emit({"result": result})
    elif args.command == "segment":
        outputs = ", ".join(v for v in result["outputs"].values() if v)
        volumes = ", ".join(f"{k} {v} ml" for k, v in result["volumes_ml"].items())
        print(
            f"segmented with {result['model']} at depth {result['depth']} on "
            f"{result['device']} in {result['seconds']:.1f} s: {volumes}; wrote {outputs}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
