"""The window paints on its own thread: Qt's painting helper threads would run on the training core."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Paints a large fill and image draw (what Qt splits over its thread pool), then lists the
# process's threads.
PAINT_AND_LIST_THREADS = """
import os, sys
from PySide6.QtGui import QColor, QImage, QPainter
if sys.argv[1] == "layerlab":
    from gui.app import create_application
    app = create_application(["t"])
else:
    from PySide6.QtWidgets import QApplication
    app = QApplication(["t"])
img = QImage(2000, 2000, QImage.Format_ARGB32_Premultiplied)
p = QPainter(img)
for i in range(3):
    p.fillRect(0, 0, 2000, 2000, QColor(20 * i, 10, 10, 128))
    p.drawImage(0, 0, img.scaled(1000, 1000))
p.end()
print(sum(open(f"/proc/self/task/{t}/comm").read().strip() == "Thread (pooled)" for t in os.listdir("/proc/self/task")))
"""


def _pooled_threads(how: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "QT_NO_GUI_THREADPOOL"}
    env.update(QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", PAINT_AND_LIST_THREADS, how], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads are listed from /proc (Linux)")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="with one core Qt paints on one thread anyway")
def test_the_application_paints_without_qts_helper_threads():
    assert _pooled_threads("plain") > 0  # Qt left alone spreads this painting over helper threads
    assert _pooled_threads("layerlab") == 0
