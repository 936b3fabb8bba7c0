"""The engine is headless: it never imports Qt or pyqtgraph (DESIGN.md, "Layers of the house").

Two checks: importing every engine module in a fresh interpreter leaves no Qt module in
sys.modules (catches indirect imports too), and no engine source file has an import
statement naming a GUI package (catches imports hidden inside functions).
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / "engine"
FORBIDDEN = ("PySide6", "shiboken6", "pyqtgraph", "PyQt5", "PyQt6", "PySide2")

_PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[1])
    forbidden = tuple(sys.argv[2].split(","))

    import engine

    # Every module: pkgutil for packages, plus a file walk for sub-folders that
    # have no __init__.py (pkgutil skips those, Python still imports them).
    names = {"engine"}
    names.update(m.name for m in pkgutil.walk_packages(engine.__path__, "engine."))
    root = Path(sys.argv[1])
    for path in (root / "engine").rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if all(p.isidentifier() for p in parts):
            names.add(".".join(parts))
    # __main__ modules would run a CLI on import.
    names = sorted(n for n in names if n.rsplit(".", 1)[-1] != "__main__")

    errors = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"

    loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
    print(json.dumps({"modules": names, "errors": errors, "loaded": loaded}))
    """
)


def _run_probe() -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(REPO), ",".join(FORBIDDEN)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"engine import probe crashed:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probe() -> dict:
    return _run_probe()


def test_engine_modules_import(probe):
    assert "engine" in probe["modules"]
    assert not probe["errors"], "engine modules failed to import:\n" + "\n".join(
        f"  {name}: {err}" for name, err in probe["errors"].items()
    )


def test_importing_engine_loads_no_qt(probe):
    assert not probe["loaded"], (
        "importing the engine pulled in GUI modules (the engine must stay headless; "
        f"move that code to gui/): {probe['loaded']}"
    )


def _forbidden_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0]
            if fname in ("import_module", "__import__") and isinstance(arg, ast.Constant) \
                    and isinstance(arg.value, str):
                names = [arg.value]
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    return found


def test_engine_source_has_no_gui_imports():
    files = sorted(ENGINE.rglob("*.py"))
    assert files, "engine/ has no Python files"
    found = [hit for path in files for hit in _forbidden_imports(path)]
    assert not found, "GUI imports in engine/ (the engine must stay headless):\n" + "\n".join(found)
