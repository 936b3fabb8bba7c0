"""The view scheduler's frame clock: live frames at the configured rate whatever the timer's phase,
never more, and a frame's drawing sliced over ticks."""
from __future__ import annotations

import random
import types

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QWidget  # noqa: E402

from gui.training import view_scheduler  # noqa: E402
from gui.training.view_scheduler import TICK_S, ViewScheduler  # noqa: E402


class CountingView(QWidget):
    def __init__(self):
        super().__init__()
        self.drawn = 0

    def render(self, frame) -> None:
        self.drawn += 1


def scheduler_on_a_fake_clock(monkeypatch, views: dict, fps: int = 25):
    """A scheduler drawing ``views`` (hidden or not) whose clock is ``clock.t``, set by the test."""
    clock = types.SimpleNamespace(t=10.0)
    monkeypatch.setattr(view_scheduler, "time", types.SimpleNamespace(perf_counter=lambda: clock.t))
    scheduler = ViewScheduler(views, fps)
    scheduler.render_hidden = True
    return scheduler, clock


def run_ticks(monkeypatch, seconds: float, lateness_s: float, fps: int = 25, seed: int = 0):
    """Tick a scheduler on a fake clock: the GUI timer fires every TICK_S, each tick up to
    ``lateness_s`` late (a busy event loop), and a new live frame is offered before every tick."""
    views = {"a": CountingView(), "b": CountingView()}
    scheduler, clock = scheduler_on_a_fake_clock(monkeypatch, views, fps)
    rng = random.Random(seed)
    started = 0
    for k in range(int(seconds / TICK_S)):
        clock.t = 10.0 + k * TICK_S + rng.uniform(0.0, lateness_s)
        scheduler.offer(object())
        started += scheduler.tick()
    return started / seconds, views


@pytest.mark.parametrize("lateness_ms", [0.0, 4.0, 12.0])
def test_live_frames_come_at_the_frame_rate_whatever_the_timer_phase(qapp, monkeypatch, lateness_ms):
    """Timing each frame from the start of the last one drew 23 frames a second of 25: a frame
    drawn a tick late pushed every later one back."""
    rate, views = run_ticks(monkeypatch, 20.0, lateness_ms / 1e3)
    assert 24.6 <= rate <= 25.05
    assert all(abs(v.drawn - rate * 20.0) <= 1 for v in views.values())  # every view, every frame


def test_a_stall_does_not_bring_a_burst_of_frames(qapp, monkeypatch):
    scheduler, clock = scheduler_on_a_fake_clock(monkeypatch, {"a": CountingView()})
    scheduler.offer(object())
    assert scheduler.tick()
    starts = []
    for k in range(20):  # the event loop was blocked for a second, then ticks again
        clock.t = 11.0 + k * TICK_S
        scheduler.offer(object())
        if scheduler.tick():
            starts.append(clock.t)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert starts[0] == 11.0 and gaps and min(gaps) >= 1 / 25 - 1e-9
