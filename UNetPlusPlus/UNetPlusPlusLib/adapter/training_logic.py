"""The panel's "Train / fine-tune" section without Qt: cases, add the current case, plan, train.

One training job at a time. ``start`` refuses a folder without a case that ``unetpp train``
would use (``training_cases.check_cases``, the trainer's own discovery) and a second job while
one runs. ``shutdown`` (module cleanup, scene close, application exit) kills the running job's
process tree and removes its working folder, so nothing half-trained is installed. The job
itself is ``training_job.TrainingJob``."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

from ..engine.manifest import ModelManifest
from ..errors import UNetPlusPlusError
from .training_cases import FolderCheck, check_cases, next_case_name  # noqa: F401
from .training_job import TrainingJob


class TrainingLogic:
    """Cases folder checks and one background fine-tune (or plan) at a time."""

    def __init__(self, python: Optional[str] = None) -> None:
        self.python = python  # the child's interpreter (None: PythonSlicer or this one)
        self.job: Optional[TrainingJob] = None

    @staticmethod
    def check_cases(folder, manifest: Optional[ModelManifest]) -> FolderCheck:
        """The cases of ``folder`` that the training job :meth:`start` runs will use, found by
        the trainer with ``manifest``'s channels and labels (None: from scratch, the first
        case's), and the trainer's refusals and warnings."""
        if manifest is None:
            return check_cases(Path(folder))
        labels = [label.name for label in manifest.labels]
        return check_cases(Path(folder), manifest.channels, labels)

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.finished

    def start(
        self,
        cases_dir,
        init: Optional[ModelManifest],
        time_budget: str = "10m",
        device: str = "auto",
        labels: Sequence[str] = (),
        name: Optional[str] = None,
        plan_only: bool = False,
        on_success: Optional[Callable[[ModelManifest], object]] = None,
        install_dir: Optional[Path] = None,
        extra_args: Sequence[str] = (),
    ) -> TrainingJob:
        """Start a fine-tune from ``init`` (None: from scratch) of the usable cases in
        ``cases_dir``; returns the running job. ``labels``: the segments to learn (default: the
        ``init`` model's labels; from scratch, every segment of the cases, by name, as
        ``unetpp train`` without ``--labels`` does: the panel's "From scratch" passes none).
        Raises UNetPlusPlusError."""
        if self.running:
            raise UNetPlusPlusError("A training is already running; cancel it first.")
        found = self.check_cases(cases_dir, init)
        if not found.cases:
            first = f" ({found.refused[0].rstrip('.')})" if found.refused else ""
            raise UNetPlusPlusError(
                f"No usable case in {cases_dir}: export corrected cases with 'Add current "
                f"case'{first}."
            )
        if init is not None and not labels:
            labels = [label.name for label in init.labels]
        self.job = TrainingJob(
            Path(cases_dir), init=init, labels=list(labels), time_budget=time_budget,
            device=device, name=name, plan_only=plan_only, install_dir=install_dir,
            on_success=on_success, python=self.python, extra_args=list(extra_args),
        )  # fmt: skip
        return self.job.start()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def shutdown(self) -> None:
        """Kill a running job's process tree and remove its working folder; never blocks."""
        if self.job is not None:
            self.job.close()
