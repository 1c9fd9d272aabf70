"""`unetpp segment`: options, checks before any work, the run, and the outputs (all or none).

Order of work, so that a mistake is reported in a second, without waiting for torch: parse
and check the options (cli_args), check every output path (cli_outputs), check the inputs exist,
load the manifest, read the inputs and run the input sanity checks (no torch), and only then
load the network and infer. Run as a program, the CLI imports torch meanwhile on a background
thread (torch_preload.py); in-process callers import it only when the network loads.
Coordinates are RAS millimetres, as 3D Slicer shows them, unless ``--lps``.
"""

from __future__ import annotations

import argparse
import functools
import re
from pathlib import Path
from typing import Optional, Sequence

from . import segment_outputs, torch_preload
from .cancel import CancelFile, cancellable
from .cli_args import ArgumentError, check_roi
from .cli_option_effects import refuse_idle_model_options, refuse_idle_options
from .cli_outputs import check_output_paths
from .cli_points import (
    check_point_on_image,
    check_roi_on_image,
    combine_point_results,
    point_where,
    ras_to_lps,
    typed_point,
)
from .device_check import check_device_exists
from .early_warnings import warner
from .errors import UNetPlusPlusError
from .output_folders import created_folder_warnings
from .read_warnings import said_as_run_warnings
from .run_record import make_record


# ---------------------------------------------------------------------------- checks
def _check_arguments(args: argparse.Namespace) -> None:
    if not (args.output or args.labelmap or args.probabilities or args.disagreement):
        raise UNetPlusPlusError("Nothing to write: give -o OUT.seg.nrrd and/or --labelmap.")
    if args.roi is not None:
        check_roi(args.roi)
    refuse_idle_options(args)  # --lps without --point or --roi
    if args.point and len(args.point) > 1 and args.probabilities:
        raise ArgumentError(
            "argument --probabilities: takes one --point; give a single point, or leave out "
            "--probabilities to segment one nodule per point"
        )
    named, points = len(args.point_name or []), len(args.point or [])
    if named and named != points:
        raise ArgumentError(
            f"argument --point-name: give one per --point ({named} --point-name for "
            f"{points} --point)"
        )
    if args.point and len(args.point) > 1 and args.disagreement:
        raise ArgumentError(
            "argument --disagreement: takes one --point; give a single point, or leave out "
            "--disagreement to segment one nodule per point"
        )


def _check_inputs_exist(inputs: Sequence[str], series: Optional[str] = None) -> None:
    """Every input is a file or a folder; ``series`` (``--series``) needs a folder among them."""
    for name in inputs:
        path = Path(name).expanduser()
        if not path.exists():
            raise UNetPlusPlusError(f"Image not found: {path}.")
        if not path.is_file() and not path.is_dir():  # tester 14: a FIFO hung even SIGTERM
            raise UNetPlusPlusError(
                f"{path} is not a file or a folder but a pipe or a device (for example "
                "`<(zcat ...)`); unetpp reads an image more than once: save it to a file first."
            )
    if series is not None and not any(Path(name).expanduser().is_dir() for name in inputs):
        raise UNetPlusPlusError(  # it was ignored in silence (tester fresh30)
            f"--series {series} picks one of the DICOM series in a folder, but no input is a "
            f"folder ({', '.join(inputs)}); leave out --series, or give the DICOM folder."
        )


