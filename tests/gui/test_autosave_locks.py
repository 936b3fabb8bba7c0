"""Recovery locks of sessions that died before their first autosave do not pile up."""
from __future__ import annotations

import os
import subprocess
import sys

from PySide6.QtCore import QLockFile

from gui.autosave import PREFIX, find_recoverable

# A session that takes its lock and is killed (os._exit: no cleanup), as a crash or a kill would.
DIE_HOLDING_A_LOCK = """
import os, sys
from PySide6.QtCore import QLockFile
lock = QLockFile(sys.argv[1])
lock.setStaleLockTime(0)
assert lock.tryLock(0)
os._exit(0)
"""


def test_a_dead_sessions_lock_is_removed_and_a_live_one_kept(tmp_path):
    dead = tmp_path / f"{PREFIX}1-dead.lock"
    subprocess.run([sys.executable, "-c", DIE_HOLDING_A_LOCK, str(dead)], check=True, timeout=60)
    assert dead.exists()  # nothing removed it when its process died
    live = QLockFile(str(tmp_path / f"{PREFIX}2-live.lock"))
    live.setStaleLockTime(0)
    assert live.tryLock(0)
    try:
        assert find_recoverable(str(tmp_path)) == []
        assert not dead.exists()
        assert os.path.exists(tmp_path / f"{PREFIX}2-live.lock")  # a running LayerLab's
    finally:
        live.unlock()
