"""``layerlab export``: write a project's model as ONNX, .pt2, safetensors, TorchScript or a PyTorch package."""
from __future__ import annotations

from engine.cli_support import EXIT_OK, BadInput, check_output_file, project_base_dir, resolve_project

HELP = "export a project's model (onnx, pt2, safetensors, torchscript, or a python package)"
FORMAT_NAMES = ("onnx", "pt2", "safetensors", "torchscript", "python")


def add_arguments(p) -> None:
    p.add_argument("project", help="a .layerlab bundle or .json project, or a starter's name")
    p.add_argument("--format", required=True, choices=FORMAT_NAMES,
                   help="onnx | pt2 (inference only) | safetensors | torchscript (legacy) | python (a folder or .zip)")
    p.add_argument("--out", required=True, help="the file to write (python: a folder, or a path ending in .zip)")
    p.add_argument("--epoch", type=int, help="export the weights the timeline kept for this epoch "
                                             "(default: the current weights)")


def check_out(args) -> None:
    """Refuse, before any work, an --out that would overwrite the project being exported, a file
    named for another format (an ONNX model in x.pt2 reads as a broken .pt2), or a place that
    cannot be written."""
    from pathlib import Path

    from engine.atomic import existing_folder_of
    from engine.export import FORMATS

    out = Path(args.out)
    source = Path(args.project) if args.project else None
    if source is not None and source.exists() and out.exists() and out.resolve() == source.resolve():
        raise BadInput(f"--out {out}: is the project being exported; choose another file.")
    if args.format == "python":  # a folder or a .zip: the exporter checks what is there
        other = {f.suffix for f in FORMATS.values() if f.suffix}
        if out.suffix.lower() in other:  # --out x.onnx had made a folder named x.onnx
            raise BadInput(f"--out {out}: a PyTorch package is a folder or a .zip, not a {out.suffix} file; "
                           f"name it {out.with_suffix('').name} or {out.with_suffix('.zip').name}.")
        check_can_write(out, existing_folder_of(out.parent if str(out.parent) else Path(".")))
        return
    suffix = FORMATS[args.format].suffix
    if out.suffix.lower() != suffix:
        raise BadInput(f"--out {out}: {FORMATS[args.format].title} files end in {suffix}; "
                       f"name it {out.with_suffix(suffix).name}.")
    check_output_file(out)
    check_can_write(out, out.parent if str(out.parent) else Path("."))


def check_can_write(out, folder) -> None:
    """Refuse a folder where no file can be created, before the free-space check: /proc has 0 bytes
    free, and "--out /proc/m.onnx: the disk has 0.0 MB free" sent the user to free space.  A real
    try, since permission bits do not tell (root passes os.access everywhere, /proc included)."""
    import os
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=folder)  # named as a stale save
    except OSError as e:
        raise BadInput(f"--out {out}: cannot write in {folder}: creating a file there failed "
                       f"({(e.strerror or str(e)).lower()}); choose another folder.") from None
    os.close(fd)
    os.unlink(probe)


#: an export's size against its weights': the graph and metadata on top (ONNX, .pt2), a package's data
ROOM_FACTOR, ROOM_SLACK = 2.0, 4 << 20


def check_room(out: str, project) -> None:
    """Refuse before any work when the disk cannot hold the export: on a full disk .pt2 aborted
    inside torch's C++ (exit 134), and ONNX fell back to its legacy exporter before failing."""
    from pathlib import Path

    from engine.atomic import room_shortfall

    weights = sum(t.numel() * t.element_size() for t in (project.weights or {}).values())
    short = room_shortfall(Path(out).parent, int(ROOM_FACTOR * weights) + ROOM_SLACK, "this export")
    if short:
        raise BadInput(f"--out {out}: {short}; free some space or choose another folder.")


def run(args) -> int:
    from engine.export import export_project

    if args.epoch is not None and args.epoch < 0:
        raise BadInput(f"--epoch must be 0 or more, got {args.epoch}.")
    check_out(args)
    project = resolve_project(args.project)
    check_room(args.out, project)
    result = export_project(project, args.format, args.out, epoch=args.epoch,
                            base_dir=project_base_dir(args.project))
    print(result.summary())  # the exporter's own chatter (result.log) is not the user's business here
    return EXIT_OK
