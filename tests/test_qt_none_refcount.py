"""Regression guard for PySide6 6.12.0 on CPython 3.11.

6.12.0 loses one reference to None on every Qt call that returns void.  None's count
reaches zero after a few thousand calls and the interpreter aborts with
"Fatal Python error: none_dealloc", i.e. LayerLab crashes seconds after start.
6.11.3 is clean, hence the pin PySide6-Essentials<6.12 (pyproject.toml, requirements.txt).

The loop runs in a child interpreter so that a crash shows up as a failed test
instead of killing the whole pytest session.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

CALLS = 100_000

_LOOP = textwrap.dedent(
    """
    import sys
    from PySide6.QtWidgets import QApplication, QWidget
    from PySide6.QtCore import QObject

    app = QApplication([])
    obj = QObject()
    widget = QWidget()
    calls = int(sys.argv[1])

    # Warm up so that lazily created caches do not count as a change.
    for _ in range(100):
        obj.setObjectName("x")
        widget.setToolTip("t")

    before = sys.getrefcount(None)
    for _ in range(calls):
        obj.setObjectName("x")      # QObject::setObjectName -> void
        widget.setToolTip("t")      # QWidget::setToolTip -> void
    after = sys.getrefcount(None)
    print(before, after)
    """
)


def test_void_qt_calls_keep_none_refcount():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-c", _LOOP, str(CALLS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, (
        f"the void-call loop crashed (exit {proc.returncode}); PySide6 6.12.0 does this "
        f"with 'Fatal Python error: none_dealloc':\n{proc.stderr[-2000:]}"
    )
    before, after = map(int, proc.stdout.split()[-2:])
    # A few references may come and go with caches; a leak loses 2 * CALLS.
    assert after >= before - 100, (
        f"sys.getrefcount(None) fell from {before} to {after} over {2 * CALLS} void Qt calls: "
        "this PySide6 build leaks references to None (the 6.12.0 bug) and will crash LayerLab"
    )


def test_pyside6_version_is_below_6_12():
    import PySide6
    assert tuple(PySide6.__version_info__[:2]) < (6, 12), (
        f"PySide6 {PySide6.__version__} is installed; LayerLab needs < 6.12 because 6.12.0 "
        "on CPython 3.11 loses a reference to None on every void Qt call and aborts with "
        "'Fatal Python error: none_dealloc'. Install the pin: pip install -r requirements.txt"
    )
