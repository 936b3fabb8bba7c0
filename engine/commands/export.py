"""``layerlab export``: write a project's model as ONNX, .pt2, safetensors, TorchScript or a PyTorch package."""
from __future__ import annotations

from engine.cli_support import EXIT_OK, BadInput, project_base_dir, resolve_project

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
    from engine.export.target import check_export_target

    check_export_target(args.out, args.format, args.project)


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
