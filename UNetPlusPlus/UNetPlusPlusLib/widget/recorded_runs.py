"""The panel shows what a segmentation records of the runs that wrote it, when it is chosen.

A mixin of :class:`~UNetPlusPlusLib.widget.run_control.RunControl`, so of the panel (``ui``,
``_parameterNode``, ``_job``, ``appendLog``). Each segment the module writes carries its run's
record (adapter/run_tags.py: model, depth, warnings), saved with the scene and in the
``.seg.nrrd`` Slicer writes. The run's warnings were shown in the status text when it ended;
a user who opens the scene (or the file) later, or a colleague, saw none of them. Choosing such
a segmentation as the output (or a scene that opens with it chosen) now shows, in the status
text and the log, each run's model and depth and its warnings, once per choice; not while a
run is going, and not for the node a run has just chosen itself (its result summary says it).
"""

from __future__ import annotations

from typing import Optional

from slicer.i18n import tr as _

from UNetPlusPlusLib.adapter.run_tags import recorded_warnings_text


class RecordedRuns:
    """Show the run records of the chosen output segmentation (see the module docstring)."""

    _recordShownFor: Optional[str] = None  # the output node ID last looked at

    def markRecordShown(self, node) -> None:
        """``node`` (a segmentation a run has just written and chosen) is not shown again."""
        self._recordShownFor = node.GetID() if node is not None else None

    def showRecordedRuns(self) -> Optional[str]:
        """If the output segmentation changed since the last call and its segments record
        runs, show them in the status text and the log; returns that text, or None."""
        p = self._parameterNode
        node = p.outputSegmentation if p is not None else None
        key = node.GetID() if node is not None else None
        if key == self._recordShownFor:
            return None
        self._recordShownFor = key
        if node is None or (self._job is not None and not self._job.finished):
            return None
        text = recorded_warnings_text(node)
        if not text:
            return None
        message = _("Segmentation '{name}' records the runs that wrote it:").format(
            name=node.GetName()
        )
        message += "\n" + text
        self.ui.statusLabel.text = message
        self.appendLog(message)
        return message
