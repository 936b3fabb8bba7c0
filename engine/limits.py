"""LayerLab's one resource policy: how much memory a file, a dataset or a model may make it spend,
which files it opens at all, and the ranges numeric settings must lie in.

Every door that turns bytes from a user's file into memory (project bundles, labs and submissions,
CSV, npz, IDX, image folders, the graph's own weights) asks this module BEFORE it allocates:

- ``memory_limit()``: the bytes one load may spend.  By default half of what the machine has free
  (``MemAvailable``) but at least ``MEMORY_FLOOR``, and never more than half of what the process's
  address-space limit (``ulimit -v``) leaves, which is a hard fact, not an estimate.  The user sets
  it with the environment variable ``LAYERLAB_MAX_MEMORY`` (``2G``, ``512M``, ``1.5GiB``, bytes).
- ``check_memory(nbytes, what)``: refuse a planned allocation with a sentence giving both figures.
- ``check_inflation(inflated, compressed, what)``: refuse a compressed stream (a zip member, a gzip
  file) that inflates like a bomb, i.e. more than ``BOMB_RATIO`` times its compressed size AND more
  than ``BOMB_MIN_BYTES``: no real dataset or model compresses that well at that size.
- ``regular_file`` / ``open_regular``: only regular files are data; devices (``/dev/zero``),
  FIFOs and sockets are refused after an ``os.stat`` and never opened, so opening never blocks.

The figures a check reports are estimates of the peak a load reaches (counting the copies the
loaders make), so they err on the side of refusing a little early rather than swapping.
"""
from __future__ import annotations

import os
import re
import stat
from typing import BinaryIO

from engine.errors import DataError, LayerLabError, LimitExceeded, quote

ENV_MAX_MEMORY = "LAYERLAB_MAX_MEMORY"
#: the share of the free memory (and of the address space left) one load may take
MEMORY_FRACTION = 0.5
#: ... but never less than this, so a busy machine can still open a small project
MEMORY_FLOOR = 256 << 20
#: when the free memory cannot be read (not Linux, no sysconf), assume this much
FALLBACK_AVAILABLE = 4 << 30

#: a compressed stream inflating more than this many times its size ...
BOMB_RATIO = 100
#: ... to more than this many bytes is a bomb (real data: MNIST gzips 4-5x, float weights ~1.1x)
BOMB_MIN_BYTES = 256 << 20

#: a loaded dataset's peak, in float32 copies of its inputs: the loader's array, the train/val/test
#: split copies and the standardised copies (engine/data/dataset.py build_dataset)
DATASET_COPIES = 3

# Ranges of numeric settings, checked where a setting enters (CLI flags, project files) before use.
MAX_SEED = 2**63 - 1  # torch.manual_seed takes a 64-bit seed; numpy's generators take any int >= 0
MAX_EPOCHS = 1_000_000
MAX_BATCH_SIZE = 1 << 24
MAX_THREADS = 256  # more CPU threads than any machine has ends in a native abort under ulimit -v

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


class SettingError(LayerLabError):
    """A LayerLab environment setting (``LAYERLAB_MAX_MEMORY``) has a value it cannot use."""

    kind = "bad_input"


def parse_size(text: str) -> int:
    """``"2G"`` / ``"2GiB"`` / ``"512m"`` / ``"1.5g"`` / ``"1000000"`` -> bytes (K/M/G/T are powers
    of 1024, as in ``ulimit`` and Docker; a ``B`` may follow).  ValueError for anything else."""
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"not a size: {text!r}")
    value = float(m.group(1)) * 1024 ** _UNITS[m.group(2).lower()]
    if value < 1 or value > 2**62:
        raise ValueError(f"size out of range: {text!r}")
    return int(value)


