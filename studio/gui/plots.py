"""Live metric plots that stay smooth with a million points.

Points are kept in growing numpy arrays (amortised doubling, no Python lists of floats) and the
curves are redrawn by one timer at a few frames per second, never once per event: a worker can
send thousands of step events per second when a run is replayed from its event log, and a
redraw per event would freeze the window.

A curve is never handed more points than its plot has pixels to show them. Each series keeps,
as points arrive, the minimum and maximum of every aligned block of 8, 16, 32, ... points (a
level-of-detail pyramid, updated only for the new points). A redraw takes the visible part of
the series at the coarsest level that still gives a block per pixel, so every spike stays
visible and the cost of a redraw follows the width of the plot, not the length of the run.
Zooming in far enough hands the curve the raw points themselves.
"""

from __future__ import annotations

import math
import re
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QGridLayout, QWidget

from studio.core.protocol import OBJECTIVE_METRICS

#: Colour-blind friendly palette (Okabe-Ito) for curves and compared runs.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
REDRAW_MS = 250
#: Height of a plot's title row, which also holds its legend.
LEGEND_ROW_PX = 24
#: Shorter legend words where the curve's name is long (the legend shares the title row).
LEGEND_LABELS = {"train (smoothed)": "smoothed", "general text (forgetting)": "general text"}
MAX_REDRAW_MS = 2000
PAINT_SHARE = 8
EMA_ALPHA = 0.2

pg.setConfigOptions(antialias=False, background="w", foreground="#333333")


