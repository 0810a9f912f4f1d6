"""A table model over normalised dataset examples (one row per usable dataset row)."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt

from studio.core.conversation import Example

COLUMNS = ("Row", "Kind", "Turns", "System", "First user turn", "Answer")
_SHOWN = 160


def _first(example: Example, role: str) -> str:
    return next((m.content for m in example.messages if m.role == role), "")


def _answer(example: Example) -> str:
    """The text the model learns to write: chosen reply, completion, last assistant turn or the document."""
    if example.text is not None:
        return example.text
    if example.chosen:
        return example.chosen[-1].content
    replies = [m.content for m in example.messages if m.role == "assistant"]
    return replies[-1] if replies else ""


def cell_text(example: Example, column: int) -> str:
    """The full text of one cell."""
    if column == 0:
        return str(example.row)
    if column == 1:
        return example.kind if example.label is None else f"{example.kind}, {'good' if example.label else 'bad'}"
    if column == 2:
        return str(len(example.messages) + (1 if example.chosen else 0))
    if column == 3:
        return _first(example, "system")
    if column == 4:
        return _first(example, "user")
    return _answer(example)


class ExamplesTableModel(QAbstractTableModel):
    """Read-only rows of a DataReport's examples; long text is shortened, the tooltip is whole."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._examples: list[Example] = []

    def set_examples(self, examples: list[Example]) -> None:
        self.beginResetModel()
        self._examples = list(examples)
        self.endResetModel()

    def example(self, index: int) -> Example:
        return self._examples[index]

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 (Qt naming)
        return 0 if parent.isValid() else len(self._examples)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole):
        if not index.isValid():
            return None
        if role in (Qt.DisplayRole, Qt.ToolTipRole):
            text = cell_text(self._examples[index.row()], index.column())
            if role == Qt.ToolTipRole:
                return text if len(text) > _SHOWN else None
            text = " ".join(text.split())
            return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"
        if role == Qt.TextAlignmentRole and index.column() in (0, 2):
            return int(Qt.AlignRight | Qt.AlignVCenter)
        return None

    def headerData(self, section: int, orientation, role: int = Qt.DisplayRole):  # noqa: N802
        if role == Qt.DisplayRole and orientation == Qt.Horizontal:
            return COLUMNS[section]
        return None
