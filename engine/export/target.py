"""Where an export may go: refused before any work when it would overwrite the project being
exported, is named for another format, or lies where no file can be created.  The command line
(``--out``) and the app's Export dialog ("Save to") ask the same questions."""
from __future__ import annotations

from engine.cli_support import BadInput, check_output_file


def check_export_target(out, fmt: str, project=None, flag: str = "--out") -> None:
    """Refuse, before any work, an ``out`` that would overwrite the project being exported, a file
    named for another format (an ONNX model in x.pt2 reads as a broken .pt2), or a place that
    cannot be written.  ``flag`` names the field in the sentence (the app's is "Save to")."""
    from pathlib import Path

    from engine.atomic import existing_folder_of
    from engine.export import FORMATS

    out = Path(out)
    source = Path(project) if project else None
    if source is not None and source.exists() and out.exists() and out.resolve() == source.resolve():
        raise BadInput(f"{flag} {out}: is the project being exported; choose another file.")
    if fmt == "python":  # a folder or a .zip: the exporter checks what is there
        other = {f.suffix for f in FORMATS.values() if f.suffix}
        if out.suffix.lower() in other:  # --out x.onnx had made a folder named x.onnx
            raise BadInput(f"{flag} {out}: a PyTorch package is a folder or a .zip, not a {out.suffix} file; "
                           f"name it {out.with_suffix('').name} or {out.with_suffix('.zip').name}.")
        check_can_write(out, existing_folder_of(out.parent if str(out.parent) else Path(".")), flag)
        return
    suffix = FORMATS[fmt].suffix
    if out.suffix.lower() != suffix:
        raise BadInput(f"{flag} {out}: {FORMATS[fmt].title} files end in {suffix}; "
                       f"name it {out.with_suffix(suffix).name}.")
    check_output_file(out, flag)
    check_can_write(out, out.parent if str(out.parent) else Path("."), flag)


def check_can_write(out, folder, flag: str = "--out") -> None:
    """Refuse a folder where no file can be created, before the free-space check: /proc has 0 bytes
    free, and "--out /proc/m.onnx: the disk has 0.0 MB free" sent the user to free space.  A real
    try, since permission bits do not tell (root passes os.access everywhere, /proc included)."""
    import os
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=folder)  # named as a stale save
    except OSError as e:
        raise BadInput(f"{flag} {out}: cannot write in {folder}: creating a file there failed "
                       f"({(e.strerror or str(e)).lower()}); choose another folder.") from None
    os.close(fd)
    os.unlink(probe)
