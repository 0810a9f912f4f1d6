"""Tokens drawn as wrapped chips: roles coloured, loss tokens outlined, padding grey.

The chips are painted, not built from labels, so a row of a few thousand tokens lays out
and repaints quickly. Hovering a chip shows its id, position, label, role, attention mask
and position id. A red bar marks where a row was truncated.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QGridLayout, QLabel, QToolTip, QWidget

from studio.gui.widgets.token_model import TokenChip

ROLE_COLOURS = {
    # system and user far apart in hue (violet and blue were told apart only side by side)
    "system": "#f5d0fe", "user": "#bfdbfe", "assistant": "#dcfce7", "completion": "#dcfce7",
    "prompt": "#dbeafe", "chosen": "#dcfce7", "rejected": "#fee2e2", "text": "#f1f5f9",
    # tool calling: definitions (never trained), the assistant's calls (trained), the tools' results (never)
    "tools": "#fef3c7", "tool_call": "#bbf7d0", "tool": "#ffedd5",
}
SPECIAL_COLOUR = "#fde68a"
PAD_COLOUR = "#eceef1"
LOSS_BORDER = "#15803d"
PLAIN_BORDER = "#cbd2d9"
CUT_COLOUR = "#dc2626"
_PAD_X, _GAP, _MARGIN = 5, 3, 4
LEGEND_COLUMNS = 4


def chip_colour(chip: TokenChip) -> QColor:
    if chip.pad:
        return QColor(PAD_COLOUR)
    if chip.special:
        return QColor(SPECIAL_COLOUR)
    return QColor(ROLE_COLOURS.get(chip.role, "#f1f5f9"))


class TokenChipsWidget(QWidget):
    """Paints a list of :class:`TokenChip` as wrapped boxes.

    Attributes:
        tokens: the chips shown (the widget's token model; tests compare it with the encoder).
        cut_after: index of the chip after which the row was cut (-1: none; -2: cut before
            the first chip, for left truncation).
    """

    def __init__(self, object_name: str = "tokenView", parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setAccessibleName("Tokens of the selected row")
        self.setMouseTracking(True)
        self.tokens: list[TokenChip] = []
        self.cut_after = -1
        self.cut_note = ""
        self._rects: list[QRect] = []
        self._font = QFont(self.font())
        self._font.setFamily("monospace")
        self._font.setStyleHint(QFont.Monospace)
        self._bold = QFont(self._font)
        self._bold.setBold(True)
        self._height = 0

    def set_tokens(self, tokens: list[TokenChip], cut_after: int = -1, cut_note: str = "") -> None:
        self.tokens, self.cut_after, self.cut_note = list(tokens), cut_after, cut_note
        self._relayout(self.width())
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        return QSize(600, max(self._height, 40))

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return self._relayout(width, store=False)

    def resizeEvent(self, event) -> None:  # noqa: N802
        self._relayout(event.size().width())
        super().resizeEvent(event)

    def _relayout(self, width: int, store: bool = True) -> int:
        """Place every chip left to right, wrapping at ``width``; returns the height used."""
        fm, bold = QFontMetrics(self._font), QFontMetrics(self._bold)
        h = fm.height() + 6
        x = y = _MARGIN
        rects = []
        for chip in self.tokens:
            w = (bold if chip.loss else fm).horizontalAdvance(chip.display) + 2 * _PAD_X
            if x + w > width - _MARGIN and x > _MARGIN:
                x, y = _MARGIN, y + h + _GAP
            rects.append(QRect(x, y, w, h))
            x += w + _GAP + (6 if self._cut_between(len(rects) - 1) else 0)
        height = y + h + _MARGIN if rects else 40
        if store:
            self._rects = rects
            if height != self._height:
                self._height = height
                self.setMinimumHeight(height)
                self.updateGeometry()
        return height

    def _cut_between(self, index: int) -> bool:
        return index == self.cut_after

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing, True)
        for chip, rect in zip(self.tokens, self._rects):
            if rect.intersects(event.rect()):
                self._paint_chip(p, chip, rect)
        self._paint_cut(p)
        p.end()

    def _paint_chip(self, p: QPainter, chip: TokenChip, rect: QRect) -> None:
        p.setBrush(chip_colour(chip))
        pen = QPen(QColor(LOSS_BORDER if chip.loss else PLAIN_BORDER), 2 if chip.loss else 1)
        p.setPen(pen)
        p.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 3, 3)
        p.setFont(self._bold if chip.loss else self._font)
        p.setPen(QColor("#9aa5b1" if chip.pad else "#111827"))
        p.drawText(rect, Qt.AlignCenter, chip.display)

    def _paint_cut(self, p: QPainter) -> None:
        if self.cut_after == -1 or not self._rects:
            return
        if self.cut_after == -2:
            r = self._rects[0]
            x = r.left() - 2
        else:
            r = self._rects[min(self.cut_after, len(self._rects) - 1)]
            x = r.right() + 4
        p.setPen(QPen(QColor(CUT_COLOUR), 3))
        p.drawLine(x, r.top() - 2, x, r.bottom() + 2)

    def chip_rect(self, index: int) -> QRect:
        """Where a chip is drawn (empty before layout)."""
        return self._rects[index] if index < len(self._rects) else QRect()

    def chip_at(self, pos) -> int:
        """Index of the chip under a point, or -1."""
        for i, rect in enumerate(self._rects):
            if rect.contains(pos):
                return i
        return -1

    def event(self, event) -> bool:
        if event.type() == QEvent.ToolTip:
            index = self.chip_at(event.pos())
            if index >= 0:
                QToolTip.showText(event.globalPos(), self.tokens[index].tooltip(), self)
            elif self.cut_note:
                QToolTip.showText(event.globalPos(), self.cut_note, self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)


class LegendWidget(QWidget):
    """What the colours and borders of the chips mean."""

    ENTRIES = (
        ("system", TokenChip(0, 0, "sys", -100, "system")),
        ("user", TokenChip(0, 0, "user", -100, "user")),
        ("assistant, no loss", TokenChip(0, 0, "asst", -100, "assistant")),
        ("carries loss (trained on)", TokenChip(0, 0, "loss", 1, "assistant")),
        ("special token", TokenChip(0, 0, "<|…|>", -100, "header", special=True)),
        ("padding", TokenChip(0, 0, "pad", -100, "pad", pad=True)),
    )

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("tokenLegend")
        self.setAccessibleName("Legend of token colours")
        # Two lines of four: in one line the labels were cut at 1024 px ("assistant, r").
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(2)
        for i, (text, chip) in enumerate(self.ENTRIES):
            sample = TokenChipsWidget("legendChip", self)
            sample.setAccessibleName(f"Sample chip: {text}")
            sample.set_tokens([chip])
            sample.setFixedSize(sample.chip_rect(0).right() + _MARGIN + 2, sample.heightForWidth(400))
            grid.addWidget(sample, i // LEGEND_COLUMNS, 2 * (i % LEGEND_COLUMNS))
            grid.addWidget(QLabel(text, self), i // LEGEND_COLUMNS, 2 * (i % LEGEND_COLUMNS) + 1)
        cut = QLabel("▍ cut here (truncated)", self)
        cut.setStyleSheet(f"color: {CUT_COLOUR};")
        last = len(self.ENTRIES)
        grid.addWidget(cut, last // LEGEND_COLUMNS, 2 * (last % LEGEND_COLUMNS), 1, 2)
        grid.setColumnStretch(2 * LEGEND_COLUMNS, 1)