#: What a task or model name looks like (the text `--task` is offered with).
_TASK_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _load_manifest(args: argparse.Namespace):
    from .engine.manifest import ModelManifest
    from .engine.registry import find_model

    if args.model and not Path(args.model).expanduser().exists():
        # only a name that could be a task is echoed as one; a path stays in repr() form, its
        # control characters escaped (polish: "/tmp/\x00m.json" gave "--task /tmp/ m.json")
        task = args.model if _TASK_NAME.fullmatch(args.model) else "NAME"
        raise UNetPlusPlusError(
            f"No model package at {args.model!r}: --model takes a model's folder or its "
            "model.json; for an installed model or a task (liver, brain-tumor, lung-nodule) use "
            f"--task {task} (`unetpp models list` shows them)."
        )
    manifest = ModelManifest.load(args.model) if args.model else find_model(args.task)
    names = [channel.name for channel in manifest.channels]
    if len(args.inputs) != len(names):
        hint = ""
        if len(args.inputs) == 1 and len(names) > 1:  # a 4D file of the channels? (no torch)
            from .engine.image_read import stacked_channels_hint

            hint = stacked_channels_hint(args.inputs[0], names)
        raise UNetPlusPlusError(
            f"Model '{manifest.name}' needs {len(names)} input volume(s) in this order: "
            f"{', '.join(names)}; got {len(args.inputs)}.{hint}"
        )
    if args.depth.isdigit() and int(args.depth) not in manifest.depths:
        choices = ", ".join([str(d) for d in manifest.depths] + ["ensemble", "auto"])
        raise UNetPlusPlusError(
            f"Depth {args.depth} is not available for model '{manifest.name}'; choose {choices}."
        )
    refuse_idle_model_options(args, manifest)  # --no-channel-check without the check
    if not args.point:
        # a point model given neither a point nor a ROI: refused before any reading (the nodule
        # model said so only after reading and checking the volume and importing torch, 38 s
        # under load for a 53x64x11 crop; tester 20)
        from .engine.prompt_boxes import prompt_boxes

        prompt_boxes(manifest, _roi_box(args), None)
    return manifest


def _roi_box(args: argparse.Namespace):
    from .engine.volume import Box

    if args.roi is None:
        return None
    first, second = args.roi[:3], args.roi[3:]
    if not args.lps:
        first, second = ras_to_lps(first), ras_to_lps(second)
    return Box(tuple(first), tuple(second))


def _read_roi_region(args: argparse.Namespace, manifest):
    """With ``--roi``: check the whole files streamed slab by slab, then read only the ROI and
    one tile of context (issue 9: peak memory near the region's, not the image's). The MR
    channels read whole for their statistics are checked for clusters of absurd voxels there,
    and only then the near duplicates and the sequence order, on the streamed samples (a
    cluster misleads both; the same order as ``sanity.check_model_samples``).

    Returns (the region Volume, the extra ``Predictor.segment`` options, among them the whole
    image's CT at about 2 mm for the result's anatomy check: ``image_ct``) or None when the
    whole image is read instead: no ROI, ``--point``, ``--disagreement`` or ``--preview`` (they
    need the whole volume), a DICOM folder or a file that cannot be streamed.
    """
    roi = _roi_box(args)
    if roi is None or args.point or args.disagreement or args.preview:
        return None
    import SimpleITK as sitk

    from .engine.bias_field import check_bias_field
    from .engine.orientation_check import check_orientation_strided, ct_channel
    from .engine.prompt_anatomy import strided_ct_volume
    from .engine.prompt_boxes import prompt_boxes
    from .engine.region_read import header_grid, read_region
    from .engine.sanity import check_model_background, check_model_channels, image_volume_ml
    from .engine.scale_check import check_model_scale
    from .engine.streamed_checks import check_files

    names = [c.name for c in manifest.channels]
    streamed: dict = {}

    def order_check(samples):  # background and extent on the streamed samples, kept for later
        header = sitk.ImageFileReader()
        header.SetFileName(str(args.inputs[0]))
        header.ReadImageInformation()
        streamed["ml"] = image_volume_ml(header.GetSize()[:3], header.GetSpacing()[:3])
        streamed["samples"] = samples
        return check_model_background(manifest, samples, streamed["ml"])

    def bias_check(grids, spacing):  # the MR bias field, on the streamed coarse grids
        return check_bias_field(manifest, [], spacing, grids)

    def ap_check(ct, grid):  # a CT flipped front-back, on the streamed ~2 mm view, kept for
        if (manifest.inference or {}).get("anatomy"):  # the result's anatomy (prompt_anatomy)
            streamed["ct"] = strided_ct_volume(ct, grid)
        return check_orientation_strided(manifest, ct, grid)

    if Path(args.inputs[0]).is_file():  # the user's box against the header, before the reads
        try:
            grid = header_grid(Path(args.inputs[0]))
        except UNetPlusPlusError:
            grid = None  # check_files says why
        if grid is not None:  # a speck at the model's scale first: the box follows from it
            check_model_scale(grid.size_xyz, grid.spacing, manifest.spacing, manifest.tile_size)
            check_roi_on_image(grid, roi, args.roi, "LPS" if args.lps else "RAS")
    modalities = [c.modality for c in manifest.channels]
    first_ct = ct_channel(manifest)
    warnings = check_files(
        args.inputs,
        modalities,
        names,
        order_check=order_check,
        bias_check=bias_check,
        ap_check=ap_check if first_ct is not None else None,
        ap_channel=first_ct or 0,
    )
    if warnings is None:
        return None
    needed = prompt_boxes(manifest, roi, None)[0]  # Predictor.context_box, without torch
    norms = [c.normalization for c in manifest.channels]
    volume, full_grid, norms = read_region(  # refuses a cluster of absurd MR voxels first
        args.inputs, needed, names, norms, raw_checked=True, warnings=warnings
    )
    # near duplicates and the sequence order after the clusters (as check_model_samples)
    ml = streamed.get("ml")
    warnings += check_model_channels(manifest, streamed["samples"], args.channel_check, ml)
    options = {"full_grid": full_grid, "channel_norms": norms, "input_warnings": warnings}
    return volume, {**options, "image_ct": streamed.get("ct")}


