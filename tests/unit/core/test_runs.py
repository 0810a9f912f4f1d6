"""The run registry: rows, updates, and status that follows the worker process."""

from __future__ import annotations

import json
import subprocess
import sys

from studio.core.config import RunConfig
from studio.core.runs import Registry, last_finished_event, new_run_dir, pid_alive, runs_root


def _events(path, *events):
    with open(path, "w", encoding="utf-8") as fh:
        for e in events:
            fh.write(json.dumps({"v": 1, "time": 0, **e}, separators=(",", ":")) + "\n")


def test_add_get_update_list(tmp_path, studio_home):
    reg = Registry()
    assert reg.path.parent == studio_home
    cfg = RunConfig()
    cfg.method.name = "dora"
    run_id = reg.add(tmp_path / "a", cfg, "first")
    assert reg.add(tmp_path / "a", cfg, "again") == run_id, "one folder, one row"
    rec = reg.get(run_id)
    assert (rec.name, rec.method, rec.objective, rec.status) == ("first", "dora", "sft", "created")
    reg.update(run_id, status="running", pid=123, best_eval_loss=1.5)
    assert reg.get(tmp_path / "a").best_eval_loss == 1.5
    second = reg.add(tmp_path / "b", {"name": "b"})
    assert [r.id for r in reg.list()] == [second, run_id]
    assert reg.config(run_id)["method"]["name"] == "dora"


def test_new_run_dir_is_unique_and_under_home(studio_home):
    a = new_run_dir("demo lora/x")
    a.mkdir(parents=True)
    b = new_run_dir("demo lora/x")
    assert a != b and a.parent == runs_root() and "/" not in a.name[len(str(a.parent)):]


def test_dead_worker_without_finished_event_becomes_failed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    reg = Registry()
    run_id = reg.add(tmp_path, {})
    _events(tmp_path / "events.jsonl", {"type": "started"}, {"type": "step", "step": 1})
    reg.update(run_id, status="running", pid=proc.pid)
    changed = reg.refresh_status()
    rec = reg.get(run_id)
    assert [c.id for c in changed] == [run_id]
    assert rec.status == "failed" and "ended without" in rec.error and "--resume" in rec.hint


def test_dead_worker_with_finished_event_keeps_its_status(tmp_path):
    reg = Registry()
    run_id = reg.add(tmp_path, {})
    _events(tmp_path / "events.jsonl", {"type": "started"}, {"type": "finished", "status": "stopped"})
    reg.update(run_id, status="running", pid=2**22 + 12345)
    reg.refresh_status()
    assert reg.get(run_id).status == "stopped"


def test_live_worker_stays_running(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        reg = Registry()
        run_id = reg.add(tmp_path, {})
        reg.update(run_id, status="running", pid=proc.pid)
        assert reg.refresh_status() == [] and reg.get(run_id).status == "running"
    finally:
        proc.kill()
        proc.wait()


def test_a_resumed_attempt_ignores_the_previous_finish(tmp_path):
    path = tmp_path / "events.jsonl"
    _events(path, {"type": "started"}, {"type": "finished", "status": "stopped"}, {"type": "started"},
            {"type": "log", "text": "\"type\":\"finished\" in text only"})
    assert last_finished_event(path) is None


def test_an_older_registry_gains_new_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT, run_dir TEXT, status TEXT)")
        db.execute("INSERT INTO runs VALUES ('abc', 'old run', '/x', 'completed')")
    reg = Registry(path)
    rec = reg.get("abc")
    assert (rec.name, rec.status, rec.best_eval_loss) == ("old run", "completed", None)
    reg.update("abc", best_eval_loss=0.5)
    assert reg.get("abc").best_eval_loss == 0.5


