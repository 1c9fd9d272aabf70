"""Models prepared in the background from the panel (adapter/background_prepare.py).

A mixin of :class:`~UNetPlusPlusLib.widget.panel_widget.UNetPlusPlusPanel`, which provides
``logic``, ``_dependenciesReady`` and ``appendLog()``. The shipped models are prepared once
when the module is entered (and again after a scene close killed a preparation), a model
installed by the panel's training right after its install. A timer moves the queue on and
logs the preparation's lines; it runs only while something is being prepared. Nothing here
blocks or raises.
"""

import qt
from slicer.i18n import tr as _

PREPARE_POLL_MS = 500


class PrepareControl:
    """Starts the background preparation and polls it."""

    def setupPreparation(self) -> None:
        self._prepareTimer = qt.QTimer()
        self._prepareTimer.setInterval(PREPARE_POLL_MS)
        self._prepareTimer.connect("timeout()", self.onPollPreparation)

    def prepareModelsInBackground(self, manifests=None) -> None:
        """Prepare ``manifests`` (None: the shipped models, once) at low priority, if the
        dependencies are installed; the first Segment click then finds the graphs ready."""
        if not self._dependenciesReady:
            return
        if manifests is None:
            names = self.logic.prepareBuiltInModels()
        else:
            names = self.logic.prepareModels(list(manifests))
        if names:
            self.appendLog(_("Preparing in the background (low priority): ") + ", ".join(names))
            self._prepareTimer.start()

    def onPollPreparation(self) -> None:
        for line in self.logic.pollPreparation():
            self.appendLog(line)
        if not self.logic.preparing:
            self._prepareTimer.stop()

    def stopPreparationTimer(self) -> None:
        self._prepareTimer.stop()
