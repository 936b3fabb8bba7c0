"""Weights files: safetensors, and PyTorch ``.pt`` / ``.pth`` files that hold a state dict.

A ``.pt`` file is a pickle, and unpickling can run any code the file names.  So the file's pickle
is first *read* (``pickletools``, which decodes opcodes and runs nothing) to list the Python objects
it would build; a file that names anything beyond tensors and plain containers is refused with a
sentence (a whole pickled model, or worse), and only then is it loaded, with
``torch.load(weights_only=True)``, which refuses such files too.
"""
from __future__ import annotations

import io
import pickletools
import re
import zipfile
from pathlib import Path

from engine.importers.fx_import import ImportRefused, WeightsWithoutModel

MAX_WEIGHTS_BYTES = 8 << 30
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")

#: what a plain state dict's pickle may name: tensor rebuilders, storages, dtypes and ordered dicts
_SAFE_PREFIXES = ("torch._utils._rebuild_", "torch.serialization._get_layout", "collections.OrderedDict",
                  "torch.device", "torch.Size", "torch._tensor._rebuild_from_type_v2", "torch.Tensor",
                  "torch.nn.parameter.Parameter", "builtins.set", "__builtin__.set", "builtins.slice", "torch.float", "torch.bfloat16",
                  "torch.int", "torch.uint8", "torch.bool", "torch.long", "torch.half", "torch.double")
_CODE_RUNNERS = ("os.", "posix.", "nt.", "subprocess.", "builtins.exec", "builtins.eval", "builtins.open",
                 "builtins.__import__", "builtins.getattr", "builtins.compile", "shutil.", "sys.", "socket.",
                 "importlib.", "runpy.", "pty.", "webbrowser.", "codecs.", "io.", "pathlib.")

HOW_TO_SAVE = ("In the code that made it, save the weights alone with torch.save(model.state_dict(), 'weights.pt') "
               "(or safetensors), then import the model's .py file with --weights weights.pt.")


def _pickle_bytes(raw: bytes, name: str = "This file") -> list[bytes]:
    """The pickle streams of a torch.save file (zip: its data.pkl; legacy: the leading pickles)."""
    if raw[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as z:
                names = [n for n in z.namelist() if n.endswith("data.pkl") or n.endswith(".pkl")]
                for n in names:
                    if z.getinfo(n).file_size > 1 << 30:
                        raise ImportRefused(f"{name}: the pickle inside it is implausibly large ({n}).")
                return [z.read(n) for n in names]
        except zipfile.BadZipFile:
            raise ImportRefused(f"{name} looks like a zip archive but is damaged (cut short, or not a torch.save file).") from None
    return [raw]


def pickle_globals(raw: bytes, name: str = "This file") -> list[str]:
    """Every ``module.name`` the file's pickles would import when unpickled - read, never run."""
    found: list[str] = []
    for data in _pickle_bytes(raw, name):
        stream = io.BytesIO(data)
        for _ in range(8):  # legacy torch.save writes a few pickles in a row
            if stream.tell() >= len(data):
                break
            strings: list[str] = []
            try:
                for opcode, arg, _pos in pickletools.genops(stream):
                    if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8",
                                       "SHORT_BINSTRING", "BINSTRING", "STRING"):
                        strings.append(str(arg))
                    elif opcode.name == "GLOBAL":
                        found.append(str(arg).replace(" ", "."))
                    elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.append(f"{strings[-2]}.{strings[-1]}")
                    elif opcode.name == "INST":
                        found.append(str(arg).replace(" ", "."))
                    if opcode.name == "STOP":
                        break
            except Exception:
                break  # the rest is raw tensor data (legacy format) or garbage; what was read counts
    return found


def check_pickle(path: Path, raw: bytes) -> None:
    """Refuse, with a sentence, a pickle that would build more than tensors and containers."""
    names = pickle_globals(raw, path.name)
    unsafe = [n for n in names if not n.startswith(_SAFE_PREFIXES)
              and not (n.startswith("torch.") and n.endswith("Storage"))]
    if not unsafe:
        return
    runs = [n for n in unsafe if n.startswith(_CODE_RUNNERS)]
    if runs:
        raise ImportRefused(f"{path.name} is a pickle that would run code when loaded (it calls {runs[0]}); "
                            "LayerLab never unpickles such files, and nothing in it was run.",
                            "only open files you trust, and ask for the weights as a state dict or safetensors")
    modules = sorted({n for n in unsafe})
    raise ImportRefused(f"{path.name} holds a whole pickled model ({', '.join(modules[:3])}"
                        f"{'...' if len(modules) > 3 else ''}); unpickling it would run code from the file, "
                        "so LayerLab does not load it.", HOW_TO_SAVE)


def read_bounded(path: Path) -> bytes:
    """The file's bytes, after checking its size."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImportRefused(f"{path}: cannot be read ({exc.strerror}).") from None
    if size > MAX_WEIGHTS_BYTES:
        raise ImportRefused(f"{path.name} is {size / 2**30:.1f} GiB, more than LayerLab loads as weights.")
    return path.read_bytes()


def load_state_dict(path: str | Path) -> dict:
    """A state dict (name -> tensor) from a safetensors file or a state-dict ``.pt``; anything else is refused."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ImportRefused(f"{path}: no such file.")
    raw = read_bounded(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load

        try:
            return dict(load(raw))
        except Exception:
            raise ImportRefused(f"{path.name} is not a valid safetensors file.") from None
    check_pickle(path, raw)
    if raw[:4] != b"PK\x03\x04" and raw[:1] != b"\x80":  # a zip archive, or a legacy torch.save pickle
        raise ImportRefused(f"{path.name} is not a file torch.save wrote (it is neither a zip archive nor a pickle).")
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's own text is a paragraph about the weights_only default; its reason is one line of it
        reason = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(exc))
        why = f" ({reason.group(1).strip().rstrip('.')[:120]})" if reason else ""
        raise ImportRefused(f"{path.name} is damaged or is not a state dict: torch.load(weights_only=True) "
                            f"cannot read it{why}.", HOW_TO_SAVE) from None
    for key in ("state_dict", "model_state_dict", "model"):  # common checkpoint layouts
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ImportRefused(f"{path.name} does not hold a state dict (names -> tensors).", HOW_TO_SAVE)
    return {str(k): v for k, v in obj.items()}


def is_torchscript(raw: bytes) -> bool:
    """Whether the bytes are a ``torch.jit.save`` archive (its code/ folder and constants.pkl)."""
    if raw[:4] != b"PK\x03\x04":
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            names = z.namelist()
    except zipfile.BadZipFile:
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def refuse_pickle_model_file(path: Path) -> None:
    """A .pt given as the model itself: a whole pickled model (refused), or a state dict without its architecture."""
    raw = read_bounded(path)
    if is_torchscript(raw):  # LayerLab's own TorchScript export among them: "save a state_dict" was no help
        raise ImportRefused(f"{path.name} is a TorchScript file (torch.jit.save): compiled code, which LayerLab "
                            "does not turn back into a graph.",
                            "import the model's .py file, its ONNX or safetensors export, or its exported package")
    check_pickle(path, raw)
    load_state_dict(path)  # a state dict, or a sentence why not
    raise WeightsWithoutModel(f"{path.name} holds weights (a state dict) but not the network they belong to.",
                              f"import the model's .py file with --weights {path.name}")
