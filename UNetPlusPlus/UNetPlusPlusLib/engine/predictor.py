"""Segment a volume with a model package: the engine's one entry point for inference.

The steps follow docs/ARCHITECTURE.md: optional ROI or point crop, resampling onto the model's
canonical grid (identity LPS direction, model spacing), normalisation from the manifest,
Gaussian-blended sliding-window inference with the (possibly pruned) UNet++ (Zhou et al., IEEE
TMI 2019, section III-C, "model pruning"), and resampling of the class probabilities back onto
the exact input grid before the argmax.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import UNetPlusPlusError
from . import result_grid, runtime_env, spin_guard, tile_run
from .devices import configure_threads, resolve_device
from .disagreement import disagreement_volume, outside_mask
from .executors import make_executor
from .manifest import ModelManifest, load_weights
from .model_quality import low_dice_warning
from .network import UNetPlusPlus3D
from .normalize import padding_values
from .oriented_box import clear_outside_box
from .point_box import box_limits, component_box, segment_point, touched_faces
from .point_crop import smallest_extent
from .postprocess import (
    keep_component_at_point,
    keep_largest_component,
    remove_small_components,
    small_lesion_warning,
)
from .prepare import prepare_input
from .prompt_anatomy import check_anatomy, check_point_result
from .prompt_boxes import check_roi_holds_voxels, empty_result_warning, prompt_boxes
from .roi_edge import roi_edge_warning
from .sanity import check_model_input
from .tile_run import CancelCallback, Depth, ProgressCallback
from .tiling import thin_input_warning
from .tta import head_count, mirror_axes, split_heads
from .volume import (
    Box,
    Grid,
    LabelVolume,
    SegmentationResult,
    Volume,
    box_to_index_slices,
    crop_to_box,
    crop_to_slices,
    resample_to_reference,
)
from .volume_plausibility import check_volumes
from .weights_fit import check_weights_fit

#: A click keeps the component it lies in, or the nearest one within this distance (mm).
POINT_TOLERANCE_MM = 3.0
_LOG = logging.getLogger(__name__)


def parse_depth(depth: Depth, manifest: ModelManifest) -> Depth:
    """Turn a user's depth ("auto", "ensemble", 1..4, "L3") into 1..4 or "ensemble"."""
    text = str(depth).strip().lower()
    if text == "auto":
        return int(manifest.recommended_depth)
    if text == "ensemble":
        return "ensemble"
    text = text[1:] if text.startswith("l") else text
    if text.isdigit() and int(text) in manifest.depths:
        return int(text)
    choices = ", ".join([str(d) for d in manifest.depths] + ["ensemble", "auto"])
    raise UNetPlusPlusError(f"Depth {depth!r} is not available for this model; choose {choices}.")


