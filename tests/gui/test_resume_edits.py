"""Runs whose config.yaml was edited after a checkpoint, from the window `studio` opens: Resume
shows the settings it applied; Branch with a setting a checkpoint cannot continue with starts a
new run from the checkpoint's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from safetensors.torch import load_file

from studio.core import config as configmod
from studio.core.protocol import read_events

from real_runs import model_dir, quick_config  # noqa: F401  (fixture; tests/gui helper module)

pytestmark = [pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
              pytest.mark.integration, pytest.mark.slow]


def _click_run(qtbot, page, run_dir: str) -> None:
    page.refresh()
    row = next(r for r, rec in enumerate(page.records) if rec.run_dir == str(run_dir))
    qtbot.mouseClick(page.table.viewport(), Qt.LeftButton,
                     pos=page.table.visualRect(page.table.model().index(row, 1)).center())


def _edit(run_dir: str, **changes) -> None:
    path = Path(run_dir) / "config.yaml"
    cfg = configmod.load(path)
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    configmod.save(cfg, path)


def _finish(qtbot, proc) -> None:
    with qtbot.waitSignal(proc.finished, timeout=400000) as done:
        pass
    assert done.args[0].status == "completed", done.args[0].error + done.args[0].log_tail


def test_resume_announces_applied_edits_and_branch_starts_from_the_checkpoints_weights(qtbot, model_dir):
    from studio.gui import tasks
    from studio.gui.app import build_window

    window = build_window()
    qtbot.addWidget(window)
    window.show()
    controller = window.runs_controller
    cfg = quick_config(model_dir, max_steps=2)
    cfg.output.save_every_steps = 2
    cfg.eval.sample_prompts = []
    first = controller.start_run(cfg)
    _finish(qtbot, first)

    # Resume after edits it can take: the window shows what was applied where the run is shown.
    _edit(first.run_dir, eval__every_steps=1, train__max_steps=3)
    page = window.show_page("Runs")
    _click_run(qtbot, page, first.run_dir)
    qtbot.waitUntil(page.resume_button.isEnabled, timeout=10000)
    with qtbot.waitSignal(controller.run_started, timeout=10000) as resumed:
        qtbot.mouseClick(page.resume_button, Qt.LeftButton)
    _finish(qtbot, resumed.args[0])
    qtbot.waitUntil(lambda: page.view.notices.count() > 0, timeout=10000)
    notices = [page.view.notices.item(i).text() for i in range(page.view.notices.count())]
    assert any("eval.every_steps: 10 -> 1" in n and "train.max_steps: 2 -> 3" in n for n in notices), notices
    assert page.view.notices.isVisible()
    train = window.pages["Train"]  # the Train page follows the resumed run too
    train_notices = [train.view.notices.item(i).text() for i in range(train.view.notices.count())]
    assert any("eval.every_steps: 10 -> 1" in n for n in train_notices) and not train.view.notices.isHidden()

    # Branch from the checkpoint at step 2 with a learning rate it cannot continue with: a new run
    # from its weights (a rate of 0 keeps them, so the branch's last weights show where it began).
    _edit(first.run_dir, train__learning_rate=0.0)
    _click_run(qtbot, page, first.run_dir)
    qtbot.waitUntil(page.branch_button.isEnabled, timeout=10000)
    step2 = next(i for i in range(page.checkpoint_combo.count())
                 if Path(page.checkpoint_combo.itemData(i)).name == "step-000002")
    page.checkpoint_combo.setCurrentIndex(step2)
    with qtbot.waitSignal(controller.run_started, timeout=10000) as started:
        qtbot.mouseClick(page.branch_button, Qt.LeftButton)
    branch = started.args[0]
    assert branch.run_dir != first.run_dir and not page.banner.text
    _finish(qtbot, branch)
    ckpt = Path(first.run_dir, "checkpoints", "step-000002").resolve()
    assert configmod.load(Path(branch.run_dir) / "config.yaml").model.init_from == str(ckpt)
    events, _ = read_events(str(Path(branch.run_dir) / "events.jsonl"))
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3], "a new run counts its own steps"
    before = load_file(str(ckpt / "trainable.safetensors"))
    after = load_file(str(Path(branch.run_dir, "checkpoints", "step-000003", "trainable.safetensors")))
    assert sorted(before) == sorted(after) and all(before[k].equal(after[k]) for k in before)
    page.refresh()
    assert page.table.item(next(r for r, rec in enumerate(page.records) if rec.run_dir == str(branch.run_dir)),
                           1).text().endswith("-branch")
    tasks.wait_idle(30)
