"""The Slicer module's logic without Qt: segment MRML volumes, start background jobs, export cases.

:class:`SegmentationLogic` turns volume nodes (one per model channel), an optional markups ROI
and an optional clicked point into an engine run, and writes the result into a
``vtkMRMLSegmentationNode`` (see :mod:`.segmentation_writer`). Two ways to run:

- :meth:`SegmentationLogic.segment` blocks and runs the engine in this process; for scripts and
  tests. ``progress(stage, done, total)`` and ``cancel() -> bool`` are forwarded to the engine.
- :meth:`SegmentationLogic.start_job` returns a running :class:`~.job.SegmentationJob` (the CLI in
  a child process: by default one engine process kept alive between runs, ``unetpp serve``);
  the Widget polls it, so Slicer never freezes.

Either way the scene changes only after a successful run, and the engine's input sanity checks
(``engine/sanity.py``; an image that is a speck at the model's scale, ``engine/scale_check.py``;
an ROI off the image; the loaded NIfTI file's header: ``input_checks.py``; the nodes matched to
the model's channels and the checks cached on them: ``channel_inputs.py``) run first:
refusals raise :class:`UNetPlusPlusError` before anything starts; borderline findings are kept
in :attr:`SegmentationLogic.warnings` (and ``job.warnings``; ``job.run_warnings`` adds the
engine's) for the panel. :meth:`SegmentationLogic.export_training_case` hands a case to
:mod:`.training_export`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from ..engine.manifest import ModelManifest
from ..engine.volume import Box, LabelVolume
from ..errors import UNetPlusPlusError
from ..run_record import make_record
from .background_prepare import BackgroundPrepare
from .channel_inputs import (
    CheckedInputs,
    check_channel_inputs,
    input_images,
    input_key,
    input_volume,
)
from .device_list import DeviceQuery
from .engine_server import EngineServer
from .geometry import control_point_ras, ras_to_lps, roi_corners_ras
from .input_checks import check_click, check_point, check_roi
from .input_checks import point_name as name_of_point
from .job import SegmentationJob, python_executable
from .panel import is_prompted, merge_warnings
from .roi import clear_outside_roi, oriented_box
from .run_tags import tag_run
from .segmentation_binding import changed_during_run, other_volume_binding, volume_grid
from .segmentation_writer import next_numbered_name, write_segments
from .training_export import export_training_case, start_training_export
from .voxel_version import voxels_version

ModelRef = Union[str, os.PathLike, ModelManifest]


class SegmentationLogic:
    """Segment MRML volumes with a UNet++ model package (see the module docstring)."""

    def __init__(self, python: Optional[str] = None, persistent: bool = True) -> None:
        self.python = python  # interpreter for background jobs; None: PythonSlicer or this one
        # start_job's default: every run goes to one engine process kept alive between runs
        # (`unetpp serve`); False starts a new process per run, as the CLI does
        self.persistent = persistent
        self._predictors: dict = {}
        self.warnings: list[str] = []  # input warnings of the last segment/start_job call
        self._jobs: list[SegmentationJob] = []  # started background jobs, for shutdown()
        self._device_query: Optional[DeviceQuery] = None
        self._server: Optional[EngineServer] = None  # the persistent engine process
        self._prepare: Optional[BackgroundPrepare] = None  # models prepared in the background
        self._builtins_requested = False  # the shipped models were checked (prepare_builtins)
        self._checked = CheckedInputs()  # the last inputs' sanity warnings (issue 14)
        # False skips the sequence-order check of multi-channel MR models (engine/
        # channel_order.py), for a researcher sure of an order the check doubts; also sent to
        # the engine process as --no-channel-check
        self.channel_check = True

    # ------------------------------------------------------------------ models
    @staticmethod
    def available_models() -> list[ModelManifest]:
        """Every installed model package (built-in, user cache, ``UNETPP_MODELS``)."""
        from ..engine.registry import list_models

        return list_models()

    @staticmethod
    def resolve_model(model: ModelRef) -> ModelManifest:
        """A manifest, a path to ``model.json`` (or its folder), or a task/model name."""
        if isinstance(model, ModelManifest):
            return model
        path = Path(model)
        if path.suffix == ".json" or path.is_dir():
            return ModelManifest.load(path)
        from ..engine.registry import find_model

        return find_model(str(model))

    def device_list(self) -> Optional[list[dict]]:
        """The engine's devices (``[{"id", "name", "memory"}]``), asked of the engine's process
        in the background on the first call (torch is never imported here); None until it has
        answered. Poll it from a timer; ``device_error()`` says why only the CPU is listed."""
        if self._device_query is None:
            self._device_query = DeviceQuery(self.python or python_executable())
        return self._device_query.poll()

    def device_error(self) -> Optional[str]:
        return None if self._device_query is None else self._device_query.error

    def _predictor(self, manifest: ModelManifest, device: str):
        from ..engine.predictor import Predictor

        key = (str(manifest.path), manifest.sha256, device)
        if key not in self._predictors:
            self._predictors.clear()  # keep one model in memory
            self._predictors[key] = Predictor(manifest, device=device)
        return self._predictors[key]

    # ------------------------------------------------------------------ running
    def segment(
        self,
        volume_nodes: Sequence,
        model: ModelRef,
        depth: Union[int, str] = "auto",
        device: str = "auto",
        roi_node=None,
        point_ras: Optional[Sequence[float]] = None,
        output_node=None,
        replace_existing: bool = False,
        progress: Optional[Callable[[str, int, int], None]] = None,
        cancel: Optional[Callable[[], bool]] = None,
        tta: bool = False,
        point_name: Optional[str] = None,
    ):
        """Segment in this process (blocking); returns the segmentation node written to.

        Raises ``UNetPlusPlusError`` (``CancelledError`` when ``cancel()`` returned true) and
        then leaves the scene exactly as it was. :attr:`warnings` holds every warning of the
        run, each once (the input checks', the engine's), also those known before such an
        error. A click off the image or in the air outside the body is refused naming it by
        ``point_name`` (e.g. :func:`.input_checks.point_name`; default "The clicked point")
        and its RAS coordinates.
        """
        from ..engine.orientation_check import check_orientation

        manifest = self.resolve_model(model)
        self.warnings = []
        volume = input_volume(volume_nodes, manifest)
        # the Slicer side's input checks (cached, with the NIfTI file's header), then the CT's
        # front-back orientation: the engine's input checks, which it need not run again
        checked = self._checked.warnings(volume_nodes, manifest, self.channel_check)
        self.warnings = merge_warnings(checked, check_orientation(manifest, volume))
        roi = box = None
        if roi_node is not None:
            check_roi(roi_node, volume.grid)  # in RAS, naming the node: not the engine's LPS
            low, high = roi_corners_ras(roi_node)
            roi = Box(tuple(ras_to_lps(low)), tuple(ras_to_lps(high)))
            box = oriented_box(roi_node)  # rotated: the engine's box holds more than the ROI
        point = None
        if point_ras is not None:
            point = tuple(float(v) for v in ras_to_lps(point_ras))
            check_click(manifest, volume, point, point_ras, point_name)
        said = self.warnings

        def warn(message: str) -> None:  # the engine's warnings, before its first tile
            if message not in said:
                said.append(message)

        result = self._predictor(manifest, device).segment(
            volume,
            depth=depth,
            roi=roi,
            point=point,
            progress=progress,
            cancel=cancel,
            tta=tta,
            channel_check=self.channel_check,
            input_warnings=list(self.warnings),
            warn=warn,
        )
        self.warnings = merge_warnings(said, result.info.get("warnings", []))
        clear_outside_roi(result.labels, box, roi_node and roi_node.GetName(), self.warnings)
        run = make_record(manifest, result.info["depth"], self.warnings, result.info.get("anatomy"))
        return self.write_result(
            result.labels, volume_nodes, manifest, output_node, replace_existing, self.warnings,
            run=run,
        )  # fmt: skip

    def start_job(
        self,
        volume_nodes: Sequence,
        model: ModelRef,
        depth: Union[int, str] = "auto",
        device: str = "auto",
        roi_node=None,
        point_ras: Optional[Sequence[float]] = None,
        output_node=None,
        replace_existing: bool = False,
        tta: bool = False,
        persistent: Optional[bool] = None,
        point_name: Optional[str] = None,
    ) -> SegmentationJob:
        """Start a background run of the CLI; poll the returned job until it is finished.

        When it succeeds, ``job.output`` is the segmentation node written to and
        ``job.result["segment_ids"]`` the IDs of the segments written; until then the scene is
        untouched. Input problems raise ``UNetPlusPlusError`` here, before any start: among
        them an ROI or a click (``point_ras``: world RAS, mm) off the image.
        ``persistent`` (default: :attr:`persistent`, True) sends the run, whole volume, ROI or
        click alike, to one engine process kept alive between runs (``unetpp serve``: Python,
        torch and the last model stay loaded), started at the first run and again after a crash
        or a cancel it did not honour in time; False starts a process for this run only.
        ``point_name``: how a refused click is named, as in :meth:`segment`.
        """
        manifest = self.resolve_model(model)
        persistent = self.persistent if persistent is None else persistent
        self.warnings = []  # not the last call's, should the checks refuse
        self.warnings = self._checked.warnings(volume_nodes, manifest, self.channel_check)
        images = input_images(volume_nodes, manifest)  # written in their own types
        if roi_node is not None:  # off the image: now, not from the engine's process
            check_roi(roi_node, images.grid)
        if point_ras is not None:  # likewise a click off the image, named as segment() does
            check_point(images.grid, point_ras, point_name)
        roi_ras = roi_corners_ras(roi_node) if roi_node is not None else None
        box = oriented_box(roi_node) if roi_node is not None else None  # as it is now
        roi_name = roi_node.GetName() if roi_node is not None else ""
        nodes = list(volume_nodes)
        grids = [volume_grid(node) for node in nodes]  # moved, cropped or edited by the end:
        versions = [voxels_version(node) for node in nodes]  # refused
        channels = tuple(channel.name for channel in manifest.channels)
        server = self._engine_server() if persistent else None
        checked = list(self.warnings)  # the Slicer side's, recorded on the segments with the run's

        def write(labels: LabelVolume, result: dict):
            changed = changed_during_run(nodes, grids, versions)
            if changed:
                raise UNetPlusPlusError(changed)
            known = isinstance(result, dict)
            warnings = result.setdefault("warnings", []) if known else None
            clear_outside_roi(labels, box, roi_name, warnings)  # a rotated ROI's box corners
            written = result.setdefault("segment_ids", []) if known else None
            run = None
            if known:  # the model's name and depth the engine ran, with every warning
                said = merge_warnings(checked, warnings)
                run = make_record(manifest, result.get("depth", depth), said, result.get("anatomy"))
            return self.write_result(
                labels, nodes, manifest, output_node, replace_existing, warnings, written, run
            )

        job = SegmentationJob(
            volume=images,
            manifest=manifest,
            depth=str(depth),
            device=device,
            point_ras=None if point_ras is None else [float(v) for v in point_ras],
            roi_ras=roi_ras,
            on_success=write,
            python=self.python,
            tta=bool(tta),
            channel_check=self.channel_check,
            point_name=point_name,
            server=server,
            input_token=server.input_token((input_key(nodes), channels)) if server else None,
        )
        job.warnings = list(self.warnings)
        self._jobs = [j for j in self._jobs if not j.finished]
        self._jobs.append(job)
        return job.start()

    def shutdown(self) -> None:
        """Cancel every running job, kill its process tree and remove its working folder; stop
        the persistent engine process and a device query still running.

        For module cleanup, scene close and application exit. Never blocks (nothing is joined
        or waited for) and is safe to call twice; a job it stopped reports ``cancelled`` at its
        next ``poll()`` and leaves the scene as it was.
        """
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.close()
        if self._device_query is not None:
            self._device_query.close()
        if self._server is not None:
            self._server.shutdown()
        if self._prepare is not None:
            self._prepare.shutdown()
            self._prepare = None
            self._builtins_requested = False  # a killed preparation is asked for again

    # ------------------------------------------------------------------ preparing
    def prepare_models(self, manifests: Sequence[ModelManifest]) -> list[str]:
        """Prepare those of ``manifests`` that are not prepared (the stamp of ``unetpp models
        prepare``) in a low-priority background process, one at a time (background_prepare.py);
        returns the names queued. Nothing without every dependency installed. Never blocks,
        never raises; :meth:`poll_preparation` from a timer moves the queue on."""
        from .install import dependencies_ready

        if not manifests or not dependencies_ready():
            return []
        if self._prepare is None:
            self._prepare = BackgroundPrepare(self.python)
        return self._prepare.request(manifests)

    def prepare_builtins(self) -> list[str]:
        """:meth:`prepare_models` of the shipped models, once (the module calls it when it is
        entered; again after :meth:`shutdown`); returns the names queued."""
        if self._builtins_requested:
            return []
        from ..engine.model_search import builtin_manifests

        queued = self.prepare_models(builtin_manifests())
        self._builtins_requested = True
        return queued

    def poll_preparation(self) -> list[str]:
        """The background preparation's output lines since the last call (never blocks)."""
        return [] if self._prepare is None else self._prepare.poll()

    @property
    def preparing(self) -> bool:
        """Whether a model is being prepared in the background, or waits to be."""
        return self._prepare is not None and self._prepare.busy

    def warm_up(self) -> bool:
        """Start the persistent engine process ahead of the first run (the module calls it
        when it is entered and when the dependencies were installed), so that its start-up
        (Python and the torch import, 2-3 s on two cores) is over by the time the user clicks
        Segment: the first run then costs what later ones do, plus reading its volume. Only
        with :attr:`persistent` and every dependency installed (it never installs anything);
        nothing when the process already runs. Returns whether a process was started. Never
        raises: a process that cannot start is the first run's error, as without warm-up."""
        from .install import dependencies_ready

        if not self.persistent or not dependencies_ready():
            return False
        try:
            return self._engine_server().warm_up()
        except OSError:
            return False

    def _engine_server(self) -> EngineServer:
        if self._server is None:
            self._server = EngineServer(self.python or python_executable())
        return self._server

    def check_inputs(self, volume_nodes: Sequence, model: ModelRef) -> list[str]:
        """Run the engine's input sanity checks on MRML volumes (one per model channel).

        Returns the warnings (borderline input, to show in the panel); raises
        ``UNetPlusPlusError`` with one actionable line for input that cannot be right.
        """
        manifest = self.resolve_model(model)
        return check_channel_inputs(volume_nodes, manifest, self.channel_check)

    def write_result(
        self,
        labels: LabelVolume,
        volume_nodes: Sequence,
        manifest: ModelManifest,
        output_node=None,
        replace_existing: bool = False,
        warnings: Optional[list] = None,
        written: Optional[list] = None,
        run: Optional[dict] = None,
    ):
        """Write engine labels into ``output_node`` (or a new node); see write_segments
        (``written`` receives the IDs of the segments written). ``run``: the run record
        (``run_record.make_record``) each segment written carries (``run_tags.py``).

        ``warnings`` receives one line per segment the user had edited and that was kept
        beside the new result instead of being replaced, and one when ``output_node`` belongs
        to another volume (another patient's, or another grid's): it is left untouched and the
        result goes into a new node (segmentation_binding); one when the result was
        resampled onto a grid the user chose for ``output_node`` in Segment Editor; and one
        when ``output_node`` was removed from the scene (during a background run): the result
        goes into a new node.

        A prompted (lung nodule) model adds numbered segments, "<label> 1", "<label> 2", ...:
        each click adds one nodule to the chosen output node.
        """
        reference = volume_nodes[0]
        if reference.GetScene() is None:
            raise UNetPlusPlusError(f"Volume '{reference.GetName()}' is no longer in the scene.")
        removed = None
        if output_node is not None and output_node.GetScene() is not reference.GetScene():
            # deleted (or its scene closed) while the run went on: segments written into it
            # would be in no scene, and the panel would report them written
            removed, output_node = output_node.GetName(), None
        into = output_node
        if into is not None and other_volume_binding(into, reference) is not None:
            into = None  # write_segments makes a new node (and says why): number from 1
        names = None
        if is_prompted(manifest):
            names = {
                spec.value: next_numbered_name(into, spec.name)
                if into is not None
                else f"{spec.name} 1"
                for spec in labels.labels
            }
        kept: list = []
        rebound: list = []
        regridded: list = []
        written = [] if written is None else written
        node = write_segments(
            labels,
            reference,
            segmentation_node=output_node,
            replace_existing=replace_existing,
            names=names,
            node_name=f"{reference.GetName()} {manifest.task}",
            # one small lesion per click: keep its box, not a labelmap as large as the CT
            crop_to_content=is_prompted(manifest),
            kept=kept,
            rebound=rebound,
            written=written,
            regridded=regridded,
        )
        if run is not None:  # saved with the scene and in a .seg.nrrd Slicer writes
            tag_run(node, written, run)
        if warnings is not None and removed is not None:
            warnings.append(
                f"Output segmentation '{removed}' was removed from the scene during the run; "
                f"the result was written to a new segmentation, '{node.GetName()}'."
            )
        if warnings is not None:
            warnings += [
                f"Output segmentation '{name}' was not changed: {reason}, and this result is "
                f"for volume '{reference.GetName()}'; it was written to a new segmentation, "
                f"'{node.GetName()}'."
                for name, reason in rebound
            ]
            warnings += [
                f"Segment '{name}' had been edited since UNet++ wrote it; your version is kept "
                f"as '{new_name}' beside the new '{name}'."
                for name, new_name in kept
            ]
            warnings += [
                f"The result was resampled onto the grid chosen for segmentation '{name}' "
                f"({' x '.join(f'{v:g}' for v in spacing)} mm voxels, not the volume's)."
                for name, spacing in regridded
            ]
        return node

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def point_from_markups(markups_node, index: int = -1) -> np.ndarray:
        """RAS position of a control point (default: the last one placed)."""
        count = markups_node.GetNumberOfControlPoints()
        return control_point_ras(markups_node, index % count if count else 0)

    @staticmethod
    def point_name(markups_node, index: int = -1) -> str:
        """How messages name that control point, e.g. "Point 'F-2' (2 of 3)": ``segment``'s
        ``point_name`` (see :func:`.input_checks.point_name`)."""
        count = markups_node.GetNumberOfControlPoints()
        return name_of_point(markups_node, index % count if count else 0)

    # ------------------------------------------------------------------ training export
    @staticmethod
    def export_training_case(
        volume_nodes: Sequence,
        segmentation_node,
        out_dir: Union[str, os.PathLike],
        case_name: str,
        channel_names: Sequence[str] = (),
        overwrite: bool = False,
    ) -> list[Path]:
        """Write one case in the layout ``unetpp train`` reads; returns the files written (a
        ``WrittenCase``). See :func:`.training_export.export_training_case` (the files, a case
        already in the folder, and the refusals raised as ``UNetPlusPlusError`` before anything
        is written)."""
        return export_training_case(
            volume_nodes, segmentation_node, out_dir, case_name, channel_names, overwrite
        )

    @staticmethod
    def start_training_export(
        volume_nodes: Sequence,
        segmentation_node,
        out_dir: Union[str, os.PathLike],
        case_name: str,
        channel_names: Sequence[str] = (),
        overwrite: bool = False,
    ):
        """:meth:`export_training_case` with its files written in a thread (Slicer stays
        responsive): returns the running ``ExportJob``; poll ``finished``, then ``result()``.
        Refusals are raised here. See :func:`.training_export.start_training_export`."""
        return start_training_export(
            volume_nodes, segmentation_node, out_dir, case_name, channel_names, overwrite
        )
