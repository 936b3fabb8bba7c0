"""Atomic file writes: readers see the old file or the new one, never half of one.

Every file LayerLab writes for a user (projects, run outputs, checkpoints, exports) goes
through ``atomic_write``: write a temp file in the target's folder, flush and fsync it, give it
the mode of the file it replaces, rename it over the target, fsync the folder (so the rename
itself survives a power cut).  Temp files are named ``.<name>.<random>.tmp``; one a killed save
left behind is removed by the next save of the same file (``remove_stale_temps``).
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Callable

TEMP_SUFFIX = ".tmp"


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Delete temp files an interrupted save of ``path`` left beside it; returns how many."""
    path = Path(path)
    n = 0
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return 0
    prefix = _temp_prefix(path)
    for entry in entries:
        if entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX):
            try:
                entry.unlink()
                n += 1
            except OSError:
                pass
    return n


def fsync_folder(folder: str | os.PathLike) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows, where folders cannot be opened; the rename is atomic anyway
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """``write(temp_path)`` fills a temp file that then replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # what a plain open() would have given a new file
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    return atomic_write(path, write)
