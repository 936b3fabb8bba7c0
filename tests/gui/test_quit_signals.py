"""Quit signals: Ctrl+C closes the window as its close button does; SIGTERM keeps unsaved work.

Before, Ctrl+C in the terminal did nothing (Python's handler waited for a Python slot that never
came), and SIGTERM ended the process on the spot: unsaved edits gone, the training process's
semaphores reported leaked."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals, /proc")

from engine.project import load_project  # noqa: E402
from gui.autosave import find_recoverable  # noqa: E402
from gui.commands import SetParamCommand  # noqa: E402
from gui.quit_signals import QuitSignals  # noqa: E402

from tests.gui.test_editor import close_for_good, dlg, window  # noqa: E402,F401 - fixtures

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def signals(window):
    quits: list[int] = []
    handler = QuitSignals(window, quit=quits.append)
    handler.quits = quits
    yield handler
    handler.uninstall()


def _edit(window) -> dict:
    doc = window.document
    doc.push(SetParamCommand(doc, doc.graph.node_by_name("fc2").id, "units", 17))
    doc.flush()
    return doc.graph.to_dict()


def test_sigterm_keeps_unsaved_work_for_the_next_start_and_quits(qtbot, window, signals):
    edited = _edit(window)
    os.kill(os.getpid(), signal.SIGTERM)
    qtbot.waitUntil(lambda: signals.quits == [0], timeout=5000)
    assert not window.isVisible()
    found = find_recoverable(window.autosaver.folder)
    assert [r.path for r in found] == [window.autosaver.path]  # kept, and offered as a dead session's
    assert load_project(found[0].path).graph.to_dict() == edited


def test_sigterm_with_nothing_unsaved_leaves_no_recovery_file(qtbot, window, signals):
    os.kill(os.getpid(), signal.SIGTERM)
    qtbot.waitUntil(lambda: signals.quits == [0], timeout=5000)
    assert not window.isVisible() and not find_recoverable(window.autosaver.folder)


def test_ctrl_c_asks_about_unsaved_work_and_cancel_keeps_the_app(qtbot, window, dlg, signals):
    _edit(window)
    dlg.save_changes = "cancel"
    os.kill(os.getpid(), signal.SIGINT)
    qtbot.waitUntil(lambda: any(q.startswith("save ") for q in dlg.questions), timeout=5000)
    qtbot.wait(50)
    assert window.isVisible() and signals.quits == []  # as the close button: Cancel keeps it open
    dlg.save_changes = "discard"
    os.kill(os.getpid(), signal.SIGINT)  # asks again, and this time it closes
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    assert not find_recoverable(window.autosaver.folder)  # discarded, as answered


@pytest.mark.parametrize("how", ["SIGTERM to the app", "Ctrl+C in its terminal"])
def test_the_app_quits_cleanly_and_ends_its_training_process(tmp_path, how):
    """A terminal's Ctrl+C reaches the whole process group, the training process included: it
    leaves the decision to the GUI instead of dying with a KeyboardInterrupt of its own."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", LAYERLAB_RECOVERY_DIR=str(tmp_path / "rec"),
               LAYERLAB_CONFIG_DIR=str(tmp_path / "config"), OMP_NUM_THREADS="1")
    app = subprocess.Popen([sys.executable, str(ROOT / "main.py")], cwd=ROOT, env=env, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not _trainer_started(app.pid):
            assert app.poll() is None, app.communicate()
            assert time.monotonic() < deadline, "the training process never started"
            time.sleep(0.2)
        children = _children(app.pid)
        if how == "SIGTERM to the app":
            app.send_signal(signal.SIGTERM)
        else:
            os.killpg(app.pid, signal.SIGINT)  # the new session's group: the app and its children
        _, err = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
    assert app.returncode == 0, err
    assert ("LayerLab: quit on SIGTERM." in err) == (how == "SIGTERM to the app")
    assert "leaked" not in err and "Traceback" not in err, err
    time.sleep(0.5)
    assert not [c for c in children if _alive(c)]  # the training process and its helpers are gone


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc: Linux)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def _trainer_started(pid: int) -> bool:
    """The training process is spawned once torch has loaded, after the window (and its quit
    signals) are up."""
    for child in _children(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    return True
        except OSError:
            pass
    return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
