"""Atomic file writes: readers see the old file or the new one, never half of one.

Every file LayerLab writes for a user (projects, run outputs, checkpoints, exports) goes
through ``atomic_write``: write a temp file in the target's folder, flush and fsync it, give it
the mode of the file it replaces, rename it over the target, fsync the folder (so the rename
itself survives a power cut).  Temp files are named ``.<name>.<random>.tmp`` (or ``...tmp<suffix>``
for writers that insist on the target's suffix); one a killed save left behind is removed by the
next save of the same file (``remove_stale_temps``).
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Callable

TEMP_SUFFIX = ".tmp"


def existing_folder_of(path: str | os.PathLike) -> Path:
    """The nearest existing path at or above ``path``: where a write into it lands on disk."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def room_shortfall(path: str | os.PathLike, need_bytes: int, purpose: str) -> str | None:
    """None when the disk that would hold ``path`` has ``need_bytes`` free, else a clause saying it has not
    ("the disk has 3.0 MB free, but <purpose> needs about 9.0 MB")."""
    import shutil

    free = shutil.disk_usage(existing_folder_of(path)).free
    if free >= need_bytes:
        return None
    return f"the disk has {free / 2**20:.1f} MB free, but {purpose} needs about {need_bytes / 2**20:.1f} MB"


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
        if entry.name.startswith(prefix) and entry.name.endswith((TEMP_SUFFIX, TEMP_SUFFIX + path.suffix)):
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


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], keep_suffix: bool = False) -> Path:
    """``write(temp_path)`` fills a temp file that then replaces ``path`` atomically.

    ``keep_suffix``: the temp file's name ends in ``path``'s suffix too (``torch.export.save``
    wants ``.pt2``, ``torch.onnx.export`` picks its format by the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    suffix = TEMP_SUFFIX + path.suffix if keep_suffix else TEMP_SUFFIX
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=suffix, dir=path.parent)
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


# ----------------------------------------------------------------------------- whole folders
_RENAME_EXCHANGE = 2


def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the system
    cannot (the caller falls back to two renames)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _fsync_tree(folder: Path) -> None:
    for entry in folder.rglob("*"):
        if entry.is_file():
            with open(entry, "rb") as f:
                os.fsync(f.fileno())
    for sub in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        fsync_folder(sub)


def _recover_folder(target: Path) -> None:
    """Undo what an interrupted ``write_folder_atomically`` left: staging folders are deleted; if
    it died between its two fallback renames, the old folder goes back in place."""
    import shutil

    prefix = f".{target.name}."
    for entry in list(target.parent.iterdir()) if target.parent.is_dir() else []:
        if not entry.name.startswith(prefix):
            continue
        if ".old-" in entry.name and entry.is_dir() and not target.exists():
            os.replace(entry, target)
        elif (".staging-" in entry.name or ".old-" in entry.name) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def write_folder_atomically(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Replace the files ``write(folder)`` writes in ``target`` as one unit: a reader sees all the
    old ones or all the new ones, never a mix (the model of one save beside the metrics of another).

    ``write`` fills a staging folder beside ``target``; entries of ``target`` it did not write are
    carried over (hard links where possible) with their modes, files it rewrites keep the modes
    they had; then the two folders are exchanged atomically and the old one is removed.  Where the
    system cannot exchange, two renames are used and the next call repairs a crash between them."""
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover_folder(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        write(staging)
        if target.is_dir():
            for entry in target.iterdir():
                dest = staging / entry.name
                if dest.exists():
                    if entry.is_file():
                        os.chmod(dest, stat.S_IMODE(os.stat(entry).st_mode))
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, dest, copy_function=_link_or_copy)
                else:
                    _link_or_copy(entry, dest)
        os.chmod(staging, stat.S_IMODE(os.stat(target).st_mode) if target.is_dir() else 0o777 & ~_umask())
        _fsync_tree(staging)
        if not target.exists():
            os.replace(staging, target)
        elif exchange_paths(staging, target):
            shutil.rmtree(staging, ignore_errors=True)  # the old contents, now under the staging name
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.rmdir(old)
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_folder(target.parent)
    return target


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _link_or_copy(src, dst) -> None:
    import shutil

    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