# ---------------------------------------------------------------------------- the run
def run_segment(
    args: argparse.Namespace, progress, cache=None, input_token: Optional[str] = None
) -> dict:
    """Check everything, segment, write all outputs or none; returns the result summary.
    ``cache`` (a ``warm_cache.WarmCache``, from ``unetpp serve``) keeps the model and the input
    volume between requests; without one nothing is kept. ``input_token`` (``unetpp serve``)
    names the input volume: while the cache holds it the input files are not read and need
    not exist (an ROI is then taken from the kept volume: the same labels as the streamed
    read, Testing/test_region_read.py). Raises UNetPlusPlusError for any user error."""
    from .engine.run_memo import measured_once

    with measured_once():  # what lies under a click: measured once in the run, not twice
        return _run_segment(args, progress, cache, input_token)


def _run_segment(args: argparse.Namespace, progress, cache, input_token: Optional[str]) -> dict:
    from .engine.registry import user_cache_dir
    from .warm_cache import WarmCache

    cache = cache or WarmCache()
    _check_arguments(args)
    user_cache_dir()  # a UNETPP_HOME that is a file: one clear error before any work
    check_device_exists(args.device)  # a missing GPU: before any input is read
    outputs = {
        "-o": args.output,
        "--labelmap": args.labelmap,
        "--probabilities": args.probabilities,
        "--preview": args.preview,
        "--disagreement": args.disagreement,
    }
    records = segment_outputs.record_outputs(outputs)  # a NIfTI output's run record
    replaced = check_output_paths(args.inputs, {**outputs, **records}, args.overwrite)
    warn = warner(progress)  # each warning said once, as soon as known (early_warnings.py)
    for message in replaced:
        warn(message)
    cancel = CancelFile(args.cancel_file) if args.cancel_file else None
    progress = cancellable(progress, cancel)  # checked between stages and tile batches
    if input_token is None:
        _check_inputs_exist(args.inputs, args.series)
    progress("load", 0, 1)
    manifest = _load_manifest(args)
    if not args.model:  # a UNETPP_MODELS 'liver-ct' ran instead of the shipped one, unsaid
        from .engine.registry import shadow_notice

        notice = shadow_notice(manifest)  # (tester 20)
        if notice:
            warn(notice)
    names = [c.name for c in manifest.channels]
    held = cache.holds(input_token, names, args.series)  # then the files are not read
    if input_token is not None and not held:
        _check_inputs_exist(args.inputs, args.series)
    read_said: list[str] = []  # the readers' warnings (read_warnings.py)
    with said_as_run_warnings(warn, read_said):
        # --roi: the whole file is checked streamed, then only the region is read
        region = None if held else _read_roi_region(args, manifest)
        if region is None:  # input sanity before torch; once per volume across serve clicks
            volume = cache.volume(args.inputs, names, series=args.series, token=input_token)
    if region is not None:
        volume, region_options = region
    else:
        for message in cache.read_warnings(volume, read_said):  # a kept volume's too (serve)
            if message not in read_said:
                read_said.append(message)
                warn(message)
        region_options = {
            "input_warnings": cache.input_checks(manifest, volume, args.channel_check),
            "memo": cache.memo(manifest, volume),  # the prepared input, for the next request
        }
        if args.point or args.roi:  # a crop is normalised with the whole volume's statistics
            region_options["channel_norms"] = cache.channel_norms(manifest, volume)
    if args.roi is not None and region is None:  # the user's box, in the user's frame
        check_roi_on_image(volume.grid, _roi_box(args), args.roi, "LPS" if args.lps else "RAS")
    if not (args.roi or args.point):  # a header that makes the model grid huge: say the work
        from .engine.tile_count import long_run_warning

        work = long_run_warning(volume.grid, manifest)
        region_options["input_warnings"] += [work] if work else []
    if region is None and not (args.roi or args.point) and _may_be_refused(manifest, volume):
        from .engine.prepare_array import prepare_ahead  # the memory refusal, if it comes

        # before the header warnings: 100 mm voxels printed four, one saying "the run will
        # take correspondingly long... cancel", and then the refusal (tester 20)
        prepare_ahead(manifest, volume, region_options["memo"], args.overlap)
    for message in region_options["input_warnings"]:  # before torch is even imported
        warn(message)
    points = [tuple(p) if args.lps else ras_to_lps(p) for p in (args.point or [])] or [None]
    for number, (given, point) in enumerate(zip(args.point or [], points), start=1):
        frame = "LPS" if args.lps else "RAS"  # named as the air check names it (CLI.md)
        where = _named_point(args, number - 1) or typed_point(given, number, len(args.point), frame)
        # no --lps hint for the Slicer module's background runs (named points, RAS clicks)
        hint = not args.point_name
        check_point_on_image(volume.grid, point, given, frame, number, where, lps_option=hint)
    _refuse_clicks_outside(args, manifest, volume, points)
    created = created_folder_warnings(outputs)  # the inputs passed: the folders will be made
    for message in created:
        warn(message)
    if region is None and not (args.roi or args.point) and torch_preload.started():
        from .engine.prepare_array import prepare_ahead  # the network input, while torch loads

        prepare_ahead(manifest, volume, region_options["memo"], args.overlap)
    torch_preload.wait()  # the CLI's background import of torch (its error, if it failed)
    predictor = cache.predictor(manifest, args.device, args.threads)  # torch is imported here
    progress("load", 1, 1)
    # one click: labels with the smallest extent that holds them (engine/point_crop.py)
    crop = len(points) == 1 and bool(args.point) and not (args.preview or args.probabilities)
    results = []
    for number, point in enumerate(points, start=1):
        # several clicks: a click's early warnings name its point as the summary's do
        said = functools.partial(_say_numbered, warn, number, len(args.point or []))
        results.append(
            predictor.segment(
                volume,
                depth=args.depth,
                roi=_roi_box(args),
                point=point,
                overlap=args.overlap,
                tile_batch=args.tile_batch,
                largest_component=args.largest_component,
                return_probabilities=bool(args.probabilities),
                progress=progress,
                tta=args.tta,
                disagreement=bool(args.disagreement),
                cancel=cancel,
                crop_output=crop and not args.disagreement,
                warn=said,
                **region_options,
            )
        )
    result = results[-1]
    shared: list[str] = []  # points on one lesion (several points)
    labels = result.labels if len(results) == 1 else combine_point_results(results, shared)
    summary = _summary(args, labels, results)
    about_data = list(dict.fromkeys(read_said + summary["warnings"] + shared))  # the preview's
    progress("write", 0, 1)
    record = make_record(manifest, result.info["depth"], about_data, result.info.get("anatomy"))
    segment_outputs.write_outputs(
        args,
        manifest,
        volume,
        labels,
        result.probabilities,
        result.info["depth"],
        result.disagreement,
        about_data,
        record,  # the segmentation files keep the model and the warnings (run_record.py)
    )
    progress("write", 1, 1)
    said = about_data + replaced + created
    summary["warnings"] = list(dict.fromkeys(said))
    for warning in summary["warnings"]:  # those about the result, through the same channel
        warn(warning)  # ({"warning"} events, serve replies, stderr text); said once each
    return summary


