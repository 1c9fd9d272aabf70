"""Background segmentation: the engine's CLI in a child process, polled without blocking.

Slicer must never freeze and a CUDA crash must not take it down, so the Widget runs

    <python> -m UNetPlusPlusLib.cli segment IN.nrrd... --model model.json --depth D
        --device DEV --labelmap OUT.nrrd --progress-json [--point X Y Z | --roi ...]

and reads its JSON lines (``{"stage": s, "done": d, "total": t}``, then ``{"result": {...}}`` or
``{"error": msg}``). The inputs are written to temporary NRRD files with their exact geometry,
so the child segments the same voxels the user sees. The child's ``<python>`` is PythonSlicer
inside Slicer and the current interpreter elsewhere.

There is no Qt here: :meth:`SegmentationJob.poll` returns the events that arrived since the
last call and never blocks; the Widget calls it from a ``qt.QTimer``, scripts call
:meth:`SegmentationJob.wait`. The result reaches the scene only through ``on_success``, which
runs inside ``poll`` (so on the caller's thread) and only after the child succeeded: a cancelled
or failed job leaves the scene as it was.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..engine import runtime_env
from ..engine.manifest import ModelManifest
from ..engine.volume import LabelVolume, Volume, read_labelmap, volume_to_sitk
from ..errors import UNetPlusPlusError

# Job states.
PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
FINISHED_STATES = (SUCCEEDED, FAILED, CANCELLED)

# Event kinds returned by poll().
PROGRESS, LOG, FINISHED = "progress", "log", "finished"

LOG_TAIL_LINES = 200


@dataclass
class JobEvent:
    """One thing that happened: progress, a log line, or the end of the job (``finished``)."""

    kind: str
    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    state: str = ""  # the job's state, on "finished" events

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def python_executable() -> str:
    """PythonSlicer when running inside Slicer (its ``sys.executable`` may be the Slicer app
    itself), otherwise the current interpreter."""
    name = "PythonSlicer.exe" if sys.platform == "win32" else "PythonSlicer"
    found = shutil.which(name)
    if found:
        return found
    sibling = Path(sys.executable).with_name(name)
    return str(sibling) if sibling.is_file() else sys.executable


def package_root() -> Path:
    """The folder that holds the ``UNetPlusPlusLib`` package (put on the child's PYTHONPATH)."""
    return Path(__file__).resolve().parents[2]


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
) -> list[str]:
    """The CLI command line; the point and ROI corners are RAS millimetres, as the CLI takes."""
    command = [python, "-m", "UNetPlusPlusLib.cli", "segment", *map(str, input_paths)]
    command += ["--model", str(manifest_path), "--depth", str(depth), "--device", str(device)]
    command += ["--labelmap", str(labelmap_path), "--progress-json"]
    if point_ras is not None:
        command += ["--point", *(repr(float(v)) for v in point_ras)]
    if roi_ras is not None:
        command += ["--roi", *(repr(float(v)) for corner in roi_ras for v in corner)]
    if tta:
        command += ["--tta"]
    return command


