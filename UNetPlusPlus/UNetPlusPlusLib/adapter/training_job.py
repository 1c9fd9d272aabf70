"""Background fine-tuning for the panel: ``unetpp train`` in a child process, then an install.

The Widget runs (through PythonSlicer inside Slicer, this interpreter elsewhere)

    <python> -m UNetPlusPlusLib.cli train CASES -o WORK/model [--init MODEL.json | --labels ...]
        --time-budget B --device DEV --progress-json --no-progress --cancel-file WORK/cancel
        --cache-dir WORK/cache [--plan-only]

and reads its JSON lines (``training/progress.py``): one per epoch with the loss, the ETA and the
latest per-depth validation Dice, then ``{"result": ...}`` or ``{"error": ...}``. ``poll`` never
blocks. On success the package is installed into the user's model folder
(``registry.install_model``: manifest and sha256 checked, a shipped model's name refused) and
``on_success(manifest)`` runs; the training log (``train.log``) goes with the package. Cancel
creates the cancel file (the trainer stops at the next iteration, exit 3) and kills the process
group after ``kill_timeout`` s: the child starts as a group leader, so the PythonSlicer
launcher's own child (the real interpreter) dies with it. ``close`` kills the group and removes
the working folder: a cancelled, failed or closed job installs nothing. No Qt, no Slicer.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..engine.manifest import ModelManifest
from ..errors import UNetPlusPlusError
from .job import (
    CANCELLED,
    FAILED,
    FINISHED,
    FINISHED_STATES,
    LOG,
    LOG_TAIL_LINES,
    PENDING,
    PROGRESS,
    RUNNING,
    SUCCEEDED,
    JobEvent,
    package_root,
    python_executable,
)
from .training_panel import epoch_text

EXIT_CANCELLED = 3


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
    """The ``unetpp train`` command line of a panel run (see the module docstring)."""
    command = [python, "-m", "UNetPlusPlusLib.cli", "train", str(cases_dir)]
    command += ["-o", str(workdir / "model"), "--cache-dir", str(workdir / "cache")]
    command += ["--time-budget", str(time_budget), "--device", str(device)]
    command += ["--progress-json", "--no-progress", "--cancel-file", str(workdir / "cancel")]
    if init is not None:
        command += ["--init", str(init)]
    if labels:
        command += ["--labels", *labels]
    if name:
        command += ["--name", name]
    if plan_only:
        command += ["--plan-only"]
    return command + list(extra)


@dataclass
class TrainingJob:
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
        self._process: Optional[subprocess.Popen] = None
        self._lines: queue.Queue = queue.Queue()
        self._readers: list[threading.Thread] = []
        self._workdir: Optional[Path] = None
        self._cancel_requested = False
        self._cancelled_at: Optional[float] = None
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
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(package_root()), env.get("PYTHONPATH", "")) if p
        )
        options: dict = {}
        if sys.platform == "win32":
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(
                subprocess, "CREATE_NO_WINDOW", 0
            )
        else:
            options["start_new_session"] = True  # the group dies with kill_tree
        try:
            self._process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=env, cwd=str(self._workdir), text=True,
                encoding="utf-8", errors="replace", bufsize=1, **options,
            )  # fmt: skip
        except OSError as error:
            self._cleanup()
            raise UNetPlusPlusError(
                f"Could not start the training process ({self.command[0]}): {error}."
            ) from error
        for stream, name in ((self._process.stdout, "stdout"), (self._process.stderr, "stderr")):
            reader = threading.Thread(target=self._read, args=(stream, name), daemon=True)
            reader.start()
            self._readers.append(reader)
        self.state = RUNNING
        return self

    def cancel(self) -> None:
        """Ask the trainer to stop (cancel file); the process group is killed if it is still
        alive ``kill_timeout`` s later. Never blocks; nothing is installed."""
        self._cancel_requested = True
        if self._workdir is not None and self._cancelled_at is None:
            try:
                (self._workdir / "cancel").touch()
            except OSError:
                pass
            self._cancelled_at = time.monotonic()

    def close(self) -> None:
        """Kill the process tree now and remove the working folder (scene close, exit)."""
        self._cancel_requested = True
        self._kill_tree()
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
        if self._cancelled_at is not None and process.poll() is None:
            if time.monotonic() - self._cancelled_at > self.kill_timeout:
                self._kill_tree()
        if process.poll() is not None:
            for reader in self._readers:
                reader.join(timeout=0.2)  # the pipes are at EOF once the group is gone
            events += self._drain()
            events.append(self._finish())
        return events

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
    def _kill_tree(self) -> None:
        process = self._process
        if process is None:
            return
        if sys.platform == "win32":
            subprocess.Popen(
                ["taskkill", "/T", "/F", "/PID", str(process.pid)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )  # fmt: skip
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the group id is the leader's pid
        except (ProcessLookupError, PermissionError):
            pass
        process.poll()

    def _read(self, stream, name: str) -> None:
        try:
            for line in stream:
                self._lines.put((name, line.rstrip("\r\n")))
        except (OSError, ValueError):
            pass
        finally:
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
        if payload.get("stage") == "epoch":
            self.latest = payload
            return JobEvent(
                PROGRESS, stage="epoch", done=int(payload.get("done", 0)),
                total=int(payload.get("total", 0)), message=epoch_text(payload),
            )  # fmt: skip
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
            if self._cancel_requested or returncode == EXIT_CANCELLED:
                self._kill_tree()  # nothing of the tree outlives a cancel
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
                from ..engine import registry

                self.installed = registry.install_model(str(package), cache_dir=self.install_dir)
                if self.on_success is not None:
                    self.on_success(self.installed)
            except UNetPlusPlusError as error:
                return self._fail(str(error))
            self.state = SUCCEEDED
            message = f"Installed {self.installed.name} ({self.installed.task})."
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
