"""The pace of training steps behind the ETA, without what is not a step's.

The progress bar's ETA was tqdm's: iterations left over its rate, measured between two updates
of the bar, so the seconds of a validation (and of the checkpoint after it) counted as those of
the next iteration: after a 30 s validation between steps of 1 s, the bar's ETA for 30
iterations read about 5 minutes instead of 30 s, and recovered over several steps. And the run's
first step (oneDNN primitives, first-touched memory) entered the per-step pace of the first
epoch, which the epoch line's ETA, the budget re-fit and the session stop extrapolate to every
later step. Here each step is timed on its own (batch preparation and step); the process's first
:data:`WARM_UP_STEPS` are kept out of the pace; the bar shows the ETA of the iterations left at
that pace. No torch here.
"""

from __future__ import annotations

from typing import Optional, Sequence

#: Steps of a process kept out of its pace: the first builds oneDNN's primitives and touches
#: its buffers for the first time.
WARM_UP_STEPS = 1
#: The progress bar: tqdm's own remaining-time estimate is left out (``{remaining}``); the
#: postfix carries :meth:`StepPace.eta_text`.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


def steady_step_seconds(step_seconds: Sequence[float], warm_up_steps: int = 0) -> float:
    """Mean seconds of ``step_seconds`` (each step's seconds, in order) without the first
    ``warm_up_steps``; of all of them when nothing else is left; 0.0 for none."""
    steady = list(step_seconds[warm_up_steps:]) or list(step_seconds)
    return sum(steady) / len(steady) if steady else 0.0


class StepPace:
    """Each training step's seconds in this process, epoch by epoch (:meth:`start_epoch`,
    :meth:`add`); the pace is the latest epoch's, without the process's warm-up steps."""

    def __init__(self, warm_up_steps: int = WARM_UP_STEPS) -> None:
        self.warm_up_steps = warm_up_steps
        self.steps_before = 0  # steps of this process in the epochs before the latest
        self.epoch: list[float] = []

    def start_epoch(self) -> None:
        """A new epoch: the steps so far count as earlier epochs' (their warm-up included)."""
        self.steps_before += len(self.epoch)
        self.epoch = []

    def add(self, seconds: float) -> None:
        """One step's seconds (its batch's preparation included)."""
        self.epoch.append(float(seconds))

    def per_step(self) -> Optional[float]:
        """Seconds per step of the latest epoch, its warm-up steps left out; None before one."""
        if not self.epoch:
            return None
        warm_up = max(0, self.warm_up_steps - self.steps_before)
        return steady_step_seconds(self.epoch, warm_up)

    def eta(self, iterations_left: int, fallback: float = 0.0) -> Optional[float]:
        """Seconds of ``iterations_left`` steps at :meth:`per_step` (``fallback`` seconds per
        step while the epoch holds only warm-up steps, e.g. the calibration's); None when
        neither is known."""
        warm_up = max(0, self.warm_up_steps - self.steps_before)
        pace = self.per_step() if len(self.epoch) > warm_up else None
        pace = pace or (fallback if fallback > 0 else None)
        return None if pace is None else max(0, iterations_left) * pace

    def eta_text(self, iterations_left: int, fallback: float = 0.0) -> str:
        """The bar's ETA of the iterations left (``?`` while unknown)."""
        from .planner import format_duration

        seconds = self.eta(iterations_left, fallback)
        return "?" if seconds is None else format_duration(seconds)