def fmt_bytes(n: int | float) -> str:
    """A byte count for a sentence: ``3.7 TiB``, ``512 MiB``, ``900 bytes``, ``about 10^1233 bytes``."""
    if n >= 1024 ** 5:  # what a lying header declares; float() of such a count may overflow
        return f"about 10^{int(int(n).bit_length() * 0.30103)} bytes"
    n = float(n)
    for unit, power in (("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)):
        if n >= 1024 ** power:
            v = n / 1024 ** power
            return f"{v:,.0f} {unit}" if v >= 100 else f"{v:.1f} {unit}"
    return f"{int(n):,} bytes"


def available_memory() -> int | None:
    """The memory the machine can give without swapping (``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f.read(1 << 16).decode("ascii", "replace").splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def address_space_left() -> int | None:
    """What the process's address-space limit (``ulimit -v``, RLIMIT_AS) still allows, or None."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    used = 0
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f.read(1 << 16).decode("ascii", "replace").splitlines():
                if line.startswith("VmSize:"):
                    used = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return max(0, soft - used)


def memory_limit() -> int:
    """The bytes one load (a file, a dataset, a model) may spend; see the module docstring."""
    limit, _why = _limit_and_reason()
    return limit


def _limit_and_reason() -> tuple[int, str]:
    override = os.environ.get(ENV_MAX_MEMORY, "").strip()
    if override:
        try:
            return parse_size(override), f"{ENV_MAX_MEMORY}={override}"
        except ValueError:
            raise SettingError(f"The environment variable {ENV_MAX_MEMORY} is {override[:24]!r}, which is not "
                               "a size; set it to e.g. 2G or 512M, or unset it.") from None
    free = available_memory()
    limit = max(MEMORY_FLOOR, int(MEMORY_FRACTION * (free if free is not None else FALLBACK_AVAILABLE)))
    why = (f"half of the {fmt_bytes(free)} this machine has free" if free is not None else
           f"half of an assumed {fmt_bytes(FALLBACK_AVAILABLE)}, as the free memory could not be read")
    left = address_space_left()
    if left is not None and MEMORY_FRACTION * left < limit:
        limit, why = int(MEMORY_FRACTION * left), "half of what the process's address-space limit leaves"
    return limit, why


def check_memory(nbytes: int, what: str, fix: str = "use less data") -> None:
    """Refuse (LimitExceeded) a planned allocation of ``nbytes`` for ``what`` ("data/x.idx (60000 x 28
    x 28 values of uint8)") when it exceeds ``memory_limit()``; ``fix`` says what to change."""
    limit, why = _limit_and_reason()
    if nbytes > limit:
        raise LimitExceeded(f"{what} would need {fmt_bytes(nbytes)} of memory, more than LayerLab's limit of "
                            f"{fmt_bytes(limit)} ({why}); {fix}, or raise the limit with "
                            f"{ENV_MAX_MEMORY} if the machine has the memory.")


def check_dataset_memory(n_values: int, what: str, extra_bytes: int = 0) -> None:
    """Refuse a dataset of ``n_values`` input values (samples × values per sample) whose float32
    copies would not fit (see DATASET_COPIES); ``extra_bytes``: what the loader holds besides."""
    check_memory(n_values * 4 * DATASET_COPIES + extra_bytes, what)


def is_bomb(inflated: int, compressed: int) -> bool:
    return inflated > BOMB_MIN_BYTES and inflated > BOMB_RATIO * max(compressed, 1)


def check_inflation(inflated: int, compressed: int, what: str) -> None:
    """Refuse a compressed stream that inflates ``compressed`` bytes to ``inflated`` like a bomb."""
    if is_bomb(inflated, compressed):
        raise LimitExceeded(f"{what} inflates {fmt_bytes(compressed)} to {fmt_bytes(inflated)} (more than "
                            f"{BOMB_RATIO} times); no real data compresses like that, so it is refused as "
                            "a decompression bomb.")


# ----------------------------------------------------------------------------- files
def _kind_of(mode: int) -> str:
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def regular_file(path: str | os.PathLike, error: type[LayerLabError] = DataError,
                 what: str = "file") -> os.stat_result:
    """``os.stat(path)`` if it names a regular file; else ``error`` with a sentence.  Nothing is opened."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise error(f"{os.fspath(path)}: no such file; the {what} was not found there, check its path.") from None
    except PermissionError:
        raise error(f"{os.fspath(path)}: permission denied; LayerLab cannot read this {what}.") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise error(f"{os.fspath(path)!r:.80}: cannot be read ({getattr(e, 'strerror', None) or e}).") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{os.fspath(path)} is a folder; choose the {what} itself.")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{os.fspath(path)} is {_kind_of(st.st_mode)}, not a regular file; LayerLab reads data and "
                    "projects only from regular files.")
    return st


def open_regular(path: str | os.PathLike, error: type[LayerLabError] = DataError,
                 what: str = "file") -> BinaryIO:
    """Open a regular file for reading without ever blocking: stat first (FIFOs and devices are refused
    unopened), open non-blocking, and check the opened file is still that regular file."""
    before = regular_file(path, error, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise error(f"{os.fspath(path)}: cannot be opened ({e.strerror or e}).") from None
    after = os.fstat(fd)
    if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise error(f"{os.fspath(path)} changed while it was being opened; open it again.")
    return os.fdopen(fd, "rb")


def read_regular(path: str | os.PathLike, max_bytes: int, error: type[LayerLabError] = DataError,
                 what: str = "file") -> bytes:
    """The whole content of a regular file of at most ``max_bytes`` (checked before reading, and again
    while reading, for a file that grows)."""
    with open_regular(path, error, what) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise LimitExceeded(f"{os.fspath(path)}: this {what} is {fmt_bytes(size)}, more than the "
                                f"{fmt_bytes(max_bytes)} LayerLab reads for one; use a smaller file.")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise LimitExceeded(f"{os.fspath(path)}: this {what} grew past {fmt_bytes(max_bytes)} while being read.")
    return data


# ----------------------------------------------------------------------------- numbers
def check_int(value, name: str, low: int, high: int, error: type[LayerLabError] = DataError,
              where: str = "") -> int:
    """``value`` as an int in ``low..high`` (a whole float is accepted, a bool is not), else ``error``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{prefix}'{name}' must be a whole number, got {quote(value)}.")
    if not low <= value <= high:
        raise error(f"{prefix}'{name}' must be between {low:,} and {high:,}, got {quote(value)}.")
    return value
