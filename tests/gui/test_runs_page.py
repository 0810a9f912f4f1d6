"""The Runs page over a real registry holding runs made from recorded worker streams."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QFileDialog, QLineEdit

from studio.core import config as configmod
from studio.core.runs import Registry
from studio.gui.pages.run_compare import config_diff, flatten
from studio.gui.pages.runs_page import RunsPage
from studio.gui.runner import RunsController
from studio.gui.state import StudioState

from real_runs import model_dir, quick_config  # noqa: F401  (fixture; tests/gui helper module)

ROOT = Path(__file__).resolve().parents[2]
STREAMS = ROOT / "tests" / "fixtures" / "streams"
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


def make_run(tmp_path: Path, registry: Registry, name: str, stream: str, status: str, lr: float, **fields) -> Path:
    run_dir = tmp_path / name
    run_dir.mkdir()
    cfg = configmod.RunConfig(name=name)
    cfg.train.learning_rate = lr
    configmod.save(cfg, run_dir / "config.yaml")
    shutil.copy(STREAMS / f"{stream}.jsonl", run_dir / "events.jsonl")
    run_id = registry.add(run_dir, cfg, name)
    registry.update(run_id, status=status, started=time.time() - 120, ended=time.time() - 60, **fields)
    return run_dir.resolve()


@pytest.fixture
def runs(tmp_path):
    registry = Registry()
    return {
        "done": make_run(tmp_path, registry, "lr-2e-4", "completed", "completed", 2e-4,
                         final_eval_loss=1.2911, best_eval_loss=1.2911),
        "stopped": make_run(tmp_path, registry, "lr-1e-3", "stopped", "stopped", 1e-3),
    }


@pytest.fixture
def page(qtbot, runs):
    widget = RunsPage(StudioState(), RunsController())
    qtbot.addWidget(widget)
    widget.resize(1280, 800)
    widget.show()
    return widget


def row_of(page, run_dir: Path) -> int:
    return next(i for i, rec in enumerate(page.records) if rec.run_dir == str(run_dir))


def click_row(qtbot, page, row: int, modifier=Qt.NoModifier) -> None:
    rect = page.table.visualRect(page.table.model().index(row, 1))
    qtbot.mouseClick(page.table.viewport(), Qt.LeftButton, modifier, rect.center())


def test_a_run_is_renamed_in_its_name_cell(qtbot, page, runs):
    row = row_of(page, runs["done"])
    rect = page.table.visualRect(page.table.model().index(row, 1))
    qtbot.mouseClick(page.table.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
    qtbot.mouseDClick(page.table.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
    qtbot.waitUntil(lambda: page.table.state() == QAbstractItemView.EditingState)
    editor = page.table.viewport().findChild(QLineEdit)
    editor.selectAll()
    qtbot.keyClicks(editor, "best so far")
    qtbot.keyClick(editor, Qt.Key_Return)  # the table commits the edit from the event loop
    qtbot.waitUntil(lambda: page.controller.registry.find(runs["done"]).name == "best so far")
    page.refresh()
    assert page.table.item(row_of(page, runs["done"]), 1).text() == "best so far"
    # Only the name is editable; an emptied name puts the old one back.
    assert not page.table.item(row, 0).flags() & Qt.ItemIsEditable
    page.table.item(row, 1).setText("  ")
    assert page.table.item(row, 1).text() == "best so far"
    assert page.controller.registry.find(runs["done"]).name == "best so far"


def test_table_lists_the_registry(page, runs):
    assert page.table.rowCount() == 2
    done = row_of(page, runs["done"])
    assert page.table.item(done, 0).text() == "✓ completed"
    assert page.table.item(done, 1).text() == "lr-2e-4"
    assert page.table.item(done, 6).text() == "1.2911"
    assert page.table.item(done, 3).text() == "1:00"  # duration
    assert page.table.item(row_of(page, runs["stopped"]), 0).text() == "■ stopped"


def test_clicking_a_run_opens_its_curves(qtbot, page, runs):
    # Before a run is chosen: a sentence saying what to do, not empty axes.
    assert page.view.empty_label.isVisible() and not page.view.panel.isVisible()
    assert page.view.empty_label.text().startswith("Select a run in the table")
    click_row(qtbot, page, row_of(page, runs["done"]))
    assert page.view.panel.isVisible() and not page.view.empty_label.isVisible()
    qtbot.waitUntil(lambda: page.view.panel.loss.point_count("train") == 40, timeout=5000)
    assert page.view.panel.loss.point_count("eval") == 4
    qtbot.waitUntil(lambda: page.view.status_label.text() == "Completed", timeout=5000)
    assert page.state.current_run == str(runs["done"])


def test_selecting_two_runs_overlays_loss_and_diffs_config(qtbot, page, runs):
    click_row(qtbot, page, row_of(page, runs["done"]))
    click_row(qtbot, page, row_of(page, runs["stopped"]), Qt.ControlModifier)
    assert page.tabs.currentWidget() is page.compare
    series = page.compare.plot.series
    assert len(series["lr-2e-4 train"]) == 40 and len(series["lr-1e-3 train"]) == 12
    assert len(series["lr-2e-4 eval"]) == 4 and len(series["lr-1e-3 eval"]) == 1
    diff = {page.compare.diff.item(r, 0).text(): (page.compare.diff.item(r, 1).text(), page.compare.diff.item(r, 2).text())
            for r in range(page.compare.diff.rowCount())}
    assert set(diff) == {"name", "train.learning_rate"}
    assert set(diff["train.learning_rate"]) == {"0.0002", "0.001"}


def test_stopped_run_offers_its_checkpoint(qtbot, page, runs):
    ckpt = runs["stopped"] / "checkpoints" / "checkpoint-12"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text("{}")
    click_row(qtbot, page, row_of(page, runs["stopped"]))
    qtbot.waitUntil(lambda: page.view.status_label.text().startswith("Stopped"), timeout=5000)
    assert page.checkpoint_combo.currentText() == "checkpoint-12"
    assert page.resume_button.isEnabled() and page.branch_button.isEnabled()


def test_run_whose_worker_died_shows_failed_with_error_and_log_tail(qtbot, tmp_path, runs):
    registry = Registry()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = make_run(tmp_path, registry, "killed", "crashed", "running", 2e-4)
    (run_dir / "worker.log").write_text("step 5 done\nKilled: out of memory (oom-killer)\n")
    registry.update(registry.find(run_dir).id, pid=dead.pid, ended=None)
    page = RunsPage(StudioState(), RunsController())
    qtbot.addWidget(page)
    page.show()
    row = row_of(page, run_dir)
    assert page.table.item(row, 0).text() == "✗ failed"
    click_row(qtbot, page, row)
    qtbot.waitUntil(lambda: page.view.status_label.text() == "Failed", timeout=5000)
    assert "ended without reporting" in page.view.banner.text
    assert "oom-killer" in page.view.log_tail.toPlainText()


def answer_folder_dialog(qtbot, path: Path) -> None:
    """Type ``path`` into the export's folder dialog once it is open, and press Export."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QDialogButtonBox

    def answer():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QFileDialog):
            QTimer.singleShot(50, answer)
            return
        edit = dialog.findChild(QLineEdit, "fileNameEdit")
        edit.setText(str(path))
        qtbot.mouseClick(dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.Save) or
                         dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.Open), Qt.LeftButton)
        QTimer.singleShot(2000, dialog, dialog.reject)  # closes a dialog that refused the path

    QTimer.singleShot(100, answer)


