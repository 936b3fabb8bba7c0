"""What every headless command shares: exit statuses, the bad-input error, argument types,
finding the project a command names, the crash log, and the progress printer."""
from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import math
import os
import sys
import time
import traceback
from pathlib import Path

from engine.errors import LayerLabError, quote

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class BadInput(LayerLabError):
    """A bad command-line value."""

    kind = "bad_input"


def int_in(low: int, high: int):
    """An argparse type: a whole number in ``low..high`` (a 400-digit number is refused, not used)."""
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {quote(text)}") from None
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:,} and {high:,}, got {quote(v)}")
        return v
    return parse


def positive_int(text):
    from engine.limits import MAX_EPOCHS

    return int_in(1, MAX_EPOCHS)(text)


def non_negative_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {v}")
    return v


def positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {quote(text)}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {quote(text)}")
    return v


@contextlib.contextmanager
def bad_input_about(source: str | None):
    """Everything a command checks before it starts work (the project, its settings, its data, its
    graph, the device) is input: any LayerLabError raised inside becomes BadInput (exit 2), its
    sentence led by the file it is about."""
    try:
        yield
    except BadInput:
        raise
    except LayerLabError as err:
        message = str(err)
        if source and not message.startswith((str(source), str(Path(source)))):
            message = f"{source}: {message}"
        raise BadInput(message) from None


def unknown_command_message(word: str) -> str:
    """The sentence for ``python main.py WORD`` when WORD is neither a command nor a project file."""
    from engine.commands import COMMAND_NAMES

    close = difflib.get_close_matches(word, COMMAND_NAMES, n=1, cutoff=0.6)
    commands = ", ".join(COMMAND_NAMES)
    looks_like_path = os.sep in word or "/" in word or bool(Path(word).suffix)
    if looks_like_path and not close:
        kind = ("it is a folder" if os.path.isdir(word) else
                "not a regular file" if os.path.exists(word) else "no such file")
        what = f"{quote(word, 60)} is not a project file ({kind})"
    else:
        what = f"{quote(word, 60)} is neither a command nor a project file"
    hint = f"; did you mean '{close[0]}'?" if close else "."
    return (f"layerlab: {what}{hint} The commands are: {commands} (python main.py COMMAND --help), "
            "or python main.py PROJECT opens a project in the app.")


# ----------------------------------------------------------------------------- files the system refused
def os_error_sentence(exc: OSError) -> str:
    """One line for a file the system would not read or write: a read-only or missing folder, a full
    disk, a folder where a file was meant.  A temp file of an atomic write stands for its folder
    (its random name means nothing to a person)."""
    from engine.atomic import TEMP_SUFFIX

    name = exc.filename
    reason = (exc.strerror or type(exc).__name__).lower()
    if exc.errno == errno.ENOSPC:
        reason = "the disk is full"
    if name is None:
        return f"a file could not be written or read: {reason}."
    base = os.path.basename(str(name))
    if base.startswith(".") and TEMP_SUFFIX in base:
        return f"cannot write in {quote(os.path.dirname(str(name)) or '.', 200)}: {reason}."
    return f"cannot use {quote(str(name), 200)}: {reason}."


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Before any work: ``path`` can be written as a file (its folder exists and is writable, and it
    is not a folder), so that a read-only folder or a typo fails at once, not after the work."""
    out = Path(path)
    if out.is_dir():
        raise BadInput(f"{flag} {out}: is a folder; give a file name.")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise BadInput(f"{flag} {out}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise BadInput(f"{flag} {out}: cannot write in {folder} (read-only or no permission).")
    return out


class PipeSafeStdout:
    """Standard output that outlives its reader: after ``| head`` closes the pipe, a command goes on
    and finishes its work (a run is saved, a CSV written) instead of failing on its next line of
    progress.  Further output is dropped, and fd 1 goes to /dev/null so that Python's own flush at
    exit does not fail either."""

    def __init__(self, stream):
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.reader_gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # not a real file (a test's capture): nothing to redirect
            pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


# ----------------------------------------------------------------------------- internal errors
ENV_LOG_DIR = "LAYERLAB_LOG_DIR"


def log_dir() -> Path:
    """Where crash logs go: LAYERLAB_LOG_DIR, else the user's state folder (XDG_STATE_HOME or
    ~/.local/state on Linux, ~/Library/Logs on macOS, %LOCALAPPDATA% on Windows) + layerlab/logs."""
    if os.environ.get(ENV_LOG_DIR):
        return Path(os.environ[ENV_LOG_DIR])
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "LayerLab" / "logs"
    if sys.platform == "darwin":
        return home / "Library" / "Logs" / "LayerLab"
    return Path(os.environ.get("XDG_STATE_HOME") or home / ".local" / "state") / "layerlab" / "logs"


def write_crash_log(exc: BaseException, argv: list[str]) -> Path | None:
    """Write the traceback of an internal error to a new file in ``log_dir()`` (or the temp folder
    if that cannot be written); returns its path, or None if no log could be written."""
    import tempfile

    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = (f"LayerLab internal error, {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
            f"command: layerlab {' '.join(map(str, argv))}\npython: {sys.version.split()[0]} on {sys.platform}\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    for folder in (log_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"layerlab-crash-{stamp}-{os.getpid()}.log"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # tracebacks show local paths
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            return path
        except OSError:
            continue
    return None


def resolve_project(name: str | None):
    """The project a command names: a file, a bundled starter's name, or (None) the default starter."""
    from engine.project import load_project, load_starter

    if name is None:
        return load_starter()
    p = Path(name)
    if not p.exists() and not p.suffix:
        return load_starter(name)  # a bundled starter named on the command line
    return load_project(p)


def project_base_dir(name: str | None) -> str | None:
    """The folder relative data paths in the project ``name`` are taken from (its own folder)."""
    if name is None:
        return None
    p = Path(name)
    return str(p.resolve().parent) if p.exists() else None


class ProgressPrinter:
    """A one-line progress bar on stderr plus one metrics line per epoch on stdout."""

    def __init__(self, stream_out, stream_err, total_epochs: int, epoch_offset: int = 0):
        self.out, self.err, self.total_epochs = stream_out, stream_err, total_epochs
        self.epoch_offset = epoch_offset  # a run that continues another counts on from its epochs
        self.tty = stream_err.isatty()
        self._last_draw = 0.0

    def __call__(self, event) -> None:
        from engine.events import EpochEnd, Progress

        if isinstance(event, Progress) and self.tty:
            now = time.perf_counter()
            if now - self._last_draw < 0.1:
                return
            self._last_draw = now
            frac = event.step / max(event.total_steps, 1)
            bar = "#" * int(30 * frac)
            self.err.write(f"\r[{bar:<30}] {100 * frac:5.1f}%  loss {event.train_loss:.4f}  "
                           f"{event.samples_per_s:,.0f} samples/s  ETA {event.eta_s:5.1f}s ")
            self.err.flush()
        elif isinstance(event, EpochEnd):
            if self.tty:
                self.err.write("\r" + " " * 90 + "\r")
            m = event.metrics
            off = self.epoch_offset  # EpochEnd.epoch is 1-based
            parts = [f"epoch {event.epoch + off}/{self.total_epochs + off}"]
            for key in ("train_loss", "val_loss", "val_accuracy", "val_mse"):
                if key in m and m[key] is not None:
                    parts.append(f"{key} {m[key]:.4f}")
            self.out.write("  ".join(parts) + "\n")
            self.out.flush()
