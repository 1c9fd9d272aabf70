"""Background segmentation: the engine's CLI in a child process, polled without blocking.

Slicer must never freeze and a CUDA crash must not take it down, so the Widget runs

    <python> -m UNetPlusPlusLib.cli segment IN.nrrd... --model model.json --depth D
        --device DEV --labelmap OUT.nrrd --progress-json --cancel-file JOB/cancel
        [--point X Y Z | --roi ...]

and reads its JSON lines (``{"stage": s, "done": d, "total": t}``, ``{"warning": msg}`` as soon as
a warning is known, which the Widget's log shows at once, then ``{"result": {...}}`` or
``{"error": msg}``). The inputs are written to the job's working folder as uncompressed NRRD in
the volumes' own voxel types (an int16 CT stays int16; the engine process casts), with their
exact geometry, so the child segments the same voxels the user sees; with the persistent engine
(``server``) only when it does not hold that volume already (``input_token``,
:mod:`.engine_server`). The child's ``<python>`` is
PythonSlicer inside Slicer (a launcher that starts the real interpreter as its child) and the
current interpreter elsewhere.

There is no Qt here and nothing blocks: :meth:`SegmentationJob.poll` returns the events that
arrived since the last call; the Widget calls it from a ``qt.QTimer``, scripts call
:meth:`SegmentationJob.wait`. :meth:`~SegmentationJob.cancel` creates the cancel file (the CLI
stops between tiles, exit status 3) and, if the process tree is still alive ``kill_grace``
seconds later, kills the whole tree (:mod:`.process`). :meth:`~SegmentationJob.close` kills the
tree at once and removes the working folder (patient images); it runs when a job ends in any
way, and on module cleanup and scene close through ``SegmentationLogic.shutdown``. The result
reaches the scene only through ``on_success``, which runs inside ``poll`` (on the caller's
thread) and only after the child succeeded: a cancelled or failed job leaves the scene as it was.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from ..cancel import CancelFile
from ..cli_points import CLICKED_POINT
from ..engine.channel_order import order_check_applies
from ..engine.image_read import read_labelmap
from ..engine.manifest import ModelManifest
from ..engine.point_crop import grid_offset
from ..engine.volume import LabelVolume, Volume
from ..errors import UNetPlusPlusError
from .engine_server import DIED, DONE, EngineServer
from .files import input_file_paths, remove_folder, write_inputs
from .geometry import NativeImages
from .job_events import (  # noqa: F401 (LOG, PROGRESS: the jobs' event kinds, from here too)
    ERROR_PREFIX,
    FINISHED,
    LOG,
    PROGRESS,
    ErrorsOnce,
    JobEvent,
    json_payload,
)
from .process import LineReader, drain, kill_tree, output_complete, package_root, spawn

__all__ = ["SegmentationJob", "JobEvent", "build_command", "python_executable", "package_root"]

# Job states.
PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
FINISHED_STATES = (SUCCEEDED, FAILED, CANCELLED)

LOG_TAIL_LINES = 200
CANCEL_FILE_NAME = "cancel"

# After the child exits, how long (s) its pipes may stay open (held by an orphaned grandchild)
# before the tree is killed and the job finishes without them.
PIPE_GRACE_S = 0.5


def python_executable() -> str:
    """PythonSlicer when running inside Slicer (its ``sys.executable`` may be the Slicer app
    itself), otherwise the current interpreter."""
    name = "PythonSlicer.exe" if sys.platform == "win32" else "PythonSlicer"
    found = shutil.which(name)
    if found:
        return found
    sibling = Path(sys.executable).with_name(name)
    return str(sibling) if sibling.is_file() else sys.executable


def build_command(
    python: str,
    input_paths: Sequence[Path],
    manifest_path: Path,
    labelmap_path: Path,
    depth: str = "auto",
    device: str = "auto",
    point_ras: Optional[Sequence[float]] = None,
    roi_ras: Optional[tuple[Sequence[float], Sequence[float]]] = None,
    tta: bool = False,
    cancel_path: Optional[Path] = None,
    channel_check: bool = True,
    point_name: Optional[str] = None,
) -> list[str]:
    """The CLI command line; the point and ROI corners are RAS millimetres, as the CLI takes.
    ``point_name`` names the point in messages (``--point-name``, e.g. "Point 'F-2' (2 of 3)";
    default "The clicked point"), with its position at 0.1 mm as the in-process run does."""
    command = [python, "-m", "UNetPlusPlusLib.cli", "segment", *map(str, input_paths)]
    command += ["--model", str(manifest_path), "--depth", str(depth), "--device", str(device)]
    command += ["--labelmap", str(labelmap_path), "--progress-json"]
    if cancel_path is not None:
        command += ["--cancel-file", str(cancel_path)]
    if point_ras is not None:
        command += ["--point", *(repr(float(v)) for v in point_ras)]
        # one argument: a name such as "-1" or "--help" is not an option
        command += [f"--point-name={point_name or CLICKED_POINT}"]
    if roi_ras is not None:
        command += ["--roi", *(repr(float(v)) for corner in roi_ras for v in corner)]
    if tta:
        command += ["--tta"]
    if not channel_check:  # the sequence-order check deliberately skipped (channel_order.py)
        command += ["--no-channel-check"]
    return command


@dataclass
class SegmentationJob(ErrorsOnce):
    """One run of the CLI on a ``Volume`` or ``NativeImages``; start() it, then poll() until
    ``finished``; close() whenever it is abandoned. Once finished (closed), ``volume`` and
    ``on_success`` are None: the job keeps no reference to the input's voxels or nodes."""

    volume: Optional[Union[Volume, NativeImages]]  # None once finished (close())
    manifest: ModelManifest
    depth: str = "auto"
    device: str = "auto"
    point_ras: Optional[Sequence[float]] = None
    roi_ras: Optional[tuple[Sequence[float], Sequence[float]]] = None
    on_success: Optional[Callable[[LabelVolume, dict], Any]] = None
    python: Optional[str] = None
    tta: bool = False  # test-time augmentation (engine/tta.py)
    kill_grace: float = 1.0  # s between the cancel file and killing the process tree
    server: Optional[EngineServer] = None  # a persistent engine process, instead of a new one
    # with a server: names the input volume (EngineServer.input_token); while the server holds
    # it, no input files are written
    input_token: Optional[str] = None
    channel_check: bool = True  # False: --no-channel-check (engine/channel_order.py)
    point_name: Optional[str] = None  # the point in messages: --point-name (input_checks.py)

    state: str = field(default=PENDING, init=False)
    error: Optional[str] = field(default=None, init=False)
    result: Optional[dict] = field(default=None, init=False)  # the CLI's {"result": ...}
    labels: Optional[LabelVolume] = field(default=None, init=False)
    output: Any = field(default=None, init=False)  # what on_success returned
    log: list[str] = field(default_factory=list, init=False)
    command: list[str] = field(default_factory=list, init=False)
    warnings: list[str] = field(default_factory=list, init=False)  # input sanity, before start
    inputs_written: bool = field(default=False, init=False)  # the input files were written

    def __post_init__(self) -> None:
        self._grid = getattr(self.volume, "grid", None)  # the input's grid, for the result's check
        self._process: Optional[subprocess.Popen] = None
        self._lines: queue.Queue = queue.Queue()
        self._readers: list[LineReader] = []
        self._workdir: Optional[Path] = None
        self._cancel_requested = False
        self._cancel_at: Optional[float] = None
        self._exited_at: Optional[float] = None
        self._last_error: Optional[str] = None
        self._final: list[JobEvent] = []  # a "finished" event owed to the next poll()
        self._server_end: Optional[str] = None  # engine_server.DONE or DIED, with a server
        self._said: list[str] = []  # warnings the engine said while running, in order

    # ---------------------------------------------------------------- control
    def start(self) -> SegmentationJob:
        """Write the inputs and launch the child process; returns without waiting for it."""
        if self.state != PENDING:
            raise RuntimeError("a SegmentationJob can be started once")
        if self.manifest.path is None:
            raise ValueError("the manifest must have been loaded from a model.json")
        self._workdir = Path(tempfile.mkdtemp(prefix="unetpp-job-"))
        try:
            if self.server is None:
                self._write_inputs()
            self.command = build_command(
                self.python or python_executable(),
                input_file_paths(self.volume.num_channels, self._workdir),
                Path(self.manifest.path),
                self._labelmap_path,
                self.depth,
                self.device,
                self.point_ras,
                self.roi_ras,
                self.tta,
                cancel_path=self._workdir / CANCEL_FILE_NAME,
                # the CLI refuses --no-channel-check for a model without the order check
                channel_check=self.channel_check or not order_check_applies(self.manifest),
                point_name=self.point_name,
            )
            if self.server is not None:  # the arguments of `segment`; inputs unless held
                self.server.submit(
                    self.command[4:], self._lines, self.input_token, self._write_inputs
                )
                self.command = [*self.server.command, "<", *self.command[3:]]  # for the log
                self.state = RUNNING
                return self
            self._process = spawn(self.command, cwd=self._workdir)
        except OSError as error:  # no such program, no permission, a full disk
            self.close()
            raise UNetPlusPlusError(
                f"Cannot start the segmentation engine ({self.python or python_executable()}): "
                f"{error}. Check that the extension is installed completely."
            ) from error
        except BaseException:
            self.close()
            raise
        self._readers = [
            LineReader(self._process.stdout, "stdout", self._lines),
            LineReader(self._process.stderr, "stderr", self._lines),
        ]
        self.state = RUNNING
        return self

    def cancel(self) -> None:
        """Ask the child to stop (the cancel file); the tree is killed if still alive
        ``kill_grace`` s later. Never blocks; the job ends as ``cancelled``, nothing written."""
        if self.finished or self._cancel_requested:
            return
        self._cancel_requested = True
        self._cancel_at = time.monotonic()
        if self._workdir is not None and self.state == RUNNING:
            CancelFile(self._workdir / CANCEL_FILE_NAME).request()

    def close(self) -> None:
        """Stop the process tree now and remove the working folder (the patient images).

        Safe to call at any time and more than once; never blocks. A job still running ends as
        ``cancelled`` (the next ``poll()`` reports it) and leaves the scene as it was.
        """
        if self.state in (PENDING, RUNNING):
            if self.server is not None and self.state == RUNNING:
                self.server.kill()  # stop the work now; the next request starts a new one
            self._cancel_requested = True
            self.state = CANCELLED
            self._final.append(
                JobEvent(FINISHED, message="Cancelled by the user.", state=CANCELLED)
            )
        kill_tree(self._process)
        remove_folder(self._workdir, self._process)
        self._workdir = None
        # what is no longer needed goes: the input (views of the volume nodes' voxels, which
        # kept a deleted or closed volume's memory alive) and ``on_success`` (which holds the
        # MRML nodes)
        self.volume = None
        self.on_success = None

    def release(self) -> None:
        """Drop the result a finished job still holds, once it is in the scene: ``labels`` (as
        large as the volume) and ``output`` (the segmentation node, alive after its scene is
        closed while referenced). ``result`` (the engine's figures and warnings) stays."""
        if self.finished:
            self.labels = None
            self.output = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def run_warnings(self) -> list[str]:
        """Every warning of this run so far, each once, in the order known: the Slicer side's
        input checks (``warnings``), those the engine said while running (also when it then
        failed or was cancelled), those of its result (and of kept edited segments)."""
        from .panel import merge_warnings

        result = self.result.get("warnings") if isinstance(self.result, dict) else None
        return merge_warnings(self.warnings, self._said, result or ())

    @property
    def workdir(self) -> Optional[Path]:
        """The job's working folder (inputs, labelmap, cancel file); None once removed."""
        return self._workdir

    @property
    def pid(self) -> Optional[int]:
        """Process id of the child (the launcher, in Slicer), the leader of its process group."""
        return None if self._process is None else self._process.pid

    def poll(self) -> list[JobEvent]:
        """Events since the last call; never blocks (no join, no wait). The last one is
        ``finished``."""
        if self.state != RUNNING:
            if self.state == PENDING and self._cancel_requested:
                self.close()
            events, self._final = self._final, []
            return events
        events = self._parse_all()
        if self.server is not None:
            return events + self._poll_server()
        now = time.monotonic()
        exited = self._process.poll() is not None
        if self._cancel_requested and not exited and now - self._cancel_at > self.kill_grace:
            kill_tree(self._process)  # the cooperative route failed or is too slow
        if not exited:
            return events
        if self._exited_at is None:
            self._exited_at = now
        if not output_complete(self._process, self._readers, self._exited_at, now, PIPE_GRACE_S):
            return events
        events += self._parse_all()
        return events + self._end()

    def _poll_server(self) -> list[JobEvent]:
        """The end of a request to the persistent engine: its reply, or the process's death."""
        late = time.monotonic() - (self._cancel_at or 0.0) > self.kill_grace
        if self._cancel_requested and self._server_end is None and late:
            self.server.kill()  # the request ignored the cancel file; the next one restarts it
        if self._server_end is None:
            return []
        return self._end()

    def wait(self, timeout: Optional[float] = None, interval: float = 0.05) -> list[JobEvent]:
        """Poll until the job finishes (blocking, for scripts and tests); all events."""
        deadline = None if timeout is None else time.monotonic() + timeout
        events: list[JobEvent] = []
        while not self.finished:
            events += self.poll()
            if self.finished:
                break
            if deadline is not None and time.monotonic() > deadline:
                self.close()
                events += self.poll()
                raise UNetPlusPlusError(f"Segmentation did not finish within {timeout:g} s.")
            time.sleep(interval)
        return events

    # ---------------------------------------------------------------- internals
    def _write_inputs(self) -> None:
        """Write the input files into the job's folder (removed with it by ``close``)."""
        assert self._workdir is not None
        write_inputs(self.volume, self._workdir)
        self.inputs_written = True

    @property
    def _labelmap_path(self) -> Path:
        assert self._workdir is not None
        return self._workdir / "labels.nrrd"

    def _parse_all(self) -> list[JobEvent]:
        events = []
        for name, line in drain(self._lines):
            if name == "server":
                self._server_end = line
                continue
            event = self._parse(name, line)
            if event is not None:
                events.append(event)
        return events

    def _parse(self, name: str, line: str) -> Optional[JobEvent]:
        payload = json_payload(name, line)
        if payload is None:
            if not line.strip():
                return None
            self._remember(line)
            if name == "stderr":  # an error for a terminal is held (job_events.ErrorsOnce)
                return self._stderr_event(line)
            return JobEvent(LOG, message=line)
        if "stage" in payload:
            stage = str(payload["stage"])
            if stage.startswith("fallback"):
                message = stage.split(":", 1)[-1].strip()
                self._said.append(message)
                self._remember(f"warning: {message}")
                return JobEvent(LOG, message=f"warning: {message}")
            return JobEvent(
                PROGRESS,
                stage=stage,
                done=int(payload.get("done", 0)),
                total=int(payload.get("total", 0)),
            )
        if "warning" in payload:  # said as soon as known: before the tiles for the input's
            self._said.append(str(payload["warning"]))
            message = f"warning: {payload['warning']}"
            self._remember(message)
            return JobEvent(LOG, message=message)
        if "error" in payload:
            self._last_error = str(payload["error"])
            return self._error_event(self._last_error)
        if "result" in payload:
            self.result = payload["result"]
            return JobEvent(LOG, message="finished: " + json.dumps(self.result))
        self._remember(line)
        return JobEvent(LOG, message=line)

    def _remember(self, line: str) -> None:
        self.log.append(line)
        del self.log[:-LOG_TAIL_LINES]

    def _end(self) -> list[JobEvent]:
        """The last events: the failure's error as a log event unless said already, then
        ``finished``."""
        final = self._finish()
        held = self._held_events()  # the stderr copy of an error said in the JSON: dropped
        said = self._error_event(final.message) if final.state == FAILED else None
        return held + ([final] if said is None else [said, final])

    def _finish(self) -> JobEvent:
        if self.server is not None:  # a reply stands for the exit status; no reply: a crash
            returncode = 0 if self._server_end == DONE and self.result is not None else 1
            if self._server_end == DIED and not self._last_error:
                self._last_error = (
                    "The engine process stopped unexpectedly (a crash, or out of memory); the "
                    "next run starts a new one. See the log for details."
                )
        else:
            returncode = self._process.returncode if self._process is not None else None
        try:
            if self._cancel_requested:
                self.state = CANCELLED
                return JobEvent(FINISHED, message="Cancelled by the user.", state=CANCELLED)
            if returncode != 0 or self.result is None:
                return self._fail(self._failure_message(returncode))
            try:
                labels = read_labelmap(self._labelmap_path, self.manifest.labels)
                # a click's labelmap is cropped to its content: it must lie on the input's voxels
                if grid_offset(labels.grid, self._grid) is None:
                    raise UNetPlusPlusError(
                        "The segmentation came back on a different voxel grid than its input; "
                        "please report this with the log."
                    )
                self.labels = labels
                if self.on_success is not None:
                    self.output = self.on_success(labels, self.result)
            except UNetPlusPlusError as error:
                return self._fail(str(error))
            except Exception as error:
                self._fail(f"internal error ({type(error).__name__}: {error})")
                raise
            self.state = SUCCEEDED
            return JobEvent(FINISHED, message="Segmentation finished.", state=SUCCEEDED)
        finally:
            self.close()  # the state is final here: close() only kills leftovers and cleans up

    def _fail(self, message: str) -> JobEvent:
        self.state = FAILED
        self.error = message
        return JobEvent(FINISHED, message=message, state=FAILED)

    def _failure_message(self, returncode: Optional[int]) -> str:
        if self._last_error:
            return self._last_error
        tail = " | ".join(self.log[-3:])
        if returncode is not None and returncode < 0:
            reason = f"it stopped unexpectedly (signal {-returncode})"
        else:
            reason = f"it exited with status {returncode}"
        detail = f": {tail}" if tail else ""
        return f"The segmentation process failed, {reason}{detail}. See the log for details."