def _may_be_refused(manifest, volume) -> bool:
    """Whether the whole input's model grid may not fit in memory (engine/grid_memory.py)."""
    from .engine.grid_memory import whole_grid_may_not_fit

    channels, classes = len(manifest.channels), manifest.num_classes
    return whole_grid_may_not_fit(volume.grid, manifest.spacing, channels, classes)


def _refuse_clicks_outside(args: argparse.Namespace, manifest, volume, points: list) -> None:
    """Refuse a click in the air outside the body (engine/click_check.py) before torch is
    imported, naming the click as typed: which one of several points (polish 4)."""
    from .engine.click_check import refuse_outside_air

    given = args.point or []
    for number, (typed, point) in enumerate(zip(given, points), start=1):
        where = typed_point(typed, number, len(given), "LPS" if args.lps else "RAS")
        refuse_outside_air(manifest, volume, point, _named_point(args, number - 1) or where)


def _named_point(args: argparse.Namespace, index: int) -> Optional[str]:
    """Point ``index`` as messages name it when ``--point-name`` names it: that name and its
    position at 0.1 mm, as the Slicer module's in-process run names a click
    (:func:`.cli_points.point_where`); None without ``--point-name``."""
    if not args.point_name:
        return None
    frame = "LPS" if args.lps else "RAS"
    return point_where(args.point[index], args.point_name[index], frame)


