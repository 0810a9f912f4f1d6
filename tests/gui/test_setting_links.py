"""Problems and pitfalls wrap, and clicking one goes to the setting it names, on whichever page."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from studio.gui import tasks
from studio.gui.app import build_window
from studio.gui.setting_links import setting_in

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def window(qtbot):
    w = build_window()
    qtbot.addWidget(w)
    w.resize(1024, 700)
    w.show()
    w.activateWindow()
    yield w
    tasks.wait_idle(30)


def _click_item(qtbot, listing, text_part: str):
    item = next(listing.item(i) for i in range(listing.count()) if text_part in listing.item(i).text())
    rect = listing.visualItemRect(item)
    qtbot.mouseClick(listing.viewport(), Qt.LeftButton, pos=rect.center())
    return item, rect


def test_a_problem_wraps_and_clicking_it_scrolls_to_its_setting(window, qtbot):
    method = window.show_page("Method")
    window.state.set_field("output", "save_every_steps", -1)  # a field far down the settings form
    editor = method.form.editors["output.save_every_steps"]
    assert editor.visibleRegion().isEmpty()  # below the visible part of the form
    window.state.set_field("eval", "sample_prompts", ["x" * 20])
    window.state.set_field("train", "max_grad_norm", -1.0)
    _, rect = _click_item(qtbot, method.problem_list, "output.save_every_steps")
    qtbot.waitUntil(editor.hasFocus, timeout=5000)
    assert not editor.visibleRegion().isEmpty()
    line = method.problem_list.fontMetrics().height()
    assert method.problem_list.wordWrap() and rect.height() > 1.5 * line  # the long reason wraps
    assert rect.width() <= method.problem_list.viewport().width()


def test_a_pitfall_naming_a_setting_of_another_page_goes_there(window, qtbot):
    method = window.show_page("Method")
    window.state.set_field("data", "max_length", 100_000)  # beyond the demo model's context
    method.run_preflight()
    qtbot.waitUntil(lambda: any("context" in method.lint_list.item(i).text()
                                for i in range(method.lint_list.count())), timeout=60_000)
    _click_item(qtbot, method.lint_list, "context")
    inspect = window.pages["Inspect"]
    assert window.stack.currentWidget() is inspect
    qtbot.waitUntil(inspect.max_length.hasFocus, timeout=5000)


def test_the_setting_named_first_in_a_text_is_found():
    assert setting_in("data.max_length 9000 is beyond ... lower data.max_length") == "data.max_length"
    assert setting_in("set data.eval_fraction above 0 or data.eval") == "data.eval_fraction"
    assert setting_in("no setting here, e.g. data.maximum") is None