def test_export_goes_to_a_folder_that_does_not_exist_yet(qtbot, page, runs, tmp_path):
    click_row(qtbot, page, row_of(page, runs["done"]))
    new = tmp_path / "exports" / "my-adapter"  # neither folder exists
    (tmp_path / "exports").mkdir()
    answer_folder_dialog(qtbot, new)
    page.export.ask_and_export("adapter")
    assert page.export.out_dir == str(new)
    assert page.export.result.text() == f"Exporting the adapter to {new}…"
    qtbot.waitUntil(lambda: page.export.proc.state() == page.export.proc.ProcessState.NotRunning, timeout=60000)


def test_export_of_an_unfinished_run_says_why_it_failed(qtbot, page, runs, tmp_path):
    click_row(qtbot, page, row_of(page, runs["stopped"]))
    assert page.export.adapter_button.isEnabled()
    with qtbot.waitSignal(page.export.proc.finished, timeout=60000):
        page.export.export("adapter", str(tmp_path / "out"))
    assert page.export.result.text().startswith("Export failed")
    assert "final/" in page.export.result.text()


def test_the_best_evaluations_checkpoint_is_labelled(tmp_path):
    import json

    from studio.gui.run_view import checkpoint_labels

    paths = []
    for step in (10, 20, 30):
        folder = tmp_path / f"step-{step:06d}"
        folder.mkdir()
        (folder / "state.json").write_text(json.dumps({"step": step, "best_eval_step": 10}))
        paths.append(str(folder))
    assert [label for label, _ in checkpoint_labels(paths)] == ["step-000030", "step-000020",
                                                                 "step-000010 · best eval"]
    assert [path for _, path in checkpoint_labels(paths)] == paths[::-1]


def test_config_diff_keeps_only_differing_settings():
    a, b = flatten({"train": {"lr": 1, "bs": 4}, "name": "a"}), flatten({"train": {"lr": 2, "bs": 4}, "name": "a"})
    assert config_diff([a, b]) == [("train.lr", [1, 2])]


