"""Background fine-tuning for the panel: ``unetpp train`` in a child process, then an install.

The Widget runs (through PythonSlicer inside Slicer, this interpreter elsewhere)

    <python> -m UNetPlusPlusLib.cli train CASES -o WORK/model [--init MODEL.json | --labels ...]
        --time-budget B --device DEV --progress-json --no-progress --cancel-file WORK/cancel
        --cache-dir WORK/cache [--plan-only]

and reads its JSON lines (``training/progress.py``): one per epoch with the loss, the ETA and the
latest per-depth validation Dice, then ``{"result": ...}`` or ``{"error": ...}``. ``poll`` never
blocks. On success the package is installed into the user's model folder
(``registry.install_model``: manifest and sha256 checked, a shipped model's name refused) and
``on_success(manifest)`` runs (the panel then prepares it in the background, unless the
training process did: ``unetpp train`` prepares its model at the end, ``prepare_s`` in its
result); the training log (``train.log``) goes with the package. Cancel
creates the cancel file (the trainer stops at the next iteration, exit 3) and kills the process
group after ``kill_timeout`` s: the child leads its own process group (``process.spawn``), so the
PythonSlicer launcher's child (the real interpreter) dies with it (``process.kill_tree``).
``close`` kills the group and removes the working folder: a cancelled, failed or closed job
installs nothing. No Qt, no Slicer.
"""

from __future__ import annotations

import json
import queue
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..cancel import CancelFile
from ..engine.manifest import ModelManifest
from ..errors import UNetPlusPlusError
from ..exit_codes import EXIT_CANCELLED
from .job import (
    CANCELLED,
    FAILED,
    FINISHED_STATES,
    LOG_TAIL_LINES,
    PENDING,
    RUNNING,
    SUCCEEDED,
    python_executable,
)
from .job_events import FINISHED, LOG, PROGRESS, ErrorsOnce, JobEvent, json_payload
from .process import LineReader, drain, kill_tree, output_complete, spawn
from .training_panel import epoch_text

PIPE_GRACE_S = 2.0  # after the child exits, how long its last lines may take to arrive


