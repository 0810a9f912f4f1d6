"""A collated batch drawn as a grid: one strip per sequence, with its attention mask and position ids.

Each token is a cell coloured like the token chips; under it a thin strip shows the attention
mask (dark = attended, light = masked padding) and a row of position ids (numbers when the
cells are wide enough; a boundary line where packed rows restart at 0). Hover for details.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRect, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QToolTip, QWidget

from studio.gui.widgets.token_model import TokenChip
from studio.gui.widgets.token_view import CUT_COLOUR, LOSS_BORDER, chip_colour

_LABEL_W, _TOKEN_H, _MASK_H, _POS_H, _ROW_GAP = 64, 16, 7, 13, 10
_MAX_CELL, _MIN_CELL = 26, 2


class BatchGridWidget(QWidget):
    """Paints the rows of a :class:`~studio.gui.widgets.token_model.BatchView`."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("batchView")
        self.setAccessibleName("Collated batch with attention mask and position ids")
        self.setMouseTracking(True)
        self.rows: list[list[TokenChip]] = []
        self._top_pos = 1

    def set_rows(self, rows: list[list[TokenChip]]) -> None:
        self.rows = rows
        self.setMinimumHeight(self._height())
        self.updateGeometry()
        self.update()

    def _height(self) -> int:
        return len(self.rows) * (_TOKEN_H + _MASK_H + _POS_H + _ROW_GAP) + 4

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        return QSize(600, max(self._height(), 40))

    def _cell_width(self) -> float:
        widest = max((len(r) for r in self.rows), default=1)
        return max(_MIN_CELL, min(_MAX_CELL, (self.width() - _LABEL_W - 8) / max(widest, 1)))

    def _top(self, r: int) -> int:
        return 2 + r * (_TOKEN_H + _MASK_H + _POS_H + _ROW_GAP)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        cw = self._cell_width()
        for r, row in enumerate(self.rows):
            top = self._top(r)
            self._top_pos = max((c.position_id or 0 for c in row), default=0) or 1
            p.setPen(QColor("#52606d"))
            p.drawText(QRect(0, top, _LABEL_W - 6, _TOKEN_H), Qt.AlignRight | Qt.AlignVCenter, f"seq {r + 1}")
            p.drawText(QRect(0, top + _TOKEN_H + _MASK_H, _LABEL_W - 6, _POS_H), Qt.AlignRight | Qt.AlignVCenter,
                       "pos")
            for i, chip in enumerate(row):
                self._paint_cell(p, chip, _LABEL_W + i * cw, top, cw)
        p.end()

    def _paint_cell(self, p: QPainter, chip: TokenChip, x: float, top: int, cw: float) -> None:
        w = max(int(cw) - (1 if cw >= 4 else 0), 1)
        cell = QRect(int(x), top, w, _TOKEN_H)
        p.fillRect(cell, chip_colour(chip))
        if chip.loss:
            p.fillRect(QRect(int(x), top + _TOKEN_H - 3, w, 3), QColor(LOSS_BORDER))
        mask_colour = "#334e68" if chip.attention else "#d9e2ec"
        p.fillRect(QRect(int(x), top + _TOKEN_H + 1, w, _MASK_H - 2), QColor(mask_colour))
        pos_rect = QRect(int(x), top + _TOKEN_H + _MASK_H, w, _POS_H)
        if chip.position_id == 0 and chip.position > 0 and not chip.pad:
            p.setPen(QPen(QColor(CUT_COLOUR), 2))
            p.drawLine(int(x) - 1, top, int(x) - 1, top + _TOKEN_H + _MASK_H + _POS_H)
        if chip.position_id is None:
            return
        if cw >= 18:
            p.setPen(QColor("#52606d"))
            p.drawText(pos_rect, Qt.AlignCenter, str(chip.position_id))
        else:
            # Too narrow for numbers: a ramp whose height is the position id shows where it restarts.
            h = max(1, round((_POS_H - 2) * chip.position_id / self._top_pos))
            p.fillRect(QRect(int(x), pos_rect.bottom() - h, w, h), QColor("#9fb3c8"))

    def chip_at(self, pos) -> TokenChip | None:
        cw = self._cell_width()
        for r, row in enumerate(self.rows):
            top = self._top(r)
            if top <= pos.y() < top + _TOKEN_H + _MASK_H + _POS_H:
                i = int((pos.x() - _LABEL_W) // cw)
                return row[i] if 0 <= i < len(row) and pos.x() >= _LABEL_W else None
        return None

    def event(self, event) -> bool:
        if event.type() == QEvent.ToolTip:
            chip = self.chip_at(event.pos())
            if chip is not None:
                QToolTip.showText(event.globalPos(), chip.tooltip(), self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)