def test_a_run_already_read_elsewhere_is_replayed_in_slices(qtbot, runs, monkeypatch):
    """A second view of a followed run reads its history from the log, slice by slice."""
    from studio.gui import run_view
    from studio.gui.run_view import RunView

    controller = RunsController()
    proc = controller.open_run(str(runs["done"]))
    with qtbot.waitSignal(proc.finished, timeout=5000):
        pass
    monkeypatch.setattr(run_view, "MAX_READ", 512)  # a few events per slice
    view = RunView()
    qtbot.addWidget(view)
    view.watch(proc)
    # Only the first slice is read at once; the rest follows on a timer, the window stays free.
    assert view.panel.loss.point_count("train") < 40 and view.status_label.text() != "Completed"
    qtbot.waitUntil(lambda: view.status_label.text() == "Completed", timeout=10000)
    assert view.panel.loss.point_count("train") == 40
    assert list(view.panel.loss.series["train"].x) == list(range(1, 41))


@pytest.mark.integration
@pytest.mark.slow
def test_branch_resume_overlay_and_export_a_real_run(qtbot, model_dir, tmp_path, monkeypatch):
    controller = RunsController()
    first = controller.start_run(quick_config(model_dir, max_steps=20))
    qtbot.waitUntil(lambda: sum(e["type"] == "step" for e in first.history()) >= 2, timeout=300000)
    with qtbot.waitSignal(first.finished, timeout=300000) as stopped:
        assert controller.stop(first.run_dir)
    assert stopped.args[0].status == "stopped", stopped.args[0].error + stopped.args[0].log_tail

    page = RunsPage(StudioState(), controller)
    qtbot.addWidget(page)
    page.show()
    click_row(qtbot, page, row_of(page, first.run_dir))
    qtbot.waitUntil(lambda: page.branch_button.isEnabled(), timeout=10000)
    with qtbot.waitSignal(controller.run_started, timeout=10000) as started:
        qtbot.mouseClick(page.branch_button, Qt.LeftButton)
    branch = started.args[0]
    assert branch.run_dir != first.run_dir
    with qtbot.waitSignal(branch.finished, timeout=400000) as done:
        pass
    assert done.args[0].status == "completed", done.args[0].error + done.args[0].log_tail
    page.refresh()
    assert page.table.rowCount() == 2
    assert page.table.item(row_of(page, branch.run_dir), 1).text().endswith("-branch")

    page.select_runs([first.run_dir, branch.run_dir])
    series = page.compare.plot.series
    names = [n for n in series if n.endswith(" train")]
    assert len(names) == 2 and all(len(series[n]) >= 2 for n in names)
    branch_steps = series[next(n for n in names if "branch" in n)].x
    assert branch_steps.min() > 1 and branch_steps.max() == 20  # it started from the checkpoint's step

    # Resume the stopped run itself from the Runs page, then export it merged.
    page.select_runs([first.run_dir])
    qtbot.waitUntil(lambda: page.resume_button.isEnabled(), timeout=10000)
    with qtbot.waitSignal(controller.run_started, timeout=10000) as resumed:
        qtbot.mouseClick(page.resume_button, Qt.LeftButton)
    assert resumed.args[0].run_dir == first.run_dir
    with qtbot.waitSignal(resumed.args[0].finished, timeout=400000) as done:
        pass
    assert done.args[0].status == "completed", done.args[0].error + done.args[0].log_tail
    out = tmp_path / f"{Path(first.run_dir).name}-merged"
    answer_folder_dialog(qtbot, out)
    qtbot.waitUntil(lambda: page.export.merged_button.isEnabled(), timeout=10000)
    with qtbot.waitSignal(page.export.proc.finished, timeout=300000):
        qtbot.mouseClick(page.export.merged_button, Qt.LeftButton)
    assert page.export.result.text() == f"Exported to {out}", page.export.result.text()
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    assert list(out.glob("*.safetensors"))


def test_the_window_opens_over_a_damaged_registry_and_says_it_was_rebuilt(qtbot, runs, studio_home):
    from studio.gui import tasks
    from studio.gui.app import build_window

    (studio_home / "runs.sqlite").write_bytes(b"garbage" * 1000)
    window = build_window()
    qtbot.addWidget(window)
    page = window.pages["Runs"]
    assert "damaged" in page.banner.text and "no run was lost" in page.banner.text
    assert {r.run_dir for r in page.records} == {str(d) for d in runs.values()}
    tasks.wait_idle(30)


def test_resuming_after_an_edit_the_checkpoint_cannot_take_shows_the_differences(qtbot, page, runs):
    ckpt = runs["stopped"] / "checkpoints" / "step-000012"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text("{}")
    shutil.copy(runs["stopped"] / "config.yaml", ckpt / "config.yaml")
    cfg = configmod.load(runs["stopped"] / "config.yaml")
    cfg.train.batch_size = 16
    configmod.save(cfg, runs["stopped"] / "config.yaml")
    click_row(qtbot, page, row_of(page, runs["stopped"]))
    qtbot.waitUntil(lambda: page.resume_button.isEnabled(), timeout=5000)
    qtbot.mouseClick(page.resume_button, Qt.LeftButton)
    assert "train.batch_size: 4 in the checkpoint, 16 now" in page.banner.text
    assert "set them back in config.yaml" in page.banner.text
    assert Registry().find(runs["stopped"]).status == "stopped", "nothing was started"