class Predictor:
    """A loaded model package, ready to segment volumes on one device.

    ``executor`` picks how tiles run (``engine/executors.py``): "auto" (the measured default,
    or ``$UNETPP_EXECUTOR``), "ours", "torch", "onnxruntime" or "openvino". Raises
    UNetPlusPlusError for an unknown device or executor, or weights that do not fit.
    """

    def __init__(
        self,
        manifest: ModelManifest,
        device: str = "auto",
        threads: Optional[int] = None,
        executor: str = "auto",
    ) -> None:
        self.manifest = manifest
        self.device = resolve_device(device)
        threads_used = 1
        if self.device.type == "cpu":
            threads_used = configure_threads(threads)
            for message in (runtime_env.knob_warning(), runtime_env.busy_wait_warning()):
                if message:
                    _LOG.warning(message)
        self.model = UNetPlusPlus3D.from_config(manifest.network)
        state = load_weights(manifest)
        check_weights_fit(manifest, state, self.model)  # names tensors; refuses NaN weights
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise UNetPlusPlusError(
                f"The weights in {manifest.weights_path} do not fit the network described in "
                f"{manifest.path}: {str(error).splitlines()[0]}"
            ) from error
        self.model.eval().to(self.device)
        self.executor = make_executor(
            executor, self.model, self.device, threads_used, weights_sha256=manifest.sha256
        )
        self._workspace = None  # cpu_inference.Workspace kept between calls (_sliding_window)
        self._workspace_lock = threading.Lock()

    def idle_probe(self, stop: Callable[[], bool]) -> int:
        """Idle time for the executor's probe (``FastestExecutor.idle_probe``; ``unetpp serve``
        between requests), on this Predictor's kept workspace; returns the tiles run (0 for an
        executor without a probe, or while a segmentation runs)."""
        probe = getattr(self.executor, "idle_probe", None)
        if probe is None or not self._workspace_lock.acquire(blocking=False):
            return 0
        try:
            with torch.inference_mode(), self.model.reuse_buffers(self._workspace) as workspace:
                self._workspace = workspace
                return probe(stop)
        finally:
            self._workspace_lock.release()

    @classmethod
    def from_task(cls, task: str, **kwargs) -> Predictor:
        """Load the built-in or installed model for a task ("liver", "brain-tumor", ...)."""
        from .registry import find_model

        return cls(find_model(task), **kwargs)

    @classmethod
    def from_manifest_path(cls, path: Union[str, Path], **kwargs) -> Predictor:
        return cls(ModelManifest.load(path), **kwargs)

    # ------------------------------------------------------------------ inference
    def segment(
        self,
        volume: Volume,
        depth: Depth = "auto",
        roi: Optional[Box] = None,
        point: Optional[Sequence[float]] = None,
        overlap: Optional[float] = None,
        tile_batch: Optional[int] = None,
        largest_component: Optional[bool] = None,
        return_probabilities: bool = False,
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelCallback] = None,
        tta: bool = False,
        disagreement: bool = False,
        full_grid: Optional[Grid] = None,
        channel_norms: Optional[list] = None,
        crop_output: bool = False,
        input_warnings: Optional[list[str]] = None,
        crop_nonzero: Optional[bool] = None,
        crop_body: Optional[bool] = None,
        channel_check: bool = True,
        point_box: Optional[tuple] = None,
        memo: Optional[dict] = None,
        warn: Optional[Callable[[str], None]] = None,
        image_ct: Optional[Volume] = None,
    ) -> SegmentationResult:
        """Segment `volume`; the result sits exactly on the volume's grid.

        ``tile_batch``: tiles per forward pass; None picks one (``tile_run.auto_tile_batch``:
        2 on the CPU for tiles up to 64^3 voxels, the same labels, faster). ``tta`` averages
        mirrored passes (engine/tta.py); ``disagreement`` adds the heads'
        disagreement map and ``info["agreement"]`` per segment (engine/disagreement.py) and
        raises UNetPlusPlusError at depth 1 (one head). With ``full_grid``, ``volume`` is only the
        part of a larger image that :meth:`context_box` asked for (``region_read.read_region``),
        the result sits on ``full_grid`` and ``channel_norms`` carries the whole image's MR
        statistics, and ``image_ct`` the whole image's CT for the anatomy check
        (``prompt_anatomy.check_anatomy``; without it the part is judged as the image).

        With a ``point``, everything after the network (argmax, the component at the click)
        runs inside the point's crop only; ``crop_output`` then returns labels with the smallest
        extent that holds them, on the input's voxels (``point_crop.py``). When the component at
        the click reaches a face of that crop inside the image, the crop moves onto it (or grows)
        and the network runs again (at most twice more; ``point_box.py``, ``info["point_box"]``);
        a result still at a face gets one warning that the nodule may extend beyond the box.
        ``point_box`` (internal): the (z, y, x) slices one such pass infers on. ``input_warnings``:
        the warnings of input sanity already run on this whole image (the warm cache, or
        ``streamed_checks.check_files`` for a region read); the checks are then not rerun on
        ``volume``, which may be only a part. Without it input sanity sees ``volume``.
        ``crop_nonzero``: without ROI or point, an all-MR model infers only around the
        non-zero voxels (``nonzero_crop.py``); None follows the manifest (default on).
        ``crop_body``: likewise, an all-CT model infers only on the body's box, background
        outside (``body_crop.py``, ``info["body_crop"]``: the model grid's shape, or None).
        ``channel_check=False`` skips the sequence-order check (``channel_order.py``).
        ``memo``: a dict kept by the caller for this very ``volume``, unchanged between calls
        (``warm_cache.WarmCache.memo``): the prepared network input is reused from it when the
        next call asks for the same region (``prepare.py``; the labels are the same), and the
        anatomy check's lung and body masks (``anatomy_check.lung_and_body_once``).
        ``warn(message)``: called with every warning known before the tiles run (the input's,
        a thin input), before the first tile (``early_warnings.py``); all of them are in
        ``info["warnings"]`` too."""
        call = dict(locals())  # the arguments, for a point's passes (point_box.segment_point)
        started = time.perf_counter()
        depth = parse_depth(depth, self.manifest)
        if point is not None and point_box is None:  # then where its segment lies
            return check_point_result(self.manifest, segment_point(self, call), volume, memo)
        report = progress or (lambda stage, done, total: None)
        if disagreement and head_count(depth) < 2:
            raise UNetPlusPlusError(
                "The disagreement map compares the deep-supervision heads, and depth 1 has only "
                "one: choose depth 2, 3, 4 or ensemble."
            )
        warnings = self.check_input(volume, input_warnings, channel_check, memo)
        quality = low_dice_warning(self.manifest, depth)  # a barely trained model (model_quality)
        warnings += [quality] if quality and quality not in warnings else []
        if full_grid is not None and (point is not None or disagreement):
            raise ValueError("full_grid (a partial volume) supports ROI runs only")
        grid_out = full_grid if full_grid is not None else volume.grid
        region, slices, output_slices = self._region_of_interest(
            volume, roi, point, full_grid, point_box
        )

        report("preprocess", 0, 1)
        prepared = prepare_input(
            self.manifest,
            volume,
            region,
            slices,
            full_grid,
            crop_nonzero,
            channel_norms,
            memo,
            crop_body,
            overlap,
        )
        slices, grid, image = prepared.slices, prepared.grid, prepared.image
        region_grid, channel_norms = prepared.region_grid, prepared.channel_norms
        report("preprocess", 1, 1)

        info: dict = {"depth": depth, "fallbacks": [], "warnings": warnings}
        info["nonzero_crop"] = list(grid.shape_zyx) if prepared.nonzero_crop else None
        info["body_crop"] = list(grid.shape_zyx) if prepared.body_crop else None
        axes = mirror_axes(self.manifest.test_time_augmentation) if tta else ()
        info["tta"] = {"mirror_axes": list(axes), "passes": 2 ** len(axes)} if tta else None
        pad = prepared.pad if prepared.pad is not None else padding_values(channel_norms)
        options = {"axes": axes, "heads": disagreement, "pad": pad}
        tile_mm = min(t * d for t, d in zip(self.manifest.tile_size_zyx[::-1], grid.spacing))
        thin = thin_input_warning(
            region_grid.size_xyz, region_grid.spacing, tile_mm, region_grid.direction
        )
        if point is None and thin:  # a click's box is the model's own choice
            info["warnings"].append(thin)
        for message in info["warnings"] if warn is not None else ():  # before the first tile
            warn(message)
        probabilities = self._infer(
            image, depth, overlap, tile_batch, report, cancel, info, options
        )
        disagreement_region = None
        if disagreement:
            probabilities, disagreement_region = self._review_aid(probabilities, depth, info)
            disagreement_region = resample_to_reference(
                disagreement_region[None], grid, region_grid, interpolator="linear"
            )

        report("postprocess", 0, 1)
        spin_guard.before_parallel_work()  # its resampling and argmax run on OpenMP threads too
        region_probs = None
        if return_probabilities:
            region_probs = resample_to_reference(probabilities, grid, region_grid, "linear")
        classes = self.manifest.num_classes
        region_labels = result_grid.region_labels(
            probabilities, grid, region_grid, region_probs, classes
        )
        del probabilities
        keep_largest = self._postprocess_option("largest_component", largest_component)
        labels_grid = grid_out
        if point is not None:  # the crop holds every label: post-process only there (exact)
            at_roi = []
            if keep_largest:
                region_labels = self._component_at_point(region_labels, volume, point, info, slices)
            # every component otherwise: a cut one is warned about too (point_box.BOX_EDGE_WARNING)
            touched = touched_faces(region_labels, slices, box_limits(grid_out, roi))
            if roi is not None:  # faces on the ROI's edge, inside the image
                at_image = touched_faces(region_labels, slices, box_limits(grid_out))
                at_roi = [face for face in at_image if face not in touched]
            info["point_box"] = {
                "touched": touched,
                "at_roi": at_roi,
                "box": [[part.start, part.stop] for part in slices],
                "component": component_box(region_labels, slices),
            }
            keep_largest = False
        if point is not None and crop_output:
            labels, labels_grid = smallest_extent(region_labels, slices, grid_out)
        else:
            labels = result_grid.assemble_labels(grid_out, region_labels, slices)
        if output_slices is not None:  # restricted to the ROI, without full-grid masks
            restricted = np.zeros_like(labels)
            restricted[output_slices] = labels[output_slices]
            labels = restricted
            if roi is not None and point is None and labels_grid is grid_out:  # oblique grids
                clear_outside_box(labels, grid_out, roi)  # the box, not its index bounding box
        if keep_largest:  # the manifest's values (no pass to find them); in place, no copy
            values = [label.value for label in self.manifest.labels]
            labels = keep_largest_component(labels, values, copy=False)
        fraction = (self.manifest.postprocess or {}).get("min_component_fraction")
        if fraction and point is None and largest_component is not False:  # off: --all-components
            labels = remove_small_components(labels, fraction, copy=False)[0]
        if point is None and not labels.any():  # a point says so in _component_at_point
            info["warnings"].append(empty_result_warning(self.manifest, roi))
        elif point is None:  # where it lies, cut by the image's edge (a click's: segment_point)
            found, info["anatomy"] = check_anatomy(
                self.manifest, volume, labels, grid_out, roi, memo, image_ct
            )
            info["warnings"] += found
            if roi is not None and labels_grid is grid_out:  # a box that cuts the structure
                edge = roi_edge_warning(labels, grid_out, roi)
                info["warnings"] += [edge] if edge else []
        info["warnings"] += check_volumes(
            self.manifest, labels, labels_grid.spacing, point is not None
        )
        label_volume = LabelVolume(
            array=labels,
            spacing=tuple(labels_grid.spacing),
            origin=tuple(labels_grid.origin),
            direction=np.array(labels_grid.direction, dtype=np.float64),
            labels=list(self.manifest.labels),
        )
        prob_volume = None
        needs_mask = return_probabilities or disagreement_region is not None
        outside_roi = outside_mask(labels.shape, output_slices) if needs_mask else None
        if return_probabilities:
            names = [label.name for label in self.manifest.labels]
            prob_volume = result_grid.full_probabilities(grid_out, region_probs, slices, names)
            if outside_roi is not None:
                prob_volume.array[:, outside_roi] = 0.0
                prob_volume.array[0, outside_roi] = 1.0
        disagreement_out = None
        if disagreement_region is not None:
            disagreement_out = disagreement_volume(
                volume, disagreement_region[0], slices, outside_roi
            )
        report("postprocess", 1, 1)
        info["seconds"] = time.perf_counter() - started
        info["model"] = self.manifest.name
        return SegmentationResult(label_volume, prob_volume, info, disagreement_out)

    # ------------------------------------------------------------------ steps
    def _review_aid(self, stacked: np.ndarray, depth, info: dict):
        """Split the heads' probabilities: the final prediction, the disagreement map on the
        model grid, and ``info["agreement"]`` (engine/disagreement.py)."""
        from .disagreement import disagreement_map, segment_agreement

        final, heads = split_heads(stacked, self.manifest.num_classes, depth)
        info["heads"] = int(heads.shape[0])
        info["agreement"] = segment_agreement(heads, self.manifest.labels)
        return final, disagreement_map(heads)

    def check_input(
        self,
        volume: Volume,
        input_warnings: Optional[list] = None,
        channel_check: bool = True,
        memo: Optional[dict] = None,
    ) -> list[str]:
        """Input sanity (engine/sanity.py) for this model; returns warnings, raises refusals.

        ``input_warnings``: the whole image was already checked (streamed or cached); only the
        channel count is checked here and these warnings are returned. ``memo``: as in
        :meth:`segment`."""
        return check_model_input(self.manifest, volume, input_warnings, channel_check, memo)

    def _component_at_point(
        self,
        labels: np.ndarray,
        volume: Volume,
        point: Sequence[float],
        info: dict,
        slices: Optional[tuple] = None,
    ) -> np.ndarray:
        """Keep the component at the click (never a neighbour); say so when none is there.
        ``labels`` covers ``slices`` of the volume's grid (default: all of it)."""
        index_zyx = volume.grid.physical_to_index(np.asarray(point, dtype=np.float64))[::-1]
        if slices is not None:
            index_zyx = index_zyx - np.array([s.start for s in slices], dtype=np.float64)
        kept, distance = keep_component_at_point(
            labels, index_zyx, tuple(volume.spacing)[::-1], POINT_TOLERANCE_MM
        )
        if distance is None:
            what = ", ".join(label.name for label in self.manifest.labels)
            info["warnings"].append(
                f"Nothing ({what}) was found at the clicked point (within "
                f"{POINT_TOLERANCE_MM:g} mm); the result is empty. Click on the lesion itself."
            )
        smallest = (self.manifest.postprocess or {}).get("min_lesion_mm3")
        small = smallest and small_lesion_warning(
            kept, tuple(volume.spacing)[::-1], float(smallest), self.manifest.labels[0].name
        )
        if small:
            info["warnings"].append(small)
        return kept

    def context_box(
        self, roi: Optional[Box] = None, point: Optional[Sequence[float]] = None
    ) -> Optional[Box]:
        """The physical (LPS mm) box that segment() reads for this ROI or point, context
        included; None when it needs the whole volume. Reading only this box from the file
        (``region_read.read_region``) bounds memory by the ROI, not by the image."""
        return prompt_boxes(self.manifest, roi, point)[0]

    def _region_of_interest(
        self,
        volume: Volume,
        roi: Optional[Box],
        point: Optional[Sequence[float]],
        full_grid: Optional[Grid] = None,
        point_box: Optional[tuple] = None,
    ) -> tuple[Volume, Optional[tuple], Optional[tuple]]:
        """The region to infer on, its slices and the slices the output is restricted to,
        both on ``full_grid`` (default: the volume's own grid); ``point_box``: a point's
        slices of the volume's grid, instead of its prompt box."""
        crop_box, output_box = prompt_boxes(self.manifest, roi, point)
        if crop_box is None:
            if full_grid is not None:
                raise ValueError("a partial volume (full_grid) needs a ROI or a point")
            return volume, None, None
        grid = volume.grid if full_grid is None else full_grid
        if roi is not None and point_box is None:
            check_roi_holds_voxels(grid, roi)
        if point_box is not None:
            region, slices = crop_to_slices(volume, point_box), tuple(point_box)
        else:
            region, slices = crop_to_box(volume, crop_box)
        if full_grid is not None:  # the volume is itself a crop of full_grid
            offset = np.rint(full_grid.physical_to_index(volume.origin)).astype(int)[::-1]
            slices = tuple(slice(s.start + o, s.stop + o) for s, o in zip(slices, offset))
        output_slices = None if output_box is None else box_to_index_slices(grid, output_box)
        return region, slices, output_slices

    def _infer(
        self,
        image: torch.Tensor,
        depth: Depth,
        overlap: Optional[float],
        tile_batch: Optional[int],
        report: ProgressCallback,
        cancel: Optional[CancelCallback],
        info: dict,
        options: Optional[dict] = None,
    ) -> np.ndarray:
        """Sliding-window inference with the CUDA out-of-memory fallback chain
        (:func:`.tile_run.infer`)."""
        return tile_run.infer(
            self, image, depth, overlap, tile_batch, report, cancel, info, options
        )

    def _sliding_window(
        self, image, depth, overlap, batch, device, report, cancel, axes=(), heads=False, pad=None
    ) -> np.ndarray:
        """(K, z, y, x) probabilities, or (H * K, z, y, x) for the heads
        (:func:`.tile_run.sliding_window`)."""
        return tile_run.sliding_window(
            self, image, depth, overlap, batch, device, report, cancel, axes, heads, pad
        )

    def _postprocess_option(self, key: str, override: Optional[bool]) -> bool:
        if override is not None:
            return bool(override)
        return bool((self.manifest.postprocess or {}).get(key, False))
