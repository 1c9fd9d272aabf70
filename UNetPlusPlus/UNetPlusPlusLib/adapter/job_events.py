"""What a background job (adapter/job.py, adapter/training_job.py) reports: its events, the
JSON lines of its child, and each error once.

The one-shot CLI says its error twice: whole in its JSON (``{"error": msg}``, with
``--progress-json``) and on stderr for a terminal, ``error: msg``, where a message of several
lines (a SimpleITK or torch error quoted in an internal error) arrives as that line and the
lines after it. :class:`ErrorsOnce` logs each error once, whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

# Event kinds returned by the jobs' poll().
PROGRESS, LOG, FINISHED = "progress", "log", "finished"

ERROR_PREFIX = "error: "  # the log line of an error, as the CLI prints it on stderr


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


def json_payload(stream: str, line: str) -> Optional[dict]:
    """The JSON object a CLI child printed on ``stream`` ("stdout": progress, error, result
    lines of ``--progress-json``), or None for any other line (a log line for the user)."""
    if stream != "stdout" or not line.startswith("{"):
        return None
    try:
        payload = json.loads(line)
    except json.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


class ErrorsOnce:
    """Mixin of the jobs: each error is one log event, however often the child says it, in
    however many lines.

    An ``error: `` line on stderr and the lines after it are held (:meth:`_stderr_event`) until
    the job ends (:meth:`_held_events`): the part that repeats an error said already (the
    JSON's, which comes whole) is dropped; a held error said nowhere else is logged then, whole.
    """

    def _error_event(self, message: str) -> Optional[JobEvent]:
        """The log event "error: <message>", or None when this job said it already: the job's
        failure repeats the child's error (each error once in the panel's log)."""
        said = self.__dict__.setdefault("_errors_said", [])
        if message in said:
            return None
        said.append(message)
        return JobEvent(LOG, message=ERROR_PREFIX + message)

    def _stderr_event(self, line: str) -> Optional[JobEvent]:
        """The log event of a (non-empty) stderr line, or None while it is held: an error line
        and every line after it."""
        held = self.__dict__.get("_held_error")
        if held is not None:
            held.append(line)
            return None
        if line.startswith(ERROR_PREFIX):
            self._held_error = [line[len(ERROR_PREFIX) :]]
            return None
        return JobEvent(LOG, message=line)

    def _held_events(self) -> list[JobEvent]:
        """At the end of the job: the held stderr lines less the error said already (its lines
        in order); an error said nowhere else is one event, whole."""
        held, self._held_error = self.__dict__.get("_held_error"), None
        if not held:
            return []
        for message in self.__dict__.get("_errors_said", []):
            lines = message.splitlines()
            if held[: len(lines)] == lines:
                return [JobEvent(LOG, message=line) for line in held[len(lines) :]]
        said = self._error_event("\n".join(held))
        return [said] if said is not None else []
