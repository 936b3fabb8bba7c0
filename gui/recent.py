"""Application settings and the recent-files list.

Settings live in QSettings ("LayerLab"/"LayerLab").  Tests and portable setups
point ``LAYERLAB_CONFIG_DIR`` at a folder to keep an INI file there instead.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QSettings

MAX_RECENT = 8
_KEY = "recent/files"


def app_settings() -> QSettings:
    folder = os.environ.get("LAYERLAB_CONFIG_DIR")
    if folder:
        return QSettings(os.path.join(folder, "layerlab.ini"), QSettings.IniFormat)
    return QSettings("LayerLab", "LayerLab")


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value]


def recent_files() -> list[str]:
    """Most recent first; files that no longer exist are dropped."""
    return [p for p in _as_list(app_settings().value(_KEY)) if os.path.exists(p)][:MAX_RECENT]


def add_recent_file(path: str) -> list[str]:
    path = os.path.abspath(path)
    files = [path] + [p for p in recent_files() if os.path.abspath(p) != path]
    s = app_settings()
    s.setValue(_KEY, files[:MAX_RECENT])
    s.sync()
    return files[:MAX_RECENT]


def clear_recent_files() -> None:
    s = app_settings()
    s.remove(_KEY)
    s.sync()
