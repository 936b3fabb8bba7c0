"""``layerlab import``: open a model file as an editable LayerLab project.

(The module is ``import_`` because ``import`` is a Python keyword; the command is ``import``.)
"""
from __future__ import annotations

from pathlib import Path

from engine.cli_support import EXIT_OK, BadInput, check_output_file

HELP = "import a model (.py, .onnx, .safetensors, or an exported package) as a LayerLab project"


def shape_arg(text: str) -> tuple[int, ...]:
    import argparse

    try:
        shape = tuple(int(v) for v in text.replace("(", "").replace(")", "").replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 1,28,28, got {text!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise argparse.ArgumentTypeError(f"expected positive sizes like 1,28,28, got {text!r}")
    return shape


def add_arguments(p) -> None:
    p.add_argument("file", help="a .py file defining an nn.Module, an .onnx file, a LayerLab .safetensors "
                                "export, or an exported package (folder or .zip)")
    p.add_argument("--out", required=True, help="the project to write (.layerlab)")
    p.add_argument("--class", dest="class_name", help="the nn.Module class in the .py file")
    p.add_argument("--input-shape", type=shape_arg, help="the shape of one input sample, e.g. 1,28,28")
    p.add_argument("--weights", help="weights for the .py model: .safetensors or a state-dict .pt/.pth")


_FLAGS = {"class_name": "--class", "input_shape": "--input-shape", "weights": "--weights"}


def refuse_unread_options(args, source: Path) -> None:
    """``import model.onnx --weights w.pt`` imported the ONNX file's own weights and said nothing."""
    from engine.importers import OPTIONS_READ, file_kind

    kind = file_kind(source)
    if not source.exists() or kind not in ("py", "package", "onnx", "safetensors"):
        return  # import_model says what is wrong with the file itself
    unread = [flag for key, flag in _FLAGS.items()
              if getattr(args, key) is not None and key not in OPTIONS_READ.get(kind, set())]
    if unread:
        what = {"package": "an exported package carries its model class and input shape",
                "onnx": "an ONNX file carries its own graph and weights",
                "safetensors": "a LayerLab .safetensors export carries its own graph, input shape and weights"}
        reason = what[kind]
        raise BadInput(f"{' and '.join(unread)} cannot be used to import {source.name}: {reason}. "
                       "Leave them out.")


def run(args) -> int:
    from engine.importers import TRUST_WARNING, import_model
    from engine.project import save_project

    out = Path(args.out)
    if out.suffix.lower() not in (".layerlab", ".json"):
        raise BadInput(f"--out {out}: give a project path ending in .layerlab.")
    source = Path(args.file)
    refuse_unread_options(args, source)
    from engine.importers import file_kind

    runs_code = file_kind(source) in ("py", "package")
    if runs_code:  # said before the file runs (on stdout: stderr is kept for the one error line)
        print(f"note: {TRUST_WARNING}", flush=True)
    check_output_file(out)
    result = import_model(source, class_name=args.class_name, input_shape=args.input_shape, weights=args.weights)
    if out.suffix.lower() == ".json" and result.project.weights:  # a JSON project has no place for them
        raise BadInput(f"--out {out}: a .json project holds no weights, and this model has them; "
                       f"give a path ending in .layerlab ({out.with_suffix('.layerlab').name}).")
    save_project(out, result.project)
    print(result.summary())
    print(f"Saved {out}")
    return EXIT_OK
