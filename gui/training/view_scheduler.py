"""Drawing the live views: when, which, and never a backlog.

The scheduler holds the ``Frame`` the views should show now - the newest live snapshot, or the
checkpoint the timeline is scrubbed to - and draws it:

* live frames at most ``fps`` times a second, sliced over the GUI timer's ticks (about
  TICK_BUDGET_S of drawing per tick, then Qt paints and handles input), only in the views a
  person can see;
* a view that becomes visible (a tab raised, a dock shown) draws the current frame at once, so
  a view hidden during a run shows its end, not a frozen middle;
* ``clear()`` empties every view, visible or not: what belongs to another project or another
  run is never left on screen.
"""
from __future__ import annotations

import collections
import time
from typing import Callable

from PySide6.QtCore import QEvent, QObject

from gui.views import Frame

TICK_S = 0.005  # the GUI timer's period
TICK_BUDGET_S = 0.003  # drawing per tick, about one view (then Qt paints it and handles input)


def is_shown(widget) -> bool:
    """Visible on screen (not in a background dock tab, not in a closed dock)."""
    return widget.isVisible() and not widget.visibleRegion().isEmpty()


class ViewScheduler(QObject):
    def __init__(self, views: dict, fps: int, parent: QObject | None = None):
        super().__init__(parent)
        self.views = views
        self.render_hidden = False  # draw views that are not visible (tests, benchmarks)
        self.frame: Frame | None = None  # what the views show now
        self.frames = 0
        self._pending: Frame | None = None  # a live frame waiting for its slot
        self._queue: list[Callable[[], None]] = []
        self._period = 1.0 / fps
        self._next_frame = 0.0  # when the next live frame is due
        self._frame_times: collections.deque = collections.deque(maxlen=240)
        for view in views.values():
            view.installEventFilter(self)

    # ------------------------------------------------------------------ what to show
    def offer(self, frame: Frame) -> None:
        """A new live frame: drawn at the next frame slot (newer offers replace older ones)."""
        self.frame = self._pending = frame

    def show(self, frame: Frame) -> None:
        """Draw ``frame`` in every shown view now (timeline scrubs, selections, an opened project)."""
        self.frame = frame
        self._pending = None
        self._queue = []
        for view in self.views.values():
            if self.render_hidden or is_shown(view):
                view.render(frame)

    def reset(self, info, epochs: int) -> None:
        """A new run or a restored one: every view rebuilds for ``info``, visible or not."""
        self._queue, self._pending, self.frame = [], None, None
        for view in self.views.values():
            view.show_message(None)
            view.reset(info)
            view.set_epochs(epochs)

    def clear(self) -> None:
        """Nothing to show: every view, visible or not, goes back to its idle message."""
        self._queue, self._pending, self.frame = [], None, None
        for view in self.views.values():
            view.clear()

    def add_task(self, task: Callable[[], None]) -> None:
        """Work drawn within the frame's time slices (the canvas overlay)."""
        self._queue.append(task)

    # ------------------------------------------------------------------ drawing
    def tick(self) -> bool:
        """Start a frame if one is due, then draw for about TICK_BUDGET_S.  True when a new frame started."""
        now = time.perf_counter()
        started = False
        if not self._queue and self._pending is not None and now >= self._next_frame:
            frame, self._pending = self._pending, None
            # Frames on a fixed grid: a frame drawn a tick late does not push the next one later,
            # so the rate is ``fps`` whatever the timer's phase (timing each frame from the last
            # gave 23 of 25).  After a pause or a stall the grid starts again from now.
            late = now - self._next_frame
            self._next_frame = self._next_frame + self._period if late < self._period else now + self._period
            self._queue = [lambda v=view, f=frame: v.render(f) for view in self.views.values()
                           if self.render_hidden or is_shown(view)]
            self._frame_times.append(now)
            self.frames += 1
            started = True
        deadline = now + TICK_BUDGET_S
        while self._queue:
            self._queue.pop(0)()
            if time.perf_counter() >= deadline:
                break
        return started

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self._pending is not None

    def flush(self) -> None:
        """Draw everything pending now (tests, the end of a run)."""
        self._next_frame = 0.0
        self.tick()
        while self._queue:
            self.tick()

    def fps(self, window_s: float = 2.0) -> float:
        """Frames drawn per second over the last ``window_s`` seconds."""
        now = time.perf_counter()
        recent = [t for t in self._frame_times if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    # ------------------------------------------------------------------ a view comes into sight
    def watch_dock(self, dock, view) -> None:
        """``view`` lives in ``dock``: a dock tab raised (or the dock shown) draws the current frame.
        (A view in a background tab stays "visible" to Qt, with an empty visible region, so its
        own Show event does not come; the dock's visibilityChanged does.)"""
        dock.visibilityChanged.connect(lambda visible, v=view: self._came_into_sight(v) if visible else None)

    def _came_into_sight(self, view) -> None:
        if self.frame is not None and not self.render_hidden:
            view.render(self.frame)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Show:
            self._came_into_sight(obj)
        return False
