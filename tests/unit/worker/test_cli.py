"""``studio train``/``runs``/``export`` argument handling, without training (fast)."""

from __future__ import annotations

import json

import pytest

from studio.cli import main
from studio.cli.train import ProgressPrinter
from studio.core.runs import Registry

from worker_runs import ROOT

DEMO = str(ROOT / "resources" / "presets" / "demo.yaml")


def test_bad_config_reports_every_problem_at_once(tmp_path, capsys):
    code = main(["train", DEMO, "train.batch_size=0", "method.name=lorax", "nonsense", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert "train.batch_size" in err and "method.name" in err and "nonsense" in err and "3 problem(s)" in err
    assert not (tmp_path / "r").exists(), "nothing is created for an invalid config"


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_existing_run_folder_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("name: x\n")
    assert main(["train", DEMO, "--run-dir", str(tmp_path)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_print_launch_command_creates_the_run_folder(tmp_path, capsys):
    code = main(["train", DEMO, "--run-dir", str(tmp_path / "r"), "--print-launch-command", "--nodes", "2",
                 "--gpus-per-node", "4"])
    out = capsys.readouterr().out
    assert code == 0 and (tmp_path / "r" / "config.yaml").exists()
    assert out.count("accelerate launch") == 2, out
    rec = Registry().find(tmp_path / "r")
    assert rec and rec.status == "created" and rec.method == "lora"


def test_dry_run_prints_the_preflight_report(capsys):
    code = main(["train", DEMO, "--dry-run"])
    out = capsys.readouterr().out
    assert code in (0, 1) and "memory" in out.lower()


def test_runs_lists_the_registry(tmp_path, capsys):
    reg = Registry()
    run_id = reg.add(tmp_path / "a", {"name": "alpha", "method": {"name": "dora"}})
    reg.update(run_id, status="failed", error="file not found: x.jsonl", hint="restore it", step=3, max_steps=10)
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "failed" in out and "3/10" in out and "file not found: x.jsonl" in out
    assert main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["id"] == run_id


def test_export_of_an_unfinished_run_is_explained(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("name: x\n")
    assert main(["export", str(tmp_path), "--adapter", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no final/" in err and "--checkpoint" in err


def test_progress_printer_is_readable_and_survives_split_lines(capsys):
    printer = ProgressPrinter()
    printer.feed('{"v":1,"type":"step","time":0,"step":3,"epoch":0.1,"loss":1.25,"learning_rate":0.001,"grad_n')
    printer.feed('orm":1.0,"tokens_per_second":900,"tokens_seen":10,"memory_mib":512}\nplain text line\n')
    printer.feed('{"v":1,"type":"finished","time":0,"status":"failed","error":"out of memory","hint":"lower it"}')
    printer.flush()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("step 3/0  loss 1.2500") and out[1] == "plain text line"
    assert out[2:] == ["finished: failed", "error: out of memory", "hint: lower it"]


def test_progress_printer_adds_what_the_objective_reports(capsys):
    printer = ProgressPrinter()
    printer.feed('{"v":1,"type":"step","time":0,"step":2,"epoch":0.1,"loss":0.6931,"learning_rate":0.0001,'
                 '"grad_norm":1.0,"tokens_per_second":900,"tokens_seen":10,"memory_mib":512,'
                 '"rewards/margins":0.25,"rewards/accuracies":0.75,"rewards/chosen":0.1}\n')
    printer.feed('{"v":1,"type":"eval","time":0,"step":2,"eval_loss":0.65,"perplexity":null,"metrics":'
                 '{"runtime":0.7,"rewards/margins":0.08,"rewards/accuracies":1.0}}\n')
    printer.feed('{"v":1,"type":"eval","time":0,"step":4,"eval_loss":1.2,"perplexity":3.32,"metrics":'
                 '{"qa":{"f1":0.5,"count":3}}}\n')
    printer.flush()
    step, dpo_eval, sft_eval = capsys.readouterr().out.splitlines()
    assert step.startswith("step 2/0  loss 0.6931  margin 0.250  ranked right 0.750  lr 1.00e-04")
    assert dpo_eval == "eval at step 2: loss 0.6500  margin 0.080  ranked right 1.000"
    assert sft_eval == 'eval at step 4: loss 1.2000  perplexity 3.32  {"qa": {"f1": 0.5, "count": 3}}'


@pytest.mark.parametrize("args", [["export", "x"], ["export", "x", "--merged", "a", "--adapter", "b"]])
def test_export_needs_exactly_one_target(args):
    with pytest.raises(SystemExit):
        main(args)


def test_overrides_may_follow_options(tmp_path, capsys):
    code = main(["train", DEMO, "--run-dir", str(tmp_path / "r"), "train.batch_size=0", "--print-launch-command"])
    assert code == 2 and "train.batch_size" in capsys.readouterr().err


def test_dry_run_warns_when_the_estimate_exceeds_the_free_memory(capsys, monkeypatch):
    """A dry run that needs more than the machine has free says so, and what to lower first."""
    from studio.core import machine

    monkeypatch.setattr(machine, "free_memory", lambda device: (64 * 2**20, "this machine's RAM"))
    main(["train", DEMO, "--dry-run", "train.device=cpu", "train.batch_size=8"])
    out = capsys.readouterr().out
    assert "WARNING [memory]" in out and "this machine's RAM has 64.0 MiB free now" in out
    assert "lower train.batch_size first (8 -> 4; train.grad_accum 1 -> 2 keeps the effective batch)" in out
    monkeypatch.setattr(machine, "free_memory", lambda device: (2**40, "this machine's RAM"))
    main(["train", DEMO, "--dry-run", "train.device=cpu"])
    assert "[memory]" not in capsys.readouterr().out


def test_the_ram_this_machine_has_free_is_read():
    from studio.core.machine import free_memory

    free, where = free_memory("cpu")
    assert 0 < free and where == "this machine's RAM"


def test_a_registry_that_cannot_be_written_leaves_no_half_made_run_and_a_retry_works(tmp_path, capsys, monkeypatch):
    import sqlite3

    def read_only(self, *args, **kwargs):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    args = ["train", DEMO, "--run-dir", str(tmp_path / "r"), "--print-launch-command"]
    monkeypatch.setattr(Registry, "add", read_only)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "could not register the run in" in err and "runs.sqlite" in err and "STUDIO_HOME" in err
    assert not (tmp_path / "r" / "config.yaml").exists()
    monkeypatch.undo()
    assert main(args) == 0, "the same command works once the registry can be written"


def test_a_run_folder_that_cannot_be_written_is_named(tmp_path, capsys, monkeypatch):
    import errno
    import os

    from studio.worker import main as worker

    (tmp_path / "config.yaml").write_text("name: x\n")
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert worker.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'worker.lock'} is read-only or not writable by you" in err and "Traceback" not in err