def build_train_command(
    python: str,
    cases_dir: Path,
    workdir: Path,
    init: Optional[Path],
    labels: Sequence[str] = (),
    time_budget: str = "10m",
    device: str = "auto",
    name: Optional[str] = None,
    plan_only: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``unetpp train`` command line of a panel run (see the module docstring). ``labels``:
    what ``--labels`` takes, one comma-separated value (segment names, or numbers meaning label
    values). Raises UNetPlusPlusError for a label with a comma, which that list cannot hold."""
    for label in labels:
        if "," in str(label):
            raise UNetPlusPlusError(
                f"The label {str(label)!r} contains a comma, which `unetpp train --labels` reads "
                "as a separator: rename the segment, or train without choosing labels (every "
                "segment of the cases is learnt by its name)."
            )
    command = [python, "-m", "UNetPlusPlusLib.cli", "train", str(cases_dir)]
    command += ["-o", str(workdir / "model"), "--cache-dir", str(workdir / "cache")]
    command += ["--time-budget", str(time_budget), "--device", str(device)]
    command += ["--progress-json", "--no-progress", "--cancel-file", str(workdir / "cancel")]
    if init is not None:
        command += ["--init", str(init)]
    if labels:  # one value: "--labels a b" was refused as "unrecognized arguments: b"
        command += ["--labels", ",".join(str(label) for label in labels)]
    if name:
        command += ["--name", name]
    if plan_only:
        command += ["--plan-only"]
    return command + list(extra)


@dataclass
class TrainingJob(ErrorsOnce):
    """One fine-tune (or ``plan_only``: the plan and ETA) of the cases in ``cases_dir``;
    start() it, then poll() until ``finished``. ``init`` None trains from scratch."""

    cases_dir: Path
    init: Optional[ModelManifest] = None
    labels: Sequence[str] = ()
    time_budget: str = "10m"
    device: str = "auto"
    name: Optional[str] = None
    plan_only: bool = False
    install_dir: Optional[Path] = None  # default: the user's model folder
    on_success: Optional[Callable[[ModelManifest], Any]] = None
    python: Optional[str] = None
    kill_timeout: float = 5.0
    extra_args: Sequence[str] = ()

    state: str = field(default=PENDING, init=False)
    error: Optional[str] = field(default=None, init=False)
    result: Optional[dict] = field(default=None, init=False)  # the CLI's {"result": ...}
    installed: Optional[ModelManifest] = field(default=None, init=False)
    latest: dict = field(default_factory=dict, init=False)  # last epoch line (loss, eta_s, dice)
    log: list[str] = field(default_factory=list, init=False)
    command: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._process = None  # subprocess.Popen, the leader of its process group
        self._lines: queue.Queue = queue.Queue()
        self._readers: list[LineReader] = []
        self._workdir: Optional[Path] = None
        self._cancel_requested = False
        self._cancelled_at: Optional[float] = None
        self._exited_at: Optional[float] = None
        self._last_error: Optional[str] = None

    # ---------------------------------------------------------------- control
    def start(self) -> TrainingJob:
        """Launch the child process; returns immediately. Raises UNetPlusPlusError when the
        interpreter cannot be started."""
        if self.state != PENDING:
            raise RuntimeError("a TrainingJob can be started once")
        self._workdir = Path(tempfile.mkdtemp(prefix="unetpp-train-"))
        init_path = Path(self.init.path) if self.init is not None and self.init.path else None
        self.command = build_train_command(
            self.python or python_executable(), Path(self.cases_dir), self._workdir, init_path,
            self.labels, self.time_budget, self.device, self.name, self.plan_only,
            self.extra_args,
        )  # fmt: skip
        try:
            self._process = spawn(self.command, cwd=self._workdir)  # its own process group
        except OSError as error:
            self._cleanup()
            raise UNetPlusPlusError(
                f"Could not start the training process ({self.command[0]}): {error}."
            ) from error
        self._readers = [
            LineReader(self._process.stdout, "stdout", self._lines),
            LineReader(self._process.stderr, "stderr", self._lines),
        ]
        self.state = RUNNING
        return self

    def cancel(self) -> None:
        """Ask the trainer to stop (cancel file); the process group is killed if it is still
        alive ``kill_timeout`` s later. Never blocks; nothing is installed."""
        self._cancel_requested = True
        if self._workdir is not None and self._cancelled_at is None:
            CancelFile(self._workdir / "cancel").request()
            self._cancelled_at = time.monotonic()

    def close(self) -> None:
        """Kill the process tree now and remove the working folder (scene close, exit)."""
        self._cancel_requested = True
        kill_tree(self._process)
        if not self.finished:
            self.state = CANCELLED
        self._cleanup()

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
        process = self._process
        now = time.monotonic()
        exited = process.poll() is not None
        if self._cancelled_at is not None and not exited:
            if now - self._cancelled_at > self.kill_timeout:
                kill_tree(process)  # the cooperative route failed or is too slow
        if not exited:
            return events
        if self._exited_at is None:
            self._exited_at = now
        if not output_complete(process, self._readers, self._exited_at, now, PIPE_GRACE_S):
            return events  # the last lines are still on their way (no join here)
        events += self._drain()
        final = self._finish()
        events += self._held_events()  # the stderr copy of an error said in the JSON: dropped
        said = self._error_event(final.message) if final.state == FAILED else None
        return events + ([final] if said is None else [said, final])

    def wait(self, timeout: Optional[float] = None, interval: float = 0.05) -> list[JobEvent]:
        """Poll until the job finishes (blocking, for scripts and tests); all events."""
        deadline = None if timeout is None else time.monotonic() + timeout
        events: list[JobEvent] = []
        while not self.finished:
            events += self.poll()
            if not self.finished and deadline is not None and time.monotonic() > deadline:
                self.close()
                raise UNetPlusPlusError(f"Training did not finish within {timeout:g} s.")
            time.sleep(interval)
        return events

    # ---------------------------------------------------------------- internals
    def _drain(self) -> list[JobEvent]:
        events = []
        for name, line in drain(self._lines):
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
        if payload.get("stage") == "epoch":
            self.latest = payload
            return JobEvent(
                PROGRESS, stage="epoch", done=int(payload.get("done", 0)),
                total=int(payload.get("total", 0)), message=epoch_text(payload),
            )  # fmt: skip
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

    def _finish(self) -> JobEvent:
        returncode = self._process.returncode if self._process is not None else None
        try:
            if self._cancel_requested or returncode == EXIT_CANCELLED:
                kill_tree(self._process)  # nothing of the tree outlives a cancel
                self.state = CANCELLED
                return JobEvent(FINISHED, message="Training cancelled.", state=CANCELLED)
            if returncode != 0:
                return self._fail(self._failure_message(returncode))
            if self.plan_only:
                self.state = SUCCEEDED
                return JobEvent(FINISHED, message="Plan ready.", state=SUCCEEDED)
            if self.result is None:
                return self._fail(self._failure_message(returncode))
            try:
                package = Path(self.result["model_dir"])
                shutil.rmtree(package / "checkpoint", ignore_errors=True)  # resume state only
                import warnings

                from ..engine import registry

                with warnings.catch_warnings(record=True) as said:  # an earlier model replaced
                    warnings.simplefilter("always")
                    self.installed = registry.install_model(
                        str(package), cache_dir=self.install_dir
                    )
                if self.on_success is not None:
                    self.on_success(self.installed)
            except UNetPlusPlusError as error:
                return self._fail(str(error))
            self.state = SUCCEEDED
            message = f"Installed {self.installed.name} ({self.installed.task})."
            prepared = self.result.get("prepare_s") if isinstance(self.result, dict) else None
            if isinstance(prepared, (int, float)):  # `unetpp train` prepared its graphs
                message += f" Prepared for its first segmentation in {prepared:.1f} s."
            message += "".join(f" Warning: {w.message}" for w in said)
            return JobEvent(FINISHED, message=message, state=SUCCEEDED)
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
        reason = (
            f"it stopped unexpectedly (signal {-returncode})"
            if returncode is not None and returncode < 0
            else f"it exited with status {returncode}"
        )
        return f"The training process failed, {reason}{': ' + tail if tail else ''}."

    def _cleanup(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
