"""A Python file that defines an ``nn.Module`` class -> an instance of it, ready to trace (or, in a
file that defines no class, the module it builds: ``model = nn.Sequential(...)``).

IMPORTING A .py FILE RUNS IT: its top-level code and the class's ``__init__`` execute with this
user's rights (that is what defining the class takes).  The CLI and the GUI say so before they do
it: only import files you trust.  Project files are never .py files and never run code.
"""
from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
import uuid
from pathlib import Path

from engine.importers.fx_import import OWN_CLASSES, ImportRefused, NeedsClassName, where_in_source

TRUST_WARNING = "Importing a .py file runs it; only import files you trust."


def load_file(path: Path):
    """Execute ``path`` as a module of its own (its folder on sys.path meanwhile, for its own imports)."""
    name = f"_layerlab_import_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportRefused(f"{path} cannot be loaded as a Python file.")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent.resolve())
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ImportRefused(f"{path.name} line {exc.lineno}: invalid Python ({exc.msg}).") from None
    except BaseException as exc:  # the file's own code failed (a missing import, an exception...)
        frames = [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImportRefused(f"{where_in_source(frames, str(path))} failed while the file ran: "
                            f"{type(exc).__name__}: {text}.") from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def module_classes(module) -> list[type]:
    """The nn.Module subclasses the file itself defines (not the ones it imports), in file order."""
    from torch import nn

    found = [c for c in vars(module).values()
             if inspect.isclass(c) and issubclass(c, nn.Module) and c.__module__ == module.__name__]
    return sorted(found, key=lambda c: inspect.getsourcelines(c)[1] if _has_source(c) else 0)


def _has_source(cls) -> bool:
    try:
        inspect.getsourcelines(cls)
        return True
    except (OSError, TypeError):
        return False


def choose_class(path: Path, module, class_name: str | None) -> type:
    classes = module_classes(module)
    names = [c.__name__ for c in classes]
    if class_name:
        cls = getattr(module, class_name, None)
        if cls is None or cls not in classes:
            listed = ", ".join(names) or "none"
            raise NeedsClassName(f"{path.name} defines no nn.Module class named '{class_name}' (it defines: {listed}).")
        return cls
    candidates = [c for c in classes if c.__name__ not in OWN_CLASSES]
    # the model is the class no other class in the file uses as a layer
    used = {type(m).__name__ for c in candidates for m in _probe_children(c)}
    roots = [c for c in candidates if c.__name__ not in used]
    if len(roots) == 1:
        return roots[0]
    if not candidates:
        raise ImportRefused(f"{path.name} defines no nn.Module class, and builds no module at top level.",
                            "define the model as a class, or build it in the file, e.g. model = nn.Sequential(...)")
    raise NeedsClassName(f"{path.name} defines several nn.Module classes ({', '.join(c.__name__ for c in candidates)}); "
                         "say which one is the model.", "give --class NAME")


def module_instances(module) -> dict:
    """The nn.Module instances the file builds at top level (``model = nn.Sequential(...)``), by
    variable name, less those that are parts of another one (``body`` in ``nn.Sequential(body, ...)``)."""
    from torch import nn

    found = {name: v for name, v in vars(module).items() if isinstance(v, nn.Module) and not name.startswith("_")}
    parts = {id(m) for v in found.values() for m in list(v.modules())[1:]}
    roots, seen = {}, set()
    for name, v in found.items():
        if id(v) not in parts and id(v) not in seen:  # `net = model = ...`: one model under two names
            roots[name] = v
            seen.add(id(v))
    return roots


def choose_model(path: Path, module, class_name: str | None) -> tuple:
    """(the model, the name it goes by): an instance of the file's model class, or, in a file that
    defines no class, the module it builds at top level."""
    instances = module_instances(module) if not module_classes(module) else {}
    if class_name and class_name in instances:
        return instances[class_name], class_name
    if not instances or class_name:
        cls = choose_class(path, module, class_name)
        return instantiate(path, cls), cls.__name__
    if len(instances) > 1:
        raise NeedsClassName(f"{path.name} defines no nn.Module class, and builds several modules at top level "
                             f"({', '.join(instances)}); say which one is the model.", "give --class with its variable's name")
    (name, model), = instances.items()
    return model, name


def _probe_children(cls) -> list:
    try:
        return list(cls().modules())[1:]
    except Exception:
        return []


def instantiate(path: Path, cls: type):
    try:
        return cls()
    except TypeError as exc:
        raise ImportRefused(f"{path.name}: the class {cls.__name__} cannot be created without arguments ({exc}).",
                            "give its constructor arguments default values") from None
    except Exception as exc:
        frames = [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]
        raise ImportRefused(f"{where_in_source(frames, str(path))}: creating {cls.__name__}() failed: "
                            f"{type(exc).__name__}: {exc}.") from None


def input_shape_of(module_file, model, given: tuple | None) -> tuple | None:
    """The per-sample input shape: given, or declared by the file (INPUT_SHAPE, as LayerLab's model.py
    does, or the class's ``input_shape``), or that of a first Linear layer."""
    from torch import nn

    if given:
        return tuple(int(s) for s in given)
    for holder in (model, module_file):
        declared = getattr(holder, "input_shape", None) or getattr(holder, "INPUT_SHAPE", None)
        if isinstance(declared, (tuple, list)) and declared and all(isinstance(s, int) for s in declared):
            return tuple(declared)
    first = next((m for m in model.modules() if not list(m.children())), None)
    if isinstance(first, nn.Linear) and first.in_features > 0:  # a LazyLinear says 0 until it has run
        return (first.in_features,)
    return None
