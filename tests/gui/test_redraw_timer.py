"""The plots' redraw timer hands one plot per tick to its curves, round-robin, none starved."""

from __future__ import annotations

from studio.gui.plots import MetricsPanel


def _step(k: int) -> dict:
    return {"type": "step", "step": k, "loss": 1.0 / k, "learning_rate": 1e-4, "grad_norm": 1.0,
            "tokens_per_second": 100.0, "memory_mib": 10.0}


def _dirty(panel) -> list:
    return [plot for plot in panel.plots if plot._dirty]


def test_one_plot_per_tick_until_all_are_drawn(qtbot):
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.add_events([_step(1), _step(2)])
    assert len(_dirty(panel)) == 5
    panel.timer.tick()
    assert len(_dirty(panel)) == 4 and not panel.loss._dirty
    for _ in range(4):
        panel.timer.tick()
    assert not _dirty(panel)
    assert len(panel.memory._curves["memory"].xData) == 2


def test_a_plot_that_is_always_dirty_does_not_starve_the_others(qtbot):
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    for k in range(1, 6):
        panel.add_events([_step(k)])  # every plot gets a new point before every tick
        panel.timer.tick()
    drawn = [next(iter(plot._curves.values())).xData for plot in panel.plots]
    drawn = [0 if x is None else len(x) for x in drawn]
    assert all(n > 0 for n in drawn), drawn


def test_redraw_still_draws_every_plot_at_once(qtbot):
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.add_events([_step(1)])
    panel.timer.redraw()
    assert not _dirty(panel)
