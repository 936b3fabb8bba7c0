"""Light and dark themes: a Qt palette, a small style sheet and the canvas colours.

Canvas items read their colours from ``current()`` when they paint; switching the
theme calls the registered listeners (the canvas refreshes its cached pens).
The choice is stored in the settings under ``ui/theme``.
"""
from __future__ import annotations

import sys

import colorsys
import hashlib
import weakref
from dataclasses import dataclass
from importlib import resources
from typing import Callable

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

from gui.recent import app_settings

THEMES = ("light", "dark")


@dataclass(frozen=True)
class Theme:
    name: str
    window: str
    base: str
    alt_base: str
    text: str
    subtext: str
    button: str
    highlight: str
    canvas: str
    grid_minor: str
    grid_major: str
    node_fill: str
    node_border: str
    node_text: str
    node_subtext: str
    badge_fill: str
    badge_text: str
    edge: str
    edge_hover: str
    selection: str
    error: str
    warning: str
    ok: str
    port_fill: str
    hint_text: str

    def color(self, name: str) -> QColor:
        return QColor(getattr(self, name))


LIGHT = Theme(
    name="light", window="#f3f4f6", base="#ffffff", alt_base="#f6f8fa", text="#1f2328", subtext="#59636e",
    button="#f6f8fa", highlight="#2f6fde",
    canvas="#f7f8fa", grid_minor="#f0f1f4", grid_major="#e4e7eb",
    node_fill="#ffffff", node_border="#c3c9d1", node_text="#1f2328", node_subtext="#59636e",
    badge_fill="#eaf0f8", badge_text="#1d4f91",
    edge="#8d96a3", edge_hover="#2f6fde", selection="#2f6fde", error="#d1242f", warning="#b7791f", ok="#1a7f37",
    port_fill="#ffffff", hint_text="#8a939e",
)

DARK = Theme(
    name="dark", window="#22262d", base="#1b1e23", alt_base="#262a31", text="#e3e6ea", subtext="#9aa4b1",
    button="#2c313a", highlight="#4c8dff",
    canvas="#1c1f24", grid_minor="#202329", grid_major="#272b32",
    node_fill="#2a2f37", node_border="#444c58", node_text="#e8eaed", node_subtext="#a2acb9",
    badge_fill="#1f3552", badge_text="#9cc4ff",
    edge="#7c8796", edge_hover="#6aa5ff", selection="#5c9dff", error="#ff5d5d", warning="#e0a63a", ok="#4cc26a",
    port_fill="#1c1f24", hint_text="#6f7986",
)

_BY_NAME = {"light": LIGHT, "dark": DARK}
_current: Theme = LIGHT
_listeners: list = []  # weak references to callables

# Category colours: fixed for the built-in categories so screenshots and docs agree;
# a category a new layer spec introduces gets a stable colour from its name.
CATEGORY_COLORS = {
    "Input / Output": "#6b7280",
    "Core": "#3b82f6",
    "Convolution": "#8b5cf6",
    "Pooling": "#14b8a6",
    "Normalization": "#f59e0b",
    "Activation": "#22c55e",
    "Regularization": "#ec4899",
    "Shape": "#64748b",
    "Recurrent": "#f97316",
    "Attention": "#e11d48",
    "Merge": "#06b6d4",
    "Embedding": "#a16207",
}


def category_color(category: str) -> QColor:
    known = CATEGORY_COLORS.get(category)
    if known:
        return QColor(known)
    h = int(hashlib.md5(category.encode()).hexdigest()[:6], 16) / 0xFFFFFF
    r, g, b = colorsys.hls_to_rgb(h, 0.5, 0.6)
    return QColor.fromRgbF(r, g, b)


def current() -> Theme:
    return _current


def add_listener(fn: Callable[[Theme], None]) -> Callable[[], None]:
    """Call ``fn(theme)`` after each switch.  Bound methods are held weakly, so a closed
    window's widgets do not linger (or get called after Qt deleted them)."""
    ref = weakref.WeakMethod(fn) if hasattr(fn, "__self__") else (lambda: fn)
    _listeners.append(ref)
    return lambda: _listeners.remove(ref) if ref in _listeners else None


def _notify(t: Theme) -> None:
    for ref in list(_listeners):
        fn = ref()
        if fn is None:
            _listeners.remove(ref)
            continue
        try:
            fn(t)
        except RuntimeError as exc:  # the C++ side of a widget is gone
            if "already deleted" not in str(exc):
                raise
            _listeners.remove(ref)


def _palette(t: Theme) -> QPalette:
    p = QPalette()
    c = QColor
    p.setColor(QPalette.Window, c(t.window))
    p.setColor(QPalette.WindowText, c(t.text))
    p.setColor(QPalette.Base, c(t.base))
    p.setColor(QPalette.AlternateBase, c(t.alt_base))
    p.setColor(QPalette.Text, c(t.text))
    p.setColor(QPalette.PlaceholderText, c(t.subtext))
    p.setColor(QPalette.Button, c(t.button))
    p.setColor(QPalette.ButtonText, c(t.text))
    p.setColor(QPalette.ToolTipBase, c(t.base))
    p.setColor(QPalette.ToolTipText, c(t.text))
    p.setColor(QPalette.Highlight, c(t.highlight))
    p.setColor(QPalette.HighlightedText, c("#ffffff"))
    p.setColor(QPalette.Link, c(t.highlight))
    p.setColor(QPalette.BrightText, c(t.error))
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, c(t.subtext))
    return p


def style_sheet(name: str) -> str:
    try:
        return resources.files("resources").joinpath("themes", f"{name}.qss").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return ""


def apply_theme(name: str, app: QApplication | None = None, persist: bool = True) -> Theme:
    """Switch the whole application to the named theme ('light' or 'dark')."""
    global _current
    theme = _BY_NAME.get(name, LIGHT)
    app = app or QApplication.instance()
    # Re-applying a style sheet re-polishes every widget in the app: skip it when nothing changes.
    if app is not None and app.property("layerlab_theme") != theme.name:
        app.setProperty("layerlab_theme", theme.name)
        if "Fusion" in QStyleFactory.keys():
            app.setStyle("Fusion")
        app.setPalette(_palette(theme))
        app.setStyleSheet(style_sheet(theme.name))
    _current = theme
    if "pyqtgraph" in sys.modules:  # the plots' own defaults; importing pyqtgraph for this would cost 0.5 s at start-up
        configure_plots(theme)
    if persist:
        s = app_settings()
        s.setValue("ui/theme", theme.name)
        s.sync()
    _notify(theme)
    return theme


def configure_plots(theme: Theme | None = None) -> None:
    """pyqtgraph's defaults for new plots in the current theme (gui/views calls it when it imports pyqtgraph)."""
    import pyqtgraph as pg

    theme = theme or current()
    pg.setConfigOptions(background=theme.base, foreground=theme.subtext, antialias=True)


def saved_theme_name() -> str:
    name = app_settings().value("ui/theme", "light")
    return name if name in THEMES else "light"
