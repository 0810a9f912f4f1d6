"""Token-length histogram with the max_length line, and the padding cost of each strategy."""

from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

STRATEGY_WORDS = {"longest": "pad to the longest row of each batch", "multiple": "longest, rounded up to a multiple",
                  "max_length": "pad every row to max length", "packing": "pack rows together, no padding"}


class LengthHistogramWidget(QWidget):
    """Shows a :class:`studio.core.stats.DatasetStats`: histogram, numbers and a waste table."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("lengthPanel")
        self.plot = self.bars = self.cut_line = None
        self.numbers = QLabel(self)
        self.numbers.setObjectName("lengthStatsLabel")
        self.numbers.setAccessibleName("Length statistics")
        self.numbers.setWordWrap(True)
        self.table = QTableWidget(0, 4, self)
        self.table.setObjectName("wasteTable")
        self.table.setAccessibleName("Padding waste per strategy")
        self.table.setHorizontalHeaderLabels(["Strategy", "Padding share", "Pad tokens", "Batches"])
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.NoSelection)
        right = QVBoxLayout()
        right.addWidget(self.numbers)
        right.addWidget(self.table, 1)
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.addLayout(right, 2)
        self.stats = None

    def _make_plot(self) -> None:
        """Create the plot on first use: importing pyqtgraph at start-up would delay the first paint."""
        if self.plot is not None:
            return
        import pyqtgraph as pg

        self.plot = pg.PlotWidget(self, background="w")
        self.plot.setObjectName("lengthHistogram")
        self.plot.setAccessibleName("Histogram of token lengths")
        self.plot.setLabel("bottom", "tokens per sequence")
        self.plot.setLabel("left", "sequences")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.bars = pg.BarGraphItem(x0=[], x1=[], height=[], brush="#93c5fd", pen="#3b82f6")
        self.plot.addItem(self.bars)
        self.cut_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#dc2626", width=2), label="max length",
                                        labelOpts={"color": "#dc2626", "position": 0.9})
        self.plot.addItem(self.cut_line)
        self._row.insertWidget(0, self.plot, 3)

    def clear(self) -> None:
        """Show no statistics (none stand for the current data and settings)."""
        self.stats = None
        if self.bars is not None:
            self.bars.setOpts(x0=[], x1=[], height=[])
        self.numbers.setText("")
        self.table.setRowCount(0)

    def set_stats(self, stats, strategy: str) -> None:
        """Draw the statistics; the row of the strategy in use is highlighted."""
        self.stats = stats
        self._make_plot()
        bins = stats.histogram
        self.bars.setOpts(x0=[b.lo for b in bins], x1=[b.hi for b in bins], height=[b.count for b in bins])
        self.cut_line.setValue(stats.max_length)
        top = max((b.hi for b in bins), default=stats.max_length)
        self.plot.setXRange(0, max(top, stats.max_length) * 1.05, padding=0)
        self.numbers.setText(_numbers_text(stats))
        self._fill_table(stats.waste, strategy)

    def _fill_table(self, waste: list, strategy: str) -> None:
        self.table.setRowCount(len(waste))
        for r, w in enumerate(waste):
            cells = [w.strategy + (" (in use)" if w.strategy == strategy else ""), f"{100 * w.share:.1f} %",
                     f"{w.pad_tokens:,}", str(w.batches)]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(STRATEGY_WORDS.get(w.strategy, ""))
                if w.strategy == strategy:
                    item.setBackground(QColor("#dbeafe"))
                self.table.setItem(r, c, item)


def _numbers_text(stats) -> str:
    t, p = stats.truncation, stats.percentiles
    pct = " · ".join(f"{k}: {v}" for k, v in p.items())
    kind = " (each preference row is two sequences)" if stats.sequences_per_row == 2 else ""
    return (f"{stats.sequences} sequences{kind}, mean {stats.mean:.0f} tokens. {pct}.\n"
            f"At max length {stats.max_length}: {100 * t.share:.1f} % of sequences truncated, "
            f"{100 * t.lost_share:.1f} % of loss tokens lost.\n"
            f"Suggested max length: {stats.recommended_max_length}"
            + (f" (model context {stats.context_length})." if stats.context_length else "."))
