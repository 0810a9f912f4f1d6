"""Live metric plots that stay smooth with a million points.

Points are kept in growing numpy arrays (amortised doubling, no Python lists of floats) and the
curves are redrawn by one timer at a few frames per second, never once per event: a worker can
send thousands of step events per second when a run is replayed from its event log, and a
redraw per event would freeze the window. Each curve uses pyqtgraph's peak downsampling and
clip-to-view, so drawing cost follows the pixels on screen, not the number of steps.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QGridLayout, QWidget

#: Colour-blind friendly palette (Okabe-Ito) for curves and compared runs.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
REDRAW_MS = 250
MAX_REDRAW_MS = 2000
PAINT_SHARE = 8
EMA_ALPHA = 0.2

pg.setConfigOptions(antialias=False, background="w", foreground="#333333")


class SeriesBuffer:
    """An (x, y) series in numpy arrays that grow by doubling.

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

    def __len__(self) -> int:
        return self._n

    def append(self, x: float, y: float | None) -> None:
        """Add one point; ``None`` (a NaN the worker wrote as null) becomes a gap in the curve."""
        if self._n == len(self._x):
            self._x = np.resize(self._x, 2 * len(self._x))
            self._y = np.resize(self._y, 2 * len(self._y))
        self._x[self._n] = x
        self._y[self._n] = math.nan if y is None else y
        self._n += 1

    def extend(self, xs: list[float], ys: list[float | None]) -> None:
        """Add many points at once (one numpy copy instead of a Python call per point)."""
        ys = [math.nan if y is None else y for y in ys]
        need = self._n + len(xs)
        if need > len(self._x):
            size = max(need, 2 * len(self._x))
            self._x, self._y = np.resize(self._x, size), np.resize(self._y, size)
        self._x[self._n:need] = xs
        self._y[self._n:need] = ys
        self._n = need

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
        item = self.getPlotItem()
        item.setDownsampling(auto=True, mode="peak")
        item.setClipToView(True)
        self._legend = None
        self.series: dict[str, SeriesBuffer] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._dirty: set[str] = set()
        self.paint_seconds = 0.0

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        # Timed so the redraw timer can slow down when painting is expensive (slow machine,
        # big window) and keep most of the time for input and for reading events.
        start = time.perf_counter()
        super().paintEvent(event)
        self.paint_seconds = time.perf_counter() - start

    def add_curve(self, name: str, color: str, width: float = 1.5, series: SeriesBuffer | None = None,
                  dashed: bool = False, symbol: str | None = None, legend: bool = True) -> None:
        """Declare a curve; ``series`` lets a curve smooth its input (e.g. :class:`EmaSeries`).

        ``legend=False`` for a plot's only curve: its title already names it.
        """
        if legend and self._legend is None:
            self._legend = self.addLegend(offset=(-10, 10), brush=pg.mkBrush(255, 255, 255, 210))
        pen = pg.mkPen(color, width=width, style=_dash(dashed))
        curve = self.plot([], [], pen=pen, name=name, symbol=symbol, symbolSize=6, symbolBrush=color,
                          symbolPen=None, connect="finite")
        curve.setDownsampling(auto=True, method="peak")
        curve.setClipToView(True)
        self.series[name] = series if series is not None else SeriesBuffer()
        self._curves[name] = curve

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
        """Hand the changed series to their curves (numpy views, no copies of Python lists)."""
        for name in self._dirty:
            series = self.series[name]
            self._curves[name].setData(series.x, series.y, connect="finite")
        self._dirty.clear()

    def remove_curves(self) -> None:
        for curve in self._curves.values():
            self.removeItem(curve)
        if self._legend is not None:
            self._legend.clear()
        self.series.clear()
        self._curves.clear()
        self._dirty.clear()

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


class MetricsPanel(QWidget):
    """The live curves of one run: loss (raw, smoothed, eval), learning rate, grad norm,
    tokens per second and memory. Feed it events with :meth:`add_event`."""

    def __init__(self, prefix: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._prefix = prefix
        self.loss = self._plot("Loss", "lossPlot", "loss")
        self.loss.add_curve("train", PALETTE[5], width=1)
        self.loss.add_curve("train (smoothed)", PALETTE[0], width=2, series=EmaSeries())
        self.loss.add_curve("eval", PALETTE[1], width=2, symbol="o")
        self.loss.add_curve("general text (forgetting)", PALETTE[3], width=1.5, dashed=True, symbol="t")
        self.lr = self._plot("Learning rate", "lrPlot")
        self.lr.add_curve("learning rate", PALETTE[2], legend=False)
        self.grad = self._plot("Gradient norm", "gradNormPlot")
        self.grad.add_curve("grad norm", PALETTE[4], legend=False)
        self.speed = self._plot("Tokens per second", "tokensPerSecondPlot")
        self.speed.add_curve("tokens/s", PALETTE[0], legend=False)
        self.memory = self._plot("Memory (MiB)", "memoryPlot")
        self.memory.add_curve("memory", PALETTE[3], legend=False)
        self._layout_plots()
        self.timer = RedrawTimer(self.plots, self)

    @property
    def plots(self) -> list[MetricPlot]:
        return [self.loss, self.lr, self.grad, self.speed, self.memory]

    def _layout_plots(self) -> None:
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(6)
        grid.addWidget(self.loss, 0, 0, 1, 2)
        grid.addWidget(self.lr, 1, 0)
        grid.addWidget(self.grad, 1, 1)
        grid.addWidget(self.speed, 2, 0)
        grid.addWidget(self.memory, 2, 1)
        grid.setRowStretch(0, 2)
        grid.setRowStretch(1, 1)
        grid.setRowStretch(2, 1)

    def add_events(self, events: list[dict]) -> None:
        """Take a slice of events: step metrics are added column by column, in one go each."""
        steps = [e for e in events if e.get("type") == "step"]
        if steps:
            xs = [e.get("step", 0) for e in steps]
            for plot, name, key in self._STEP_CURVES:
                getattr(self, plot).extend(name, xs, [e.get(key) for e in steps])
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

    def _plot(self, title: str, object_name: str, y_label: str = "") -> MetricPlot:
        plot = MetricPlot(title, y_label)
        plot.setObjectName(prefixed(self._prefix, object_name))
        plot.setAccessibleName(f"{title} plot")
        plot.setMinimumHeight(180 if object_name == "lossPlot" else 110)
        return plot

    def clear(self) -> None:
        for plot in self.plots:
            plot.clear_points()
        self.timer.redraw()


class OverlayPlot(MetricPlot):
    """Loss curves of several runs on one plot, one colour per run (train solid, eval dashed)."""

    def set_runs(self, runs: list[tuple[str, list[dict]]]) -> None:
        """Replace the curves with those of ``runs`` = [(label, events)]."""
        self.remove_curves()
        for i, (label, events) in enumerate(runs):
            color = PALETTE[i % len(PALETTE)]
            self.add_curve(f"{label} train", color, width=1.5, series=EmaSeries())
            self.add_curve(f"{label} eval", color, width=2, dashed=True, symbol="o")
            for event in events:
                if event.get("type") == "step":
                    self.append(f"{label} train", event.get("step", 0), event.get("loss"))
                elif event.get("type") == "eval":
                    self.append(f"{label} eval", event.get("step", 0), event.get("eval_loss"))
        self._dirty.update(self.series)
        self.redraw()