def _two_runs(tmp_path):
    """A completed run under the runs root and a stopped one kept elsewhere (--run-dir), registered."""
    import yaml

    reg = Registry()
    made = {}
    for folder, status, step in ((new_run_dir("alpha"), "completed", 30), (tmp_path / "elsewhere", "stopped", 6)):
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(yaml.safe_dump({"name": folder.name, "method": {"name": "lora"}}))
        _events(folder / "events.jsonl", {"type": "started", "max_steps": 30, "config": {}},
                *({"type": "step", "step": s} for s in range(1, step + 1)),
                {"type": "eval", "step": step, "eval_loss": 1.25}, {"type": "finished", "status": status})
        reg.update(reg.add(folder, yaml.safe_load((folder / "config.yaml").read_text())), status=status, step=step)
        made[str(folder.resolve())] = (folder.name, status, step)
    return made


def _listed(reg):
    return {r.run_dir: (r.name, r.status, r.step) for r in reg.list()}


def test_an_emptied_registry_is_rebuilt_from_the_run_folders(tmp_path, studio_home):
    made = _two_runs(tmp_path)
    (studio_home / "runs.sqlite").write_bytes(b"")
    reg = Registry()
    assert "was empty" in reg.notice and "rebuilt from 2 run folder(s)" in reg.notice
    assert _listed(reg) == made
    assert all(r.max_steps == 30 and r.best_eval_loss == 1.25 and r.method == "lora" for r in reg.list())
    assert Registry().notice == "", "rebuilt once"


def test_a_corrupt_registry_is_moved_aside_and_rebuilt_and_studio_runs_says_so(tmp_path, studio_home, capsys):
    from studio.cli import main

    made = _two_runs(tmp_path)
    (studio_home / "runs.sqlite").write_bytes(b"this is not a database\n" * 200)
    assert main(["runs", "--json"]) == 0
    out, err = capsys.readouterr()
    assert {json.loads(line)["run_dir"]: json.loads(line)["status"] for line in out.splitlines()} == \
        {d: status for d, (_, status, _) in made.items()}
    assert "was damaged" in err and "no run was lost" in err
    kept = list(studio_home.glob("runs.sqlite.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"this is not a database"), "the damaged file is kept"
    assert _listed(Registry()) == made


def test_a_rebuilt_run_still_training_is_followed_by_its_lock(tmp_path, studio_home):
    folder = new_run_dir("live")
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("name: live\n")
    _events(folder / "events.jsonl", {"type": "started", "max_steps": 9, "config": {}}, {"type": "step", "step": 2})
    (folder / "worker.lock").write_text(json.dumps({"pid": 999999999, "host": "x"}))
    (studio_home / "runs.sqlite").write_bytes(b"\0" * 4096)
    reg = Registry()
    rec = reg.find(folder)
    assert (rec.status, rec.pid, rec.step) == ("running", 999999999, 2)
    reg.refresh_status()
    assert reg.find(folder).status == "failed", "its worker is gone: settled as any other run"


def test_a_resumed_run_keeps_its_first_start_and_time_trained_when_read_back_from_its_folder(tmp_path):
    import json

    from studio.core import config as configmod
    from studio.core.run_index import row_from_folder
    from studio.core.runs import RunRecord

    configmod.save(configmod.RunConfig(name="resumed"), tmp_path / "config.yaml")
    events = [{"type": "started", "time": 100.0, "max_steps": 30}, {"type": "finished", "time": 122.0,
                                                                     "status": "stopped"},
              {"type": "started", "time": 130.0, "max_steps": 30, "start_step": 15},
              {"type": "finished", "time": 149.0, "status": "completed"}]
    (tmp_path / "events.jsonl").write_text("".join(json.dumps({"v": 1, **e}) + "\n" for e in events))
    fields, _ = row_from_folder(tmp_path)
    assert (fields["first_started"], fields["started"], fields["trained_s"]) == (100.0, 130.0, 22.0)
    rec = RunRecord(id="x", name="resumed", run_dir=str(tmp_path), **{k: v for k, v in fields.items() if k != "name"})
    assert rec.duration_s() == 41.0
