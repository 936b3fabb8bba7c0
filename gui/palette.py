"""The layer palette: every registered layer type, by category, with a search box.

Generated from ``engine.layers.REGISTRY``: a new LayerSpec shows up here with no
GUI code.  Drag an entry onto the canvas, or double-click it to add it at the
centre of the visible canvas.
"""
from __future__ import annotations

import re

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QColor, QDrag, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QLabel, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from engine.layers import REGISTRY
from engine.spec import LayerSpec
from gui import theme
from gui.mime import LAYER_MIME

TYPE_ROLE = Qt.UserRole + 1


def layer_mime(type_name: str) -> QMimeData:
    """What a palette drag carries (tests build the same thing to simulate a drop)."""
    mime = QMimeData()
    mime.setData(LAYER_MIME, type_name.encode("utf-8"))
    mime.setText(type_name)
    return mime


def swatch(color: QColor, size: int = 12) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(Qt.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.Antialiasing)
    p.setPen(Qt.NoPen)
    p.setBrush(color)
    p.drawRoundedRect(1, 1, size - 2, size - 2, 3, 3)
    p.end()
    return QIcon(pm)


class LayerTree(QTreeWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setHeaderHidden(True)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragOnly)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.setIndentation(12)
        self.setRootIsDecorated(True)
        self.setUniformRowHeights(True)

    def mimeData(self, items) -> QMimeData:
        for item in items:
            type_name = item.data(0, TYPE_ROLE)
            if type_name:
                return layer_mime(type_name)
        return QMimeData()

    def startDrag(self, actions) -> None:
        item = self.currentItem()
        type_name = item.data(0, TYPE_ROLE) if item is not None else None
        if not type_name:
            return
        drag = QDrag(self)
        drag.setMimeData(layer_mime(type_name))
        spec = REGISTRY.get(type_name)
        pm = QPixmap(120, 26)
        pm.fill(Qt.transparent)
        p = QPainter(pm)
        p.setRenderHint(QPainter.Antialiasing)
        p.setBrush(theme.category_color(spec.category))
        p.setPen(Qt.NoPen)
        p.drawRoundedRect(0, 0, 119, 25, 6, 6)
        p.setPen(QColor("#ffffff"))
        p.drawText(pm.rect(), Qt.AlignCenter, type_name)
        p.end()
        drag.setPixmap(pm)
        drag.setHotSpot(pm.rect().center())
        drag.exec(Qt.CopyAction)


def layer_matches(spec: LayerSpec, words: list[str]) -> bool:
    """True if every (lower-case) word is in the layer's name, category or description."""
    hay = f"{spec.type} {spec.category} {spec.description}".lower()
    return all(w in hay for w in words)


