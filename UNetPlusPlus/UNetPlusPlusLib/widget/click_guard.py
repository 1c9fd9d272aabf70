"""A start button that turns into Cancel ignores the Cancel clicks that come too soon after the
start to be meant for it; an export button ignores the second click of its double-click.

Qt's QAbstractButton emits ``clicked`` for each press and release, so a double-click on
"Segment" (or "Train") is two clicks: the first starts the run and makes the button "Cancel",
the second cancels it. A click queued while the start blocks the event loop (writing the input
volumes) is delivered just after the button became "Cancel", and cancels too. Such a click
arrives within the platform's double-click interval of the start (measured from the moment the
start returned); no one can read "Cancel" and click it that fast, so it is ignored. A Cancel
later works at once.

The clock is injectable (``clock``: seconds, monotonic) so that tests can click Cancel "later"
without sleeping.

A toggle (the nodule section's "Place" button, a checkable button) toggles on each click too, so
a double-click toggled it twice and left it as it was: :func:`act_once_on_double_click` makes the
double-click's second press do nothing (it is a ``MouseButtonDblClick`` event, which
QAbstractButton takes as a press).
"""

import time
from typing import Callable, Optional

# Qt's own default (QPlatformTheme::MouseDoubleClickInterval), used only without a Qt
# application (the tests); Slicer asks Qt.
DEFAULT_DOUBLE_CLICK_MS = 400


def double_click_interval_ms() -> int:
    """The platform's double-click interval in ms: ``QApplication.doubleClickInterval()``
    (a static method, also in Slicer's PythonQt), or Qt's default without Qt."""
    try:
        import qt
    except ImportError:
        return DEFAULT_DOUBLE_CLICK_MS
    return int(qt.QApplication.doubleClickInterval())


_DOUBLE_CLICK_FILTER = None  # the QObject subclass, made once Qt is there


def act_once_on_double_click(button):
    """Make a double-click on ``button`` (a QAbstractButton, e.g. a checkable toggle) act as one
    click: its second press (``QEvent.MouseButtonDblClick``) is dropped by an event filter, so
    the release after it clicks nothing. Returns the filter (parented to ``button``); keep a
    reference to it as long as the button lives (a Python QObject subclass stops filtering
    once Python drops it)."""
    import qt

    global _DOUBLE_CLICK_FILTER
    if _DOUBLE_CLICK_FILTER is None:

        class DoubleClickAsOne(qt.QObject):
            def eventFilter(self, watched, event) -> bool:
                return event.type() == qt.QEvent.MouseButtonDblClick

        _DOUBLE_CLICK_FILTER = DoubleClickAsOne
    eventFilter = _DOUBLE_CLICK_FILTER(button)
    button.installEventFilter(eventFilter)
    return eventFilter


class CancelGuard:
    """Whether a Cancel click is the second click of the start's double-click.

    ``arm()`` once a start made the button "Cancel" (not for each point of a batch: the button
    stayed "Cancel" in between); ``ignores()`` on each Cancel click.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        interval_ms: Callable[[], int] = double_click_interval_ms,
    ) -> None:
        """``clock``: seconds (monotonic); ``interval_ms``: the double-click interval, ms."""
        self.clock = clock
        self.interval_ms = interval_ms
        self._armedAt: Optional[float] = None

    def arm(self) -> None:
        """The button has just turned into "Cancel"."""
        self._armedAt = self.clock()

    def ignores(self) -> bool:
        """Whether a Cancel click now comes within the double-click interval of the start
        (then it is ignored); a later one disarms the guard."""
        if self._armedAt is None:
            return False
        elapsed = self.clock() - self._armedAt
        if 0 <= elapsed < self.interval_ms() / 1000.0:
            return True
        self._armedAt = None
        return False


class CancelGuards:
    """A panel mixin: one :class:`CancelGuard` per start/Cancel button, on ``self.clock``, and
    :meth:`clickOnce` for the buttons that export ("Add current case", "Export training
    case"), whose double-click exported the case twice."""

    clock = staticmethod(time.monotonic)  # seconds; a test sets its own on the panel

    def cancelGuard(self, button: str) -> CancelGuard:
        """The guard of ``button`` ("segment", "train"); it reads ``self.clock`` when asked."""
        guards = getattr(self, "_cancelGuards", None)
        if guards is None:
            guards = self._cancelGuards = {}
        if button not in guards:
            guards[button] = CancelGuard(clock=lambda: self.clock())
        return guards[button]

    def clickOnce(self, button: str, action: Callable[[], object]) -> None:
        """Run ``action`` for a click on ``button``, unless the click comes within the
        double-click interval of the previous one it ran for: the double-click's second click,
        delivered after ``action`` returned or while it runs (Slicer's ``WaitCursor`` processes
        the pending events on entering). The interval counts from both the start and the end."""
        guard = self.cancelGuard(button)
        if guard.ignores():
            return
        guard.arm()
        try:
            action()
        finally:
            guard.arm()