class SeriesBuffer:
    """An (x, y) series in numpy arrays that grow by doubling, with a min/max pyramid for drawing.

    Example:
        >>> s = SeriesBuffer(capacity=2)
        >>> for i in range(5): s.append(i, i * i)
        >>> s.y.tolist()
        [0.0, 1.0, 4.0, 9.0, 16.0]
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._x = np.empty(capacity, dtype=np.float64)
        self._y = np.empty(capacity, dtype=np.float64)
        self._n = 0
        self._sorted = True
        self._levels: list[_Extremes] = []

    def __len__(self) -> int:
        return self._n

    def append(self, x: float, y: float | None) -> None:
        """Add one point; ``None`` (a NaN the worker wrote as null) becomes a gap in the curve."""
        self._x, self._y = _room(self._x, self._y, self._n + 1)
        if self._n and x < self._x[self._n - 1]:
            self._sorted = False
        self._x[self._n] = x
        self._y[self._n] = math.nan if y is None else y
        self._n += 1

    def extend(self, xs: list[float], ys: list[float | None]) -> None:
        """Add many points at once (one numpy copy instead of a Python call per point)."""
        ys = [math.nan if y is None else y for y in ys]
        start, need = self._n, self._n + len(xs)
        self._x, self._y = _room(self._x, self._y, need)
        self._x[start:need] = xs
        self._y[start:need] = ys
        self._n = need
        if self._sorted and need > start:
            new = self._x[max(start - 1, 0):need]
            self._sorted = bool(np.all(new[1:] >= new[:-1]))

    @property
    def x(self) -> np.ndarray:
        return self._x[: self._n]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self._n]

    def last(self) -> float | None:
        return float(self._y[self._n - 1]) if self._n else None

    def clear(self) -> None:
        self._n = 0
        self._sorted = True
        self._levels.clear()

    def nearest(self, x: float) -> int | None:
        """Index of the point whose step is closest to ``x`` (``None`` for an empty series)."""
        if not self._n:
            return None
        xs = self.x
        if not self._sorted:
            return int(np.argmin(np.abs(xs - x)))
        i = int(np.searchsorted(xs, x))
        if i == self._n or (i > 0 and x - xs[i - 1] <= xs[i] - x):
            return i - 1
        return i

    def visible(self, x_range: tuple[float, float] | None, pixels: int) -> tuple[int, int, int]:
        """Which points a plot ``pixels`` wide showing ``x_range`` needs: ``(first, end, block)``.

        ``first:end`` are the indices of the points in view plus one on each side (so the line
        runs to the edges); ``block`` is 1 to draw them as they are, or the size of the pyramid
        blocks to summarise them with. ``x_range=None`` means the whole series (what a plot
        that follows its data shows), as does a series whose steps went backwards.
        """
        first, end = 0, self._n
        if x_range is not None and self._sorted and self._n:
            x = self.x
            first = max(int(np.searchsorted(x, x_range[0], "left")) - 1, 0)
            end = min(int(np.searchsorted(x, x_range[1], "right")) + 1, self._n)
        pixels = max(int(pixels), MIN_PIXELS)
        if end - first <= RAW_POINTS_PER_PIXEL * pixels:
            return first, end, 1
        block = 1 << FIRST_LEVEL
        while (end - first) // block > pixels and block << 1 <= self._n:
            block <<= 1
        return first, end, block

    def points(self, first: int, end: int, block: int) -> tuple[np.ndarray, np.ndarray]:
        """The points to draw for :meth:`visible`'s answer (numpy views when ``block`` is 1).

        Summarised blocks give two points at the block's first step, its minimum then its
        maximum (a vertical stroke, as pyqtgraph's peak mode draws); a block whose points are
        all missing stays a gap. Points after the last complete block are drawn as they are.
        """
        if block == 1:
            return self.x[first:end], self.y[first:end]
        lows, highs = self._level(block)
        lo = first // block
        hi = max(lo, min(-(-end // block), len(lows)))
        xs = np.repeat(self._x[lo * block:hi * block:block], 2)
        ys = np.empty(2 * (hi - lo))
        ys[0::2], ys[1::2] = lows[lo:hi], highs[lo:hi]
        tail = max(hi * block, first)
        if tail < end:
            xs = np.concatenate((xs, self._x[tail:end]))
            ys = np.concatenate((ys, self._y[tail:end]))
        return xs, ys

    def _level(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Minima and maxima of every complete block of ``block`` points, brought up to date."""
        depth = block.bit_length() - 1 - FIRST_LEVEL
        while len(self._levels) <= depth:
            self._levels.append(_Extremes())
        below_lows, below_highs, width = self.y, self.y, 1 << FIRST_LEVEL
        for level in self._levels[: depth + 1]:
            level.catch_up(below_lows, below_highs, width)
            below_lows, below_highs, width = level.lows, level.highs, 2
        return below_lows, below_highs


def _room(a: np.ndarray, b: np.ndarray, need: int) -> tuple[np.ndarray, np.ndarray]:
    """Two parallel arrays with room for ``need`` entries, grown by doubling (amortised O(1))."""
    if need <= len(a):
        return a, b
    size = max(need, 2 * len(a))
    return np.resize(a, size), np.resize(b, size)


#: The finest pyramid level summarises blocks of 2**3 points; finer is cheaper to draw raw.
FIRST_LEVEL = 3
#: Up to this many points per pixel are drawn as they are (pyqtgraph draws a few thousand fast).
RAW_POINTS_PER_PIXEL = 4
#: A plot not laid out yet (width 0) is treated as this many pixels wide.
MIN_PIXELS = 200
#: Curves with markers (evaluations) draw them up to this many points in view.
MAX_SYMBOLS = 200


class _Extremes:
    """One pyramid level: the NaN-ignoring minimum and maximum of each complete block below it."""

    def __init__(self) -> None:
        self._lows = np.empty(64)
        self._highs = np.empty(64)
        self._n = 0

    @property
    def lows(self) -> np.ndarray:
        return self._lows[: self._n]

    @property
    def highs(self) -> np.ndarray:
        return self._highs[: self._n]

    def catch_up(self, lows: np.ndarray, highs: np.ndarray, width: int) -> None:
        """Summarise the blocks of ``width`` entries of the level below completed since last time."""
        done = len(lows) // width
        if done <= self._n:
            return
        self._lows, self._highs = _room(self._lows, self._highs, done)
        span = slice(self._n * width, done * width)
        # fmin/fmax skip NaN: a block is a gap only when every point in it is missing.
        self._lows[self._n:done] = np.fmin.reduce(lows[span].reshape(-1, width), axis=1)
        self._highs[self._n:done] = np.fmax.reduce(highs[span].reshape(-1, width), axis=1)
        self._n = done


class EmaSeries(SeriesBuffer):
    """A series that stores the bias-corrected exponential moving average of what it is given.

    Bias correction (as TensorBoard's smoothing does) makes the curve start at the first loss
    instead of creeping up from zero or lagging far behind a short run. NaN points are skipped.
    """

    def __init__(self, alpha: float = EMA_ALPHA) -> None:
        super().__init__()
        self.alpha = alpha
        self._raw = 0.0
        self._weight = 0.0

    def append(self, x: float, y: float | None) -> None:
        if y is not None and math.isfinite(y):
            self._raw = (1 - self.alpha) * self._raw + self.alpha * y
            self._weight = (1 - self.alpha) * self._weight + self.alpha
        super().append(x, self._raw / self._weight if self._weight else None)

    def extend(self, xs: list[float], ys: list[float | None]) -> None:
        for x, y in zip(xs, ys):
            self.append(x, y)

    def clear(self) -> None:
        super().clear()
        self._raw = self._weight = 0.0


class MetricPlot(pg.PlotWidget):
    """One plot with named curves fed point by point and redrawn only by :meth:`redraw`."""

    def __init__(self, title: str, y_label: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent=parent)
        self.setTitle(title, size="10pt")
        self.setLabel("bottom", "step")
        if y_label:
            self.setLabel("left", y_label)
        self.showGrid(x=True, y=True, alpha=0.2)
        for side in ("left", "bottom"):
            # Grid lines at major ticks only: the translucent minor grid cost two thirds of a paint.
            self.getAxis(side).setStyle(maxTickLevel=0)
            # A loss of 0.45 reads as 0.45, not as "450" under an axis label saying "(x0.001)".
            self.getAxis(side).enableAutoSIPrefix(False)
        self._legend = None
        self._unlisted: dict[str, bool] = {}  # legend curves in order -> not yet listed
        self.series: dict[str, SeriesBuffer] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._dirty: set[str] = set()
        self._drawn: dict[str, tuple[int, int, int, int]] = {}
        self.paint_seconds = 0.0
        # Zooming or panning picks the level of detail again, once the gesture's events are in.
        self._refine = QTimer(self)
        self._refine.setObjectName("viewRefineTimer")
        self._refine.setSingleShot(True)
        self._refine.setInterval(0)
        self._refine.timeout.connect(self._redraw_for_view)
        self.getViewBox().sigXRangeChanged.connect(self._refine.start)
        self.getViewBox().sigResized.connect(self._refine.start)
        # Hovering shows the exact values at the nearest step, from the raw points (not the
        # summarised ones a long run is drawn with). Its items are made on the first hover: even
        # hidden, they cost every redraw of the plot a little.
        self.readout_item: pg.TextItem | None = None
        self.cursor_line: pg.InfiniteLine | None = None
        self._symbols: dict[str, str] = {}
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        # Timed so the redraw timer can slow down when painting is expensive (slow machine,
        # big window) and keep most of the time for input and for reading events.
        start = time.perf_counter()
        super().paintEvent(event)
        self.paint_seconds = time.perf_counter() - start

    def readout(self, x: float) -> str:
        """The value of every curve at the step nearest ``x``: ``"step 120\ntrain: 1.2345"``."""
        return self._readout_at(x)[1]

    def _readout_at(self, x: float) -> tuple[float | None, str]:
        """(the step read out, the readout text) for the mouse at ``x``."""
        lines, step = [], None
        for name, series in self.series.items():
            i = series.nearest(x)
            if i is None:
                continue
            at, value = float(series.x[i]), float(series.y[i])
            if step is None:
                step = at
                lines.append(f"step {at:,.0f}")
            shown = "—" if math.isnan(value) else f"{value:.6g}"
            lines.append(f"{name}: {shown}" + ("" if at == step else f" (step {at:,.0f})"))
        return step, "\n".join(lines)

    def _on_mouse_moved(self, pos) -> None:
        box = self.getViewBox()
        step, text = self._readout_at(box.mapSceneToView(pos).x()) if box.sceneBoundingRect().contains(pos) \
            else (None, "")
        if step is None:
            self._hide_readout()
            return
        if self.readout_item is None:
            self.readout_item = pg.TextItem(anchor=(0, 0), color="#1f2933", fill=pg.mkBrush(255, 255, 255, 225))
            self.readout_item.setZValue(10)
            self.addItem(self.readout_item, ignoreBounds=True)
            self.cursor_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#9aa5b1", style=_dash(True)))
            self.addItem(self.cursor_line, ignoreBounds=True)
        (x0, _), (_, y1) = box.viewRange()
        self.readout_item.setText(text)
        self.readout_item.setPos(x0, y1)
        self.readout_item.show()
        self.cursor_line.setValue(step)
        self.cursor_line.show()

    def _hide_readout(self) -> None:
        if self.readout_item is not None:
            self.readout_item.hide()
            self.cursor_line.hide()

    def leaveEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self._hide_readout()
        super().leaveEvent(event)

    def add_curve(self, name: str, color: str, width: float = 1.5, series: SeriesBuffer | None = None,
                  dashed: bool = False, symbol: str | None = None, legend: bool | str = True) -> None:
        """Declare a curve; ``series`` lets a curve smooth its input (e.g. :class:`EmaSeries`).

        ``legend=False`` for a plot's only curve: its title already names it; a string is the
        curve's words in the legend (the curve's name otherwise).
        """
        if legend and self._legend is None:
            self._legend = self._make_legend()
        pen = pg.mkPen(color, width=width, style=_dash(dashed))
        listed = (legend if isinstance(legend, str) else name) if legend and not self.LEGEND_IN_TITLE_ROW else None
        curve = self.plot([], [], pen=pen, name=listed, symbol=symbol,
                          symbolSize=6, symbolBrush=color, symbolPen=None, connect="finite")
        if legend and self.LEGEND_IN_TITLE_ROW:
            self._unlisted[name] = True  # listed once it has points: no legend for a curve never drawn
        if symbol:
            self._symbols[name] = symbol
        self.series[name] = series if series is not None else SeriesBuffer()
        self._curves[name] = curve

    #: The legend on one line in the title row, right-aligned: inside the plot it covered the curves.
    LEGEND_IN_TITLE_ROW = True

    def _make_legend(self) -> pg.LegendItem:
        if not self.LEGEND_IN_TITLE_ROW:
            # Below the plot, in its layout (two entries a line): inside, long run names hid the curves.
            legend = pg.LegendItem(colCount=2, horSpacing=12)
            legend.layout.setContentsMargins(0, 0, 0, 0)
            self.plotItem.layout.addItem(legend, 4, 1)
            self.plotItem.legend = legend  # plot(name=...) lists each run's curves in it
            return legend
        self.plotItem.titleLabel.setAttr("justify", "left")
        self.plotItem.setTitle(self.plotItem.titleLabel.text)  # re-laid out on the left
        self.plotItem.layout.setRowFixedHeight(0, LEGEND_ROW_PX)
        legend = pg.LegendItem(colCount=8, horSpacing=12)
        legend.layout.setContentsMargins(0, 0, 0, 0)
        legend.setParentItem(self.plotItem)
        legend.anchor(itemPos=(1, 0), parentPos=(1, 0), offset=(-4, 2))
        return legend

    def append(self, name: str, x: float, y: float | None) -> None:
        self.series[name].append(x, y)
        self._dirty.add(name)

    def extend(self, name: str, xs: list[float], ys: list[float | None]) -> None:
        if xs:
            self.series[name].extend(xs, ys)
            self._dirty.add(name)

    def point_count(self, name: str) -> int:
        return len(self.series[name])

    def redraw(self) -> None:
        """Hand the changed series to their curves, at the level of detail the view needs."""
        x_range, pixels = self._view()
        for name in self._dirty:
            self._draw(name, x_range, pixels)
        self._dirty.clear()

    def _view(self) -> tuple[tuple[float, float] | None, int]:
        box = self.getViewBox()
        # A plot that follows its data will widen to take in every new point: draw them all.
        x_range = None if box.autoRangeEnabled()[0] else tuple(box.viewRange()[0])
        return x_range, int(box.width())

    def _draw(self, name: str, x_range, pixels: int) -> None:
        series = self.series[name]
        first, end, block = series.visible(x_range, pixels)
        self._drawn[name] = (first, end, block, len(series))
        xs, ys = series.points(first, end, block)
        curve = self._curves[name]
        if name in self._symbols:
            # A marker per point helps a few evaluations stand out; hundreds of them only cost paint
            # time (4-5 ms for a thousand) and merge into a line anyway.
            curve.setSymbol(self._symbols[name] if len(xs) <= MAX_SYMBOLS else None)
        curve.setData(xs, ys, connect="finite")
        if self._unlisted.get(name) and len(xs):
            self._unlisted[name] = False
            self._legend.clear()  # relisted in the order the curves were declared
            for listed in (n for n, waiting in self._unlisted.items() if not waiting):
                self._legend.addItem(self._curves[listed], LEGEND_LABELS.get(listed, listed))

    def _redraw_for_view(self) -> None:
        """After a zoom, pan or resize: redraw the curves whose points in view changed."""
        x_range, pixels = self._view()
        for name, series in self.series.items():
            if name not in self._dirty and self._drawn.get(name, (0, 0, 1, 0))[:3] != series.visible(x_range, pixels):
                self._draw(name, x_range, pixels)

    def remove_curves(self) -> None:
        for curve in self._curves.values():
            self.removeItem(curve)
        if self._legend is not None:
            self._legend.clear()
        self._unlisted.clear()
        self.series.clear()
        self._curves.clear()
        self._symbols.clear()
        self._dirty.clear()
        self._drawn.clear()

    def clear_points(self) -> None:
        for name, series in self.series.items():
            series.clear()
            self._dirty.add(name)


def _dash(dashed: bool):
    from PySide6.QtCore import Qt

    return Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine


def prefixed(prefix: str, name: str) -> str:
    """``lossPlot`` -> ``openedLossPlot`` so two views of runs in one window keep unique names."""
    return f"{prefix}{name[0].upper()}{name[1:]}" if prefix else name


class RedrawTimer(QObject):
    """One timer that redraws a set of plots a few times per second (coalesces bursts of events).

    Each tick hands the next plot with new points to its curves, round-robin, so every plot is
    refreshed about every ``interval_ms`` but the event loop is never blocked by all of them at
    once: with a million points a plot costs ~5-10 ms of bounds and downsampling plus its paint,
    and five in one go was a ~30 ms stall. The interval adapts: at least ``interval_ms`` per
    round, and at least eight times what the last paint cost, so painting never takes more than
    about an eighth of the window's time.
    """

    def __init__(self, plots: list[MetricPlot], parent: QObject | None = None, interval_ms: int = REDRAW_MS) -> None:
        super().__init__(parent)
        self.plots = plots
        self._base_ms = interval_ms
        self._next = 0
        self._timer = QTimer(self)
        self._timer.setObjectName("redrawTimer")
        self._timer.setInterval(self._tick_ms(0.0))
        self._timer.timeout.connect(self.tick)
        self._timer.start()

    def _tick_ms(self, paint_ms: float) -> int:
        per_round = min(MAX_REDRAW_MS, max(self._base_ms, PAINT_SHARE * paint_ms * len(self.plots)))
        return max(1, int(per_round / max(len(self.plots), 1)))

    def tick(self) -> None:
        """Redraw the next plot that has new points (at most one per tick)."""
        n = len(self.plots)
        for k in range(n):
            plot = self.plots[(self._next + k) % n]
            if plot._dirty:
                plot.redraw()
                self._next = (self._next + k + 1) % n
                self._timer.setInterval(self._tick_ms(1000 * plot.paint_seconds))
                return

    def redraw(self) -> None:
        """Redraw every plot now (a view cleared or filled in one go)."""
        for plot in self.plots:
            plot.redraw()


#: What the preference, reward and RL objectives report beside their loss (step-event keys),
#: drawn in one more plot next to the loss when a run reports any of them.
OBJECTIVE_CURVES = {key: label for key, (_, label) in OBJECTIVE_METRICS.items()}
#: GRPO's mean reward per reward function: ``rewards/<function>/mean``.
_REWARD_FUNCTION = re.compile(r"^rewards/(.+)/mean$")


def objective_title(keys) -> str:
    """The objective plot's title for the metrics a run reports."""
    if "reward" in keys:
        return "Rewards (higher is better)"
    if "accuracy" in keys:
        return "Reward model: chosen vs rejected"
    return "Preference: chosen vs rejected"


class MetricsPanel(QWidget):
    """The live curves of one run: loss (raw, smoothed, eval), learning rate, grad norm,
    tokens per second and memory, and, for DPO, KTO, ORPO, reward modelling and GRPO, what the
    objective reports (reward margins and accuracy, rewards). Feed it events with :meth:`add_event`."""

    def __init__(self, prefix: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._prefix = prefix
        self.loss = self._plot("Loss", "lossPlot", "loss")
        self.loss.add_curve("train", PALETTE[5], width=1)
        self.loss.add_curve("train (smoothed)", PALETTE[0], width=2, series=EmaSeries())
        self.loss.add_curve("eval", PALETTE[1], width=2, symbol="o")
        self.loss.add_curve("general text (forgetting)", PALETTE[3], width=1.5, dashed=True, symbol="t")
        # Short titles: four side by side leave each about 120 px in a 1024 px window.
        self.lr = self._plot("LR", "lrPlot", accessible="Learning rate")
        self.lr.add_curve("learning rate", PALETTE[2], legend=False)
        self.grad = self._plot("Grad norm", "gradNormPlot", accessible="Gradient norm")
        self.grad.add_curve("grad norm", PALETTE[4], legend=False)
        self.speed = self._plot("Tokens/s", "tokensPerSecondPlot", accessible="Tokens per second")
        self.speed.add_curve("tokens/s", PALETTE[0], legend=False)
        self.memory = self._plot("Memory MiB", "memoryPlot", accessible="Memory (MiB)")
        self.memory.add_curve("memory", PALETTE[3], legend=False)
        self.objective = self._plot("Objective", "objectivePlot")
        self.objective.hide()
        self._objective_keys: dict[str, str] = {}  # step-event key -> curve name
        self._layout_plots()
        self.timer = RedrawTimer(self.plots, self)

    @property
    def plots(self) -> list[MetricPlot]:
        base = [self.loss, self.lr, self.grad, self.speed, self.memory]
        return base + [self.objective] if self._objective_keys else base

    def _layout_plots(self) -> None:
        grid = self._grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(6)
        # The four secondary plots share one row, so the loss keeps most of the height even in a
        # 1024 x 700 window (in two rows of two it was squeezed to 70 px there).
        grid.addWidget(self.loss, 0, 0, 1, 4)
        for column, plot in enumerate((self.lr, self.grad, self.speed, self.memory)):
            grid.addWidget(plot, 1, column)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 1)

    def add_events(self, events: list[dict]) -> None:
        """Take a slice of events: step metrics are added column by column, in one go each."""
        steps = [e for e in events if e.get("type") == "step"]
        if steps:
            xs = [e.get("step", 0) for e in steps]
            for plot, name, key in self._STEP_CURVES:
                getattr(self, plot).extend(name, xs, [e.get(key) for e in steps])
            self._add_objective_metrics(steps, xs)
        for event in events:
            if event.get("type") == "eval":
                self.add_event(event)

    _STEP_CURVES = (("loss", "train", "loss"), ("loss", "train (smoothed)", "loss"),
                    ("lr", "learning rate", "learning_rate"), ("grad", "grad norm", "grad_norm"),
                    ("speed", "tokens/s", "tokens_per_second"), ("memory", "memory", "memory_mib"))

    def add_event(self, event: dict) -> None:
        """Take one protocol event; only ``step`` and ``eval`` carry curve points."""
        if event.get("type") == "step":
            self.add_events([event])
        elif event.get("type") == "eval":
            step = event.get("step", 0)
            self.loss.append("eval", step, event.get("eval_loss"))
            general = event.get("general_loss")
            if general is not None:
                self.loss.append("general text (forgetting)", step, general)

    def _add_objective_metrics(self, steps: list[dict], xs: list) -> None:
        """The objective's own numbers; its plot appears beside the loss on the first of them."""
        if not self._objective_keys and not any(k in OBJECTIVE_CURVES or _REWARD_FUNCTION.match(k)
                                                for k in steps[0]):
            return
        for key in dict.fromkeys(k for e in steps for k in e):
            if key in self._objective_keys:
                continue
            function = _REWARD_FUNCTION.match(key)
            name = OBJECTIVE_CURVES.get(key) or (f"reward: {function.group(1)}" if function else None)
            if name is None:
                continue
            if not self._objective_keys:
                self._show_objective_plot({k for e in steps for k in e})
            self.objective.add_curve(name, PALETTE[len(self._objective_keys) % len(PALETTE)], width=1.5)
            self._objective_keys[key] = name
        for key, name in self._objective_keys.items():
            self.objective.extend(name, xs, [e.get(key) for e in steps])

    def _show_objective_plot(self, keys) -> None:
        self.objective.setTitle(objective_title(keys), size="10pt")
        self._grid.removeWidget(self.loss)
        self._grid.addWidget(self.loss, 0, 0, 1, 2)
        self._grid.addWidget(self.objective, 0, 2, 1, 2)
        self.objective.show()
        self.timer.plots.append(self.objective)

    def _hide_objective_plot(self) -> None:
        if not self._objective_keys:
            return
        self.objective.remove_curves()
        self._objective_keys.clear()
        self.timer.plots.remove(self.objective)
        self._grid.removeWidget(self.objective)
        self.objective.hide()
        self._grid.removeWidget(self.loss)
        self._grid.addWidget(self.loss, 0, 0, 1, 4)

    def _plot(self, title: str, object_name: str, y_label: str = "", accessible: str = "") -> MetricPlot:
        plot = MetricPlot(title, y_label)
        plot.setObjectName(prefixed(self._prefix, object_name))
        plot.setAccessibleName(f"{accessible or title} plot")
        plot.setMinimumHeight(180 if object_name == "lossPlot" else 110)
        return plot

    def clear(self) -> None:
        self._hide_objective_plot()
        for plot in self.plots:
            plot.clear_points()
        self.timer.redraw()


class OverlayPlot(MetricPlot):
    """Loss curves of several runs on one plot, one colour per run (train solid, eval dashed)."""

    LEGEND_IN_TITLE_ROW = False  # run names do not fit the title row: the legend goes below

    def set_runs(self, runs: list[tuple[str, list[dict]]]) -> None:
        """Replace the curves with those of ``runs`` = [(label, events)]."""
        self.remove_curves()
        for i, (label, events) in enumerate(runs):
            color = PALETTE[i % len(PALETTE)]
            # One legend entry a run, in its colour: the title says which line is which.
            self.add_curve(f"{label} train", color, width=1.5, series=EmaSeries(), legend=label)
            self.add_curve(f"{label} eval", color, width=2, dashed=True, symbol="o", legend=False)
            for event in events:
                if event.get("type") == "step":
                    self.append(f"{label} train", event.get("step", 0), event.get("loss"))
                elif event.get("type") == "eval":
                    self.append(f"{label} eval", event.get("step", 0), event.get("eval_loss"))
        self._dirty.update(self.series)
        self.redraw()
