"""Autosave to a recovery file, and recovery after a crash.

Every minute, if the document changed since the last autosave, the project is
written (atomically) to ``recovery-<pid>.layerlab`` in the recovery folder, next to a
small ``.json`` note (original path, time).  A ``QLockFile`` held while the app runs
marks the file as belonging to a live session.  A clean exit removes all three.
At the next start, a recovery file whose lock is free (its session died) is offered.

The folder is ``$LAYERLAB_RECOVERY_DIR`` if set (tests), else
``QStandardPaths.AppDataLocation/recovery``.
"""
from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass

from PySide6.QtCore import QLockFile, QObject, QStandardPaths, QTimer, Signal

from engine.errors import LayerLabError
from engine.project import load_project, project_bytes, atomic_write_bytes

INTERVAL_MS = 60_000
PREFIX = "recovery-"


def recovery_dir() -> str:
    folder = os.environ.get("LAYERLAB_RECOVERY_DIR")
    if not folder:
        base = QStandardPaths.writableLocation(QStandardPaths.AppDataLocation) or os.path.expanduser("~/.layerlab")
        folder = os.path.join(base, "recovery")
    os.makedirs(folder, exist_ok=True)
    return folder


@dataclass(frozen=True)
class Recoverable:
    path: str  # the recovery bundle
    original_path: str | None  # the file the user was editing, if it had one
    name: str
    saved_at: float

    @property
    def meta_path(self) -> str:
        return self.path[: -len(".layerlab")] + ".json"

    @property
    def lock_path(self) -> str:
        return self.path[: -len(".layerlab")] + ".lock"

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved_at))
        where = f" ({self.original_path})" if self.original_path else ""
        return f"“{self.name}”{where}, autosaved {when}"

    def discard(self) -> None:
        for p in (self.path, self.meta_path, self.lock_path):
            try:
                os.remove(p)
            except OSError:
                pass


def _release_if_abandoned(lock_path: str) -> bool:
    """Whether no running LayerLab holds ``lock_path``; if none does, the lock file is deleted
    (taken and released) - a dead session's lock is never left behind."""
    lock = QLockFile(lock_path)
    lock.setStaleLockTime(0)
    if not lock.tryLock(0):
        return False
    lock.unlock()  # removes the file
    return True


def _remove_orphan_locks(folder: str) -> None:
    """Delete the locks of sessions that ended without a clean exit.  Those killed before their
    first autosave have no recovery file, so nothing else ever removed them, and a lab machine
    collected one for every window closed that way.  A running session's lock is kept; a
    recovery file is still offered without its lock."""
    for lock_path in glob.glob(os.path.join(folder, f"{PREFIX}*.lock")):
        _release_if_abandoned(lock_path)


def find_recoverable(folder: str | None = None) -> list[Recoverable]:
    """Recovery files left by sessions that did not exit cleanly, newest first."""
    folder = folder or recovery_dir()
    _remove_orphan_locks(folder)
    found = []
    for path in glob.glob(os.path.join(folder, f"{PREFIX}*.layerlab")):
        stem = path[: -len(".layerlab")]
        if not _release_if_abandoned(stem + ".lock"):
            continue  # a running LayerLab owns it
        meta = {}
        try:
            with open(stem + ".json", encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            pass
        found.append(Recoverable(path=path, original_path=meta.get("path") or None,
                                 name=str(meta.get("name") or "Untitled"),
                                 saved_at=float(meta.get("saved_at") or os.path.getmtime(path))))
    return sorted(found, key=lambda r: r.saved_at, reverse=True)


class Autosaver(QObject):
    saved = Signal(str)
    failed = Signal(str)

    def __init__(self, doc, interval_ms: int = INTERVAL_MS, folder: str | None = None, parent=None):
        super().__init__(parent)
        self.doc = doc
        self.folder = folder or recovery_dir()
        stem = os.path.join(self.folder, f"{PREFIX}{os.getpid()}-{id(self):x}")
        self.path = stem + ".layerlab"
        self.meta_path = stem + ".json"
        self.lock = QLockFile(stem + ".lock")
        self.lock.setStaleLockTime(0)
        self.lock.tryLock(0)
        self._generation = 0
        self._saved_generation = 0
        doc.graphChanged.connect(self._bump)
        doc.datasetChanged.connect(self._bump)
        doc.weightsChanged.connect(self._bump)
        doc.trainingConfigChanged.connect(self._bump)
        doc.projectReplaced.connect(self._on_replaced)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.save_if_needed)
        self.timer.start()

    def _bump(self, *_args) -> None:
        self._generation += 1

    def _on_replaced(self) -> None:
        self._generation += 1
        self._saved_generation = self._generation  # a freshly opened file is its own backup
        if not self.doc.is_modified():
            self.remove_file()

    def save_if_needed(self) -> bool:
        if self._generation == self._saved_generation or not self.doc.is_modified():
            return False
        return self.save_now()

    def save_now(self) -> bool:
        """Write the recovery file now; returns False (and emits ``failed``) on an error."""
        try:
            atomic_write_bytes(self.path, project_bytes(self.doc.snapshot()))
            meta = {"path": self.doc.path, "name": self.doc.display_name, "saved_at": time.time(), "pid": os.getpid()}
            atomic_write_bytes(self.meta_path, json.dumps(meta).encode())
        except (OSError, LayerLabError) as exc:
            self.failed.emit(f"Autosave failed: {exc}")
            return False
        self._saved_generation = self._generation
        self.saved.emit(self.path)
        return True

    def adopt(self, recoverable: Recoverable) -> None:
        """Take over a recovered file as this session's recovery file (so a second crash keeps it)."""
        try:
            os.replace(recoverable.path, self.path)
        except OSError:
            pass
        recoverable.discard()

    def remove_file(self) -> None:
        for p in (self.path, self.meta_path):
            try:
                os.remove(p)
            except OSError:
                pass

    def shutdown(self, keep_file: bool = False) -> None:
        """Exit: the lock goes away, and the recovery file too unless ``keep_file`` (a quit that
        could not ask about unsaved work: the next start offers it)."""
        self.timer.stop()
        if not keep_file:
            self.remove_file()
        self.lock.unlock()


def load_recovered(recoverable: Recoverable):
    return load_project(recoverable.path)