def _name_words(type_name: str) -> list[str]:
    """'BatchNorm1d' -> ['batch', 'norm', '1d']; 'SelfAttention' -> ['self', 'attention']."""
    return [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+[a-z]*", type_name)]


def layer_match_rank(spec: LayerSpec, words: list[str]) -> int | None:
    """How well a search matches a layer, best first; None if it does not match at all.

    0 the exact name, 1 a prefix of the name, 2 words that begin words of the name
    ('norm' in BatchNorm1d), 3 a part of the name, 4 the category or description only.
    So "sigmoid" ranks Sigmoid above SiLU, whose description mentions sigmoid.
    """
    if not words:
        return 4
    if not layer_matches(spec, words):
        return None
    name = spec.type.lower()
    joined = "".join(words)
    if name == joined:
        return 0
    if name.startswith(joined):
        return 1
    parts = _name_words(spec.type)
    if all(any(p.startswith(w) for p in parts) for w in words):
        return 2
    if all(w in name for w in words):
        return 3
    return 4


HINT = "Drag a layer onto the canvas, or double-click it. Double-click the canvas to search."
SHORT_PALETTE_PX = 280  # below this height the palette leaves out HINT


class Palette(QWidget):
    """Emits ``addRequested(type)`` on double-click (or Enter)."""

    addRequested = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search layers…")
        self.search.setClearButtonEnabled(True)
        self.tree = LayerTree()
        self.hint = hint = QLabel(HINT)
        hint.setObjectName("Muted")
        hint.setWordWrap(True)
        self.search.setToolTip(HINT)  # still said when a short dock hides the line below the list
        # a lab that offers only some layer types says so above the list
        self.allowed_note = QLabel()
        self.allowed_note.setWordWrap(True)
        self.allowed_note.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        lay.addWidget(self.allowed_note)
        lay.addWidget(self.search)
        lay.addWidget(self.tree, 1)
        lay.addWidget(hint)
        self.allowed: tuple[str, ...] | None = None  # the layer types shown (None: all)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._populate()
        self.search.textChanged.connect(self.filter)
        self.search.returnPressed.connect(self._add_first_visible)
        self.tree.itemDoubleClicked.connect(self._on_double_click)

    def resizeEvent(self, event) -> None:
        # under the Lab panel the dock is short: the list had one row left under the note, the search
        # and this line; the list gets the room, and the line waits for a taller dock
        self.hint.setVisible(event.size().height() >= SHORT_PALETTE_PX)
        super().resizeEvent(event)

    def _populate(self) -> None:
        self.tree.clear()
        self._items.clear()
        for category, specs in REGISTRY.categories().items():
            top = QTreeWidgetItem([category])
            top.setFlags(Qt.ItemIsEnabled)
            f = top.font(0)
            f.setBold(True)
            top.setFont(0, f)
            self.tree.addTopLevelItem(top)
            for spec in specs:
                child = QTreeWidgetItem([spec.type])
                child.setData(0, TYPE_ROLE, spec.type)
                child.setIcon(0, swatch(theme.category_color(spec.category)))
                child.setToolTip(0, self._tooltip(spec))
                child.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable | Qt.ItemIsDragEnabled)
                top.addChild(child)
                self._items[spec.type] = child
            top.setExpanded(True)

    @staticmethod
    def _tooltip(spec: LayerSpec) -> str:
        lines = [f"<b>{spec.type}</b> ({spec.category})", spec.description]
        if spec.params:
            lines.append("<i>Settings:</i> " + ", ".join(p.title for p in spec.params))
        lines.append("Drag onto the canvas, or double-click to add.")
        return "<br>".join(lines)

    def preferred_width(self) -> int:
        """Wide enough for the longest layer name ("AdaptiveAvgPool2d") without eliding it."""
        t = self.tree
        m = self.layout().contentsMargins()
        return (t.sizeHintForColumn(0) + t.verticalScrollBar().sizeHint().width() + 2 * t.frameWidth()
                + m.left() + m.right() + 2)

    def item_for(self, type_name: str) -> QTreeWidgetItem:
        return self._items[type_name]

    def set_allowed(self, types: tuple[str, ...] | None, note: str = "") -> None:
        """Show only ``types`` (None: every layer type), with ``note`` saying why above the list."""
        self.allowed = tuple(types) if types is not None else None
        self.allowed_note.setText(note)
        self.allowed_note.setVisible(bool(note))
        self.filter(self.search.text())

    def filter(self, text: str) -> None:
        words = text.lower().split()
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            any_visible = False
            for j in range(top.childCount()):
                child = top.child(j)
                type_name = child.data(0, TYPE_ROLE)
                visible = ((self.allowed is None or type_name in self.allowed)
                           and layer_matches(REGISTRY.get(type_name), words))
                child.setHidden(not visible)
                any_visible |= visible
            top.setHidden(not any_visible)
            if words and any_visible:
                top.setExpanded(True)
        best = self.best_match()  # highlighted: what Enter adds
        self.tree.setCurrentItem(self._items[best] if best and words else None)

    def visible_types(self) -> list[str]:
        return [t for t, item in self._items.items() if not item.isHidden() and not item.parent().isHidden()]

    def best_match(self) -> str | None:
        """The shown layer that best matches the search (as quick add ranks them), or None."""
        words = self.search.text().lower().split()
        ranked = [(layer_match_rank(REGISTRY.get(t), words), i, t) for i, t in enumerate(self.visible_types())]
        ranked = [r for r in ranked if r[0] is not None]
        return min(ranked)[2] if ranked else None

    def _add_first_visible(self) -> None:
        best = self.best_match()
        if best:
            self.addRequested.emit(best)

    def _on_double_click(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        type_name = item.data(0, TYPE_ROLE)
        if type_name:
            self.addRequested.emit(type_name)
