"""Quick add: double-click empty canvas, type a few letters, press Enter - the layer appears there.

A small popup with a search field over the layer catalog (the palette's matching: name,
category or description), best match first: the exact name, then a prefix of the name,
then words of the name, then any part of it, then the description.  Up/Down move through
the matches, Enter or a click adds the highlighted one (at first the best match), Escape
or a click elsewhere closes it.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, Qt, Signal
from PySide6.QtWidgets import QFrame, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from engine.layers import REGISTRY
from gui import theme
from gui.palette import layer_match_rank, swatch


class QuickAdd(QFrame):
    """Emits ``chosen(type)`` and closes when a layer is picked."""

    chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, Qt.Popup)
        self.setFrameShape(QFrame.StyledPanel)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("Add a layer: type to search…")
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)
        self._catalog: list[QListWidgetItem] = []  # catalog order; the list shows them ranked
        self.allowed: tuple[str, ...] | None = None  # a lab's palette (None: every type)
        for specs in REGISTRY.categories().values():
            for spec in specs:
                item = QListWidgetItem(swatch(theme.category_color(spec.category)), f"{spec.type}")
                item.setData(Qt.UserRole, spec.type)
                item.setToolTip(f"{spec.category}: {spec.description}")
                self._catalog.append(item)
                self.list.addItem(item)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(4)
        lay.addWidget(self.edit)
        lay.addWidget(self.list)
        self.resize(240, 300)
        self.edit.textChanged.connect(self.filter)
        self.edit.installEventFilter(self)
        self.list.itemActivated.connect(self._pick)
        self.list.itemClicked.connect(self._pick)
        self.filter("")

    def visible_types(self) -> list[str]:
        return [self.list.item(i).data(Qt.UserRole) for i in range(self.list.count())
                if not self.list.item(i).isHidden()]

    def filter(self, text: str) -> None:
        """Show the matches, best first (ties in catalog order), and highlight the best."""
        words = text.lower().split()
        ranks = [layer_match_rank(REGISTRY.get(item.data(Qt.UserRole)), words)
                 if self.allowed is None or item.data(Qt.UserRole) in self.allowed else None
                 for item in self._catalog]
        order = sorted(range(len(ranks)), key=lambda i: (ranks[i] is None, ranks[i] or 0, i))
        while self.list.count():
            self.list.takeItem(0)
        for i in order:
            self.list.addItem(self._catalog[i])
            self._catalog[i].setHidden(ranks[i] is None)
        first = self.list.item(0)
        self.list.setCurrentItem(first if first is not None and not first.isHidden() else None)
        self.list.scrollToTop()

    def set_allowed(self, types: tuple[str, ...] | None) -> None:
        """Offer only ``types`` (a lab's palette; None: every layer type)."""
        self.allowed = tuple(types) if types is not None else None
        self.edit.setPlaceholderText("This lab adds no layers: change the settings instead" if self.allowed == ()
                                     else "Add a layer: type to search…")
        self.filter(self.edit.text())

    def popup(self, global_pos: QPoint) -> None:
        self.edit.clear()
        self.move(global_pos)
        self.show()
        self.edit.setFocus()

    def eventFilter(self, obj, event) -> bool:
        # the search field keeps the focus; the arrow keys and Enter act on the list
        if obj is self.edit and event.type() == QEvent.KeyPress:
            key = event.key()
            if key in (Qt.Key_Down, Qt.Key_Up):
                self._step(1 if key == Qt.Key_Down else -1)
                return True
            if key in (Qt.Key_Return, Qt.Key_Enter):
                if self.list.currentItem() is not None and not self.list.currentItem().isHidden():
                    self._pick(self.list.currentItem())
                return True
            if key == Qt.Key_Escape:
                self.close()
                return True
        return super().eventFilter(obj, event)

    def _step(self, d: int) -> None:
        rows = [i for i in range(self.list.count()) if not self.list.item(i).isHidden()]
        if not rows:
            return
        cur = self.list.currentRow()
        k = rows.index(cur) + d if cur in rows else 0
        self.list.setCurrentRow(rows[max(0, min(len(rows) - 1, k))])

    def _pick(self, item: QListWidgetItem) -> None:
        type_name = item.data(Qt.UserRole)
        self.close()
        self.chosen.emit(type_name)