def point_warning(warning: str, number: int, points: int) -> str:
    """``warning`` of the run of point ``number`` of ``points``, naming its point when there
    are several ("at point 2 of 3" for "at the clicked point"; the box-edge warnings prefixed)."""
    from .engine.point_box import BEYOND_BOX_WARNING, ROI_EDGE_WARNING

    if points > 1 and "at the clicked point" in warning:
        warning = warning.replace("at the clicked point", f"at point {number} of {points}")
        warning = warning.replace(
            "the result is empty", f"its segment (ending in ' {number}') is empty"
        )
    if points > 1 and warning in (BEYOND_BOX_WARNING, ROI_EDGE_WARNING):
        warning = f"Point {number} of {points}: {warning}"
    return warning


def _say_numbered(warn, number: int, points: int, message: str) -> None:
    """Say ``message`` of point ``number``'s run through ``warn`` as the summary will list it."""
    warn(point_warning(message, number, points))


def _summary(args: argparse.Namespace, labels, results: list) -> dict:
    from .engine.volume_plausibility import is_point_volume_warning, segment_volumes_ml

    values = [label.value for label in labels.labels]
    counted = segment_volumes_ml(labels.array, labels.spacing, values)
    volumes = {label.name: round(ml, 3) for label, ml in zip(labels.labels, counted)}
    info = dict(results[-1].info)
    info["seconds"] = sum(float(r.info.get("seconds", 0.0)) for r in results)
    if any("tiles_by_executor" in r.info for r in results):  # every point's run, not the last
        tiles: dict = {}
        for result in results:
            for name, count in result.info.get("tiles_by_executor", {}).items():
                tiles[name] = tiles.get(name, 0) + count
        info["tiles_by_executor"] = tiles
    info["points"] = len(args.point or [])
    info["volumes_ml"] = volumes
    # input warnings of every point's run, each once (engine/sanity.py, the clicked component);
    # with several points, an empty click or a nodule at the box's edge names its point
    found = []
    for number, result in enumerate(results, start=1):
        # a point whose segments all went to an earlier point's lesion (combine_point_results
        # warns so): its volume warning would describe a segment the output does not hold
        emptied = info["points"] > 1 and not any(
            volumes.get(f"{label.name} {number}") for label in result.labels.labels
        )
        for warning in result.info.get("warnings", []):
            if emptied and is_point_volume_warning(warning):
                continue
            found.append(point_warning(warning, number, info["points"]))
    info["warnings"] = list(dict.fromkeys(found))
    records = segment_outputs.record_outputs({"-o": args.output, "--labelmap": args.labelmap})
    info["outputs"] = {  # a NIfTI segmentation's run record is a file of its own
        "segmentation": args.output,
        "segmentation_record": records.get("-o's run record"),
        "labelmap": args.labelmap,
        "labelmap_record": records.get("--labelmap's run record"),
        "probabilities": args.probabilities,
        "disagreement": args.disagreement,
        "preview": args.preview,
    }
    return info
