"""A failing run ends with one failed ``finished`` event carrying an error and a hint, and exit 1."""

from __future__ import annotations

import pytest
import torch

from studio.core.protocol import validate_event
from studio.core.runs import Registry
from studio.worker.failures import OOM_HINT, explain
from studio.worker.main import main

from worker_runs import make_run_dir, read_events


def _finished(run_dir):
    events = read_events(run_dir)
    assert [e["type"] for e in events].count("finished") == 1 and events[-1]["type"] == "finished"
    assert all(validate_event(e) == [] for e in events)
    return events[-1]


def test_deleted_data_file_fails_naming_the_file(tmp_path, tiny_model):
    run_dir = make_run_dir(tmp_path, tiny_model)
    (tmp_path / "train.jsonl").unlink()
    assert main([str(run_dir)]) == 1
    done = _finished(run_dir)
    assert done["status"] == "failed" and "train.jsonl" in done["error"] and "data.train" in done["error"]
    assert "deleted" in done["hint"]
    rec = Registry().find(run_dir)
    assert rec.status == "failed" and rec.error == done["error"] and rec.ended


def test_impossible_setting_fails_with_the_setting_named(tmp_path, tiny_model):
    run_dir = make_run_dir(tmp_path, tiny_model)
    text = (run_dir / "config.yaml").read_text().replace("device: cpu", "device: cuda")
    (run_dir / "config.yaml").write_text(text)
    if torch.cuda.is_available():
        return
    assert main([str(run_dir)]) == 1
    done = _finished(run_dir)
    assert "train.device" in done["error"] and done["hint"]


def test_resume_without_checkpoint_is_explained(tmp_path, tiny_model):
    run_dir = make_run_dir(tmp_path, tiny_model)
    assert main([str(run_dir), "--resume"]) == 1
    done = _finished(run_dir)
    assert "no complete checkpoint" in done["error"] and "save_every_steps" in done["hint"]


def test_missing_run_folder_is_exit_2(tmp_path):
    assert main([str(tmp_path / "nope")]) == 2


def test_out_of_memory_gets_actionable_hint():
    error, hint = explain(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert error.startswith("out of memory") and hint == OOM_HINT
    assert "batch_size" in hint and "gradient_checkpointing" in hint
    assert explain(RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate"))[1] == OOM_HINT


@pytest.mark.parametrize("text", [
    "[enforce fail at alloc_cpu.cpp:116] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate "
    "49392123904 bytes. Error code 12 (Cannot allocate memory)",
    "MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.20 GB, max allowed: 18.13 GB)",
    "HIP out of memory. Tried to allocate 2.00 GiB", "std::bad_alloc"])
def test_every_allocators_out_of_memory_names_the_setting_to_lower_first(text):
    from studio.core.config import RunConfig

    cfg = RunConfig()
    cfg.train.batch_size, cfg.train.grad_accum = 8, 2
    error, hint = explain(RuntimeError(text), cfg)
    assert error.startswith("out of memory")
    assert hint.startswith("lower train.batch_size first (8 -> 4; train.grad_accum 2 -> 4 keeps the effective batch)")
    assert "data.max_length (1024)" in hint and "gradient_checkpointing" in hint


def test_unknown_errors_point_to_the_log():
    error, hint = explain(ValueError("boom"))
    assert error == "ValueError: boom" and "worker.log" in hint


def test_qlora_without_bitsandbytes_says_what_to_install(monkeypatch):
    import importlib.util

    from studio.core.config import RunConfig
    from studio.core.errors import ModelError
    from studio.worker.methods import bnb_config

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    cfg = RunConfig()
    cfg.method.name = "qlora"
    try:
        bnb_config(cfg, "bf16")
    except ModelError as exc:
        assert "bitsandbytes" in exc.message and "lora" in exc.hint
    else:
        raise AssertionError("expected a ModelError")