@dataclass
class SegmentationJob:
    """One run of the CLI on a ``Volume``; start() it, then poll() until ``finished``."""

    volume: Volume
    manifest: ModelManifest
    depth: str = "auto"
    device: str = "auto"
    point_ras: Optional[Sequence[float]] = None
    roi_ras: Optional[tuple[Sequence[float], Sequence[float]]] = None
    on_success: Optional[Callable[[LabelVolume, dict], Any]] = None
    python: Optional[str] = None
    kill_timeout: float = 5.0
    tta: bool = False  # test-time augmentation (engine/tta.py)

    state: str = field(default=PENDING, init=False)
    error: Optional[str] = field(default=None, init=False)
    result: Optional[dict] = field(default=None, init=False)  # the CLI's {"result": ...}
    labels: Optional[LabelVolume] = field(default=None, init=False)
    output: Any = field(default=None, init=False)  # what on_success returned
    log: list[str] = field(default_factory=list, init=False)
    command: list[str] = field(default_factory=list, init=False)
    warnings: list[str] = field(default_factory=list, init=False)  # input sanity, before start

    def __post_init__(self) -> None:
        self._process: Optional[subprocess.Popen] = None
        self._lines: queue.Queue = queue.Queue()
        self._readers: list[threading.Thread] = []
        self._workdir: Optional[Path] = None
        self._cancel_requested = False
        self._terminated_at: Optional[float] = None
        self._last_error: Optional[str] = None

    # ---------------------------------------------------------------- control
    def start(self) -> SegmentationJob:
        """Write the inputs and launch the child process; returns immediately."""
        import SimpleITK as sitk

        if self.state != PENDING:
            raise RuntimeError("a SegmentationJob can be started once")
        if self.manifest.path is None:
            raise ValueError("the manifest must have been loaded from a model.json")
        self._workdir = Path(tempfile.mkdtemp(prefix="unetpp-job-"))
        try:
            inputs = []
            for channel in range(self.volume.num_channels):
                path = self._workdir / f"input_{channel}.nrrd"
                sitk.WriteImage(volume_to_sitk(self.volume, channel), str(path), False)
                inputs.append(path)
            self.command = build_command(
                self.python or python_executable(),
                inputs,
                Path(self.manifest.path),
                self._labelmap_path,
                self.depth,
                self.device,
                self.point_ras,
                self.roi_ras,
                self.tta,
            )
            # no OpenMP busy-waiting in the child: Slicer shares its cores (engine/runtime_env.py)
            env = runtime_env.child_env(dict(os.environ, PYTHONUNBUFFERED="1"))
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(package_root()), env.get("PYTHONPATH", "")) if p
            )
            flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=str(self._workdir),
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                creationflags=flags,
            )
        except BaseException:
            self._cleanup()
            raise
        for stream, name in ((self._process.stdout, "stdout"), (self._process.stderr, "stderr")):
            reader = threading.Thread(target=self._read, args=(stream, name), daemon=True)
            reader.start()
            self._readers.append(reader)
        self.state = RUNNING
        return self

    def cancel(self) -> None:
        """Ask the child to stop; it is killed if still alive ``kill_timeout`` s later. Never
        blocks; the job ends as ``cancelled`` and nothing is written."""
        self._cancel_requested = True
        process = self._process
        if process is not None and process.poll() is None and self._terminated_at is None:
            process.terminate()
            self._terminated_at = time.monotonic()

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def poll(self) -> list[JobEvent]:
        """Events since the last call; never blocks. The last one is ``finished``."""
        if self.state != RUNNING:
            if self.state == PENDING and self._cancel_requested:
                self.state = CANCELLED
                return [JobEvent(FINISHED, message="Cancelled by the user.", state=CANCELLED)]
            return []
        events = self._drain()
        if self._terminated_at is not None and self._process.poll() is None:
            if time.monotonic() - self._terminated_at > self.kill_timeout:
                self._process.kill()
        if self._process is not None and self._process.poll() is not None:
            for reader in self._readers:
                reader.join(timeout=1.0)
            events += self._drain()
            events.append(self._finish())
        return events

    def wait(self, timeout: Optional[float] = None, interval: float = 0.05) -> list[JobEvent]:
        """Poll until the job finishes (blocking, for scripts and tests); all events."""
        deadline = None if timeout is None else time.monotonic() + timeout
        events: list[JobEvent] = []
        while not self.finished:
            events += self.poll()
            if self.finished:
                break
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                while not self.finished:
                    events += self.poll()
                    time.sleep(interval)
                raise UNetPlusPlusError(f"Segmentation did not finish within {timeout:g} s.")
            time.sleep(interval)
        return events

    # ---------------------------------------------------------------- internals
    @property
    def _labelmap_path(self) -> Path:
        assert self._workdir is not None
        return self._workdir / "labels.nrrd"

    def _read(self, stream, name: str) -> None:
        for line in stream:
            self._lines.put((name, line.rstrip("\r\n")))
        stream.close()

    def _drain(self) -> list[JobEvent]:
        events = []
        while True:
            try:
                name, line = self._lines.get_nowait()
            except queue.Empty:
                return events
            event = self._parse(name, line)
            if event is not None:
                events.append(event)

    def _parse(self, name: str, line: str) -> Optional[JobEvent]:
        payload = None
        if name == "stdout" and line.startswith("{"):
            try:
                payload = json.loads(line)
            except json.JSONDecodeError:
                payload = None
        if not isinstance(payload, dict):
            if not line.strip():
                return None
            self._remember(line)
            return JobEvent(LOG, message=line)
        if "stage" in payload:
            stage = str(payload["stage"])
            if stage.startswith("fallback"):
                message = stage.split(":", 1)[-1].strip()
                self._remember(f"warning: {message}")
                return JobEvent(LOG, message=f"warning: {message}")
            return JobEvent(
                PROGRESS,
                stage=stage,
                done=int(payload.get("done", 0)),
                total=int(payload.get("total", 0)),
            )
        if "error" in payload:
            self._last_error = str(payload["error"])
            return JobEvent(LOG, message=f"error: {self._last_error}")
        if "result" in payload:
            self.result = payload["result"]
            return JobEvent(LOG, message="finished: " + json.dumps(self.result))
        self._remember(line)
        return JobEvent(LOG, message=line)

    def _remember(self, line: str) -> None:
        self.log.append(line)
        del self.log[:-LOG_TAIL_LINES]

    def _finish(self) -> JobEvent:
        returncode = self._process.returncode if self._process is not None else None
        try:
            if self._cancel_requested:
                self.state = CANCELLED
                return JobEvent(FINISHED, message="Cancelled by the user.", state=CANCELLED)
            if returncode != 0 or self.result is None:
                return self._fail(self._failure_message(returncode))
            try:
                labels = read_labelmap(self._labelmap_path, self.manifest.labels)
                if not labels.grid.isclose(self.volume.grid):
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
            self._cleanup()

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

    def _cleanup(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
