"""A plot hands its curves no more points than it has pixels for, and loses no spike doing so."""

from __future__ import annotations

import math

import numpy as np
import pytest

from studio.gui.plots import MetricPlot, SeriesBuffer


def _series(n: int, seed: int = 0) -> tuple[SeriesBuffer, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.arange(1, n + 1, dtype=float)
    y = 2.0 + rng.normal(0, 0.1, n)
    series = SeriesBuffer()
    # In uneven slices, as events arrive, so the pyramid is brought up to date piece by piece.
    cut = 0
    for size in (1, 7, 1000, 33_333, n):
        end = min(cut + size, n)
        series.extend(x[cut:end].tolist(), y[cut:end].tolist())
        series.points(*series.visible(None, 500))
        cut = end
    return series, x, y


def test_a_short_series_is_drawn_as_it_is():
    series, x, y = _series(1000)
    first, end, block = series.visible(None, 500)
    assert (first, end, block) == (0, 1000, 1)
    xs, ys = series.points(first, end, block)
    assert np.array_equal(xs, x) and np.array_equal(ys, y)


@pytest.mark.parametrize("n", [100_003, 1_000_000])
def test_a_long_series_is_summarised_to_the_plot_width_keeping_every_extreme(n):
    series, x, y = _series(n)
    pixels = 800
    first, end, block = series.visible(None, pixels)
    assert block > 1
    xs, ys = series.points(first, end, block)
    assert len(xs) <= 2 * pixels + block  # a block per pixel (min and max) plus the incomplete tail
    assert ys.min() == y.min() and ys.max() == y.max()
    # Each summarised block spans exactly its own points: check one in the middle.
    k = (len(xs) // 2) // 2 * 2
    lo = int(xs[k]) - 1
    assert ys[k] == y[lo:lo + block].min() and ys[k + 1] == y[lo:lo + block].max()
    assert xs[-1] == x[-1]  # the newest point is always drawn


def test_a_spike_in_one_step_of_a_million_is_still_drawn():
    x = np.arange(1, 1_000_001, dtype=float)
    y = np.full_like(x, 2.0)
    y[654_321] = 50.0
    spiky = SeriesBuffer()
    spiky.extend(x.tolist(), y.tolist())
    _, ys = spiky.points(*spiky.visible(None, 800))
    assert ys.max() == 50.0


def test_missing_values_stay_gaps_only_where_a_whole_block_is_missing():
    series = SeriesBuffer()
    ys = [1.0] * 10_000 + [None] * 10_000 + [2.0] * 10_000
    series.extend(list(range(30_000)), ys)
    first, end, block = series.visible(None, 200)
    assert block > 1
    _, drawn = series.points(first, end, block)
    assert np.isnan(drawn).any()
    assert set(np.unique(drawn[~np.isnan(drawn)])) == {1.0, 2.0}


def test_zooming_in_far_enough_gives_the_raw_points_in_view():
    series, x, y = _series(1_000_000)
    first, end, block = series.visible((500_000.0, 500_100.0), 800)
    assert block == 1
    xs, ys = series.points(first, end, block)
    assert xs[0] <= 500_000 and xs[-1] >= 500_100 and len(xs) <= 103
    assert np.array_equal(ys, y[int(xs[0]) - 1:int(xs[-1])])


def test_steps_that_go_backwards_fall_back_to_the_whole_series():
    series = SeriesBuffer()
    series.extend([1, 2, 3], [1.0, 2.0, 3.0])
    series.extend([2, 3], [2.5, 3.5])  # a run resumed from an earlier checkpoint
    assert series.visible((2.5, 3.0), 500) == (0, 5, 1)
    series.clear()
    series.extend([1, 2, 3], [1.0, 2.0, 3.0])
    assert series.visible((2.5, 3.0), 500) == (1, 3, 1)


def test_the_plot_refines_its_curve_when_zoomed(qtbot):
    plot = MetricPlot("Loss")
    qtbot.addWidget(plot)
    plot.resize(800, 300)
    plot.show()
    plot.add_curve("train", "#000", legend=False)
    n = 200_000
    plot.extend("train", list(range(1, n + 1)), [math.sin(k / 1000) for k in range(1, n + 1)])
    plot.redraw()
    curve = plot._curves["train"]
    assert len(curve.xData) < 2 * 800 + 1024
    plot.getViewBox().setXRange(1000, 1200, padding=0)
    qtbot.waitUntil(lambda: len(curve.xData) < 250)
    assert curve.xData[0] <= 1000 and curve.xData[-1] >= 1200
    assert np.allclose(curve.yData, np.sin(curve.xData / 1000))
    plot.getViewBox().enableAutoRange(x=True)
    qtbot.waitUntil(lambda: curve.xData[-1] == n and curve.xData[0] == 1)


def test_nearest_step_on_sorted_and_unsorted_series():
    series = SeriesBuffer()
    series.extend([10, 20, 30], [1.0, 2.0, 3.0])
    assert [series.nearest(x) for x in (0, 14, 16, 25, 99)] == [0, 0, 1, 1, 2]
    series.extend([15], [1.5])  # resumed from an earlier step
    assert series.nearest(16) == 3
    assert SeriesBuffer().nearest(5) is None


def test_hovering_a_plot_reads_out_the_exact_values_at_the_nearest_step(qtbot):
    from PySide6.QtCore import QPointF

    plot = MetricPlot("Loss")
    qtbot.addWidget(plot)
    plot.resize(800, 300)
    plot.show()
    plot.add_curve("train", "#000")
    plot.add_curve("eval", "#f00")
    n = 100_000  # summarised when drawn; the readout still gives the raw value
    plot.extend("train", list(range(1, n + 1)), [1.0 + k / 1e5 for k in range(1, n + 1)])
    plot.extend("eval", [50_000, 100_000], [2.5, None])
    plot.redraw()
    assert plot.readout_item is None  # made on the first hover
    assert plot.readout(12_345.4) == "step 12,345\ntrain: 1.12345\neval: 2.5 (step 50,000)"
    assert plot.readout(99_000) == "step 99,000\ntrain: 1.99\neval: — (step 100,000)"
    box = plot.getViewBox()
    qtbot.waitUntil(lambda: box.viewRange()[0][1] >= n)
    y = sum(box.viewRange()[1]) / 2
    plot.scene().sigMouseMoved.emit(box.mapViewToScene(QPointF(777, y)))
    assert plot.readout_item.isVisible()
    assert plot.readout_item.textItem.toPlainText().startswith("step 777\ntrain: 1.00777")
    assert plot.cursor_line.isVisible() and plot.cursor_line.value() == 777
    plot.scene().sigMouseMoved.emit(box.mapViewToScene(QPointF(777, y)) + QPointF(0, 5000))  # outside the plot
    assert not plot.readout_item.isVisible() and not plot.cursor_line.isVisible()


def _steps(n: int, **extra) -> list[dict]:
    return [{"type": "step", "step": k, "loss": 1.0 / k, "learning_rate": 1e-4, "grad_norm": 1.0,
             "tokens_per_second": 100.0, "memory_mib": 10.0, **{key: f(k) for key, f in extra.items()}}
            for k in range(1, n + 1)]


# The offscreen platform says this when a top-level window is shown; it is not about our code.
@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_a_dpo_run_gets_its_reward_margins_and_accuracy_beside_the_loss(qtbot):
    from studio.gui.plots import MetricsPanel

    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.resize(1000, 600)
    panel.show()
    panel.add_events(_steps(3))  # SFT: no objective plot, the loss spans the row
    assert not panel.objective.isVisible() and len(panel.plots) == 5
    panel.clear()
    panel.add_events(_steps(4, **{"rewards/margins": lambda k: 0.1 * k, "rewards/accuracies": lambda k: 0.5,
                                  "rewards/chosen": lambda k: 0.0}))
    assert panel.objective.isVisible() and panel.objective in panel.plots
    assert panel.objective.getPlotItem().titleLabel.text == "Preference: chosen vs rejected"
    assert set(panel.objective.series) == {"reward margin (chosen − rejected)", "share of pairs ranked right"}
    assert panel.objective.series["reward margin (chosen − rejected)"].y.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    panel.timer.redraw()
    assert len(panel.objective._curves["share of pairs ranked right"].xData) == 4
    panel.clear()  # another run opened in the same view
    assert not panel.objective.isVisible() and panel.objective.series == {} and len(panel.plots) == 5


def test_a_grpo_run_plots_its_mean_reward_and_each_reward_function(qtbot):
    from studio.gui.plots import MetricsPanel

    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.add_events(_steps(2, reward=lambda k: 0.5, reward_std=lambda k: 0.1,
                            **{"rewards/format/mean": lambda k: 1.0, "rewards/format/std": lambda k: 0.0}))
    assert panel.objective.getPlotItem().titleLabel.text == "Rewards (higher is better)"
    assert set(panel.objective.series) == {"mean reward", "reward spread", "reward: format"}


def test_axes_show_values_as_they_are_without_si_scaling(qtbot):
    plot = MetricPlot("Loss", "loss")
    qtbot.addWidget(plot)
    plot.add_curve("train", "#000", legend=False)
    plot.extend("train", [1, 2, 3], [0.0004, 0.0005, 0.0006])
    plot.redraw()
    axis = plot.getAxis("left")
    assert axis.autoSIPrefix is False and axis.labelText == "loss"
    assert "x0.001" not in axis.label.toPlainText()


def test_evaluation_markers_are_drawn_only_while_they_are_few(qtbot):
    plot = MetricPlot("Loss")
    qtbot.addWidget(plot)
    plot.add_curve("eval", "#f00", symbol="o")
    plot.extend("eval", [10, 20, 30], [1.0, 0.9, 0.8])
    plot.redraw()
    assert plot._curves["eval"].opts["symbol"] == "o"
    plot.extend("eval", list(range(40, 10_000, 10)), [0.5] * len(range(40, 10_000, 10)))
    plot.redraw()
    assert plot._curves["eval"].opts["symbol"] is None
