"""Checkpoints: atomic folders, the latest pointer, retention, and a full restore."""

from __future__ import annotations

import random

import pytest
import torch

from studio.core.errors import RunError
from studio.worker import checkpoint as ckpt


def _parts(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[0].weight.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    sched.step()
    return model, opt, sched


def test_save_then_load_restores_weights_optimizer_schedule_rng_and_state(tmp_path):
    model, opt, sched = _parts()
    state = ckpt.TrainState(step=7, epoch=1, batch_index=3, tokens_seen=99, warned=["forgetting"])
    folder = ckpt.save_checkpoint(tmp_path, model, opt, sched, state, "name: x\n")
    assert folder.name == "step-000007" and ckpt.latest_checkpoint(tmp_path) == folder
    assert (folder / "config.yaml").read_text() == "name: x\n"
    expected_next = (random.random(), torch.rand(1))

    other, opt2, sched2 = _parts(seed=1)
    restored = ckpt.load_checkpoint(folder, other, opt2, sched2)
    assert (restored.step, restored.epoch, restored.batch_index, restored.warned) == (7, 1, 3, ["forgetting"])
    assert torch.equal(other[1].weight, model[1].weight), "trainable weights restored"
    assert not torch.equal(other[0].weight, model[0].weight), "frozen weights are not in the checkpoint"
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert (random.random(), torch.rand(1)) == expected_next, "random streams continue where they were saved"


def test_retention_keeps_the_newest_and_cleans_partial_saves(tmp_path):
    model, opt, sched = _parts()
    (tmp_path / ".tmp-step-000099-1").mkdir()
    for step in (2, 4, 6):
        ckpt.save_checkpoint(tmp_path, model, opt, sched, ckpt.TrainState(step=step), "", keep=2)
    assert [p.name for p in ckpt.complete_checkpoints(tmp_path)] == ["step-000004", "step-000006"]
    assert not (tmp_path / ".tmp-step-000099-1").exists()


def test_retention_never_deletes_the_best_evaluations_checkpoint(tmp_path):
    model, opt, sched = _parts()
    for step in (2, 4, 6, 8):
        state = ckpt.TrainState(step=step, best_eval_loss=1.0, best_eval_step=4)  # eval rose after step 4
        ckpt.save_checkpoint(tmp_path, model, opt, sched, state, "", keep=2)
    assert [p.name for p in ckpt.complete_checkpoints(tmp_path)] == ["step-000004", "step-000006", "step-000008"]


def test_a_stale_or_missing_pointer_falls_back_to_the_newest_complete(tmp_path):
    model, opt, sched = _parts()
    for step in (1, 2):
        ckpt.save_checkpoint(tmp_path, model, opt, sched, ckpt.TrainState(step=step), "")
    (tmp_path / "latest").write_text("step-000009\n")
    assert ckpt.latest_checkpoint(tmp_path).name == "step-000002"
    (tmp_path / "latest").unlink()
    (tmp_path / "step-000002" / "state.json").unlink()  # as if the save died before its last file
    assert ckpt.latest_checkpoint(tmp_path).name == "step-000001"
    with pytest.raises(RunError, match="not a complete checkpoint"):
        ckpt.load_checkpoint(tmp_path / "step-000002", model, opt, sched)


def test_each_process_gets_its_own_random_state_back_and_another_process_count_is_refused(tmp_path):
    model, opt, sched = _parts()
    states = []
    for seed in (10, 11):  # what two processes' streams look like when the checkpoint is written
        random.seed(seed)
        torch.manual_seed(seed)
        states.append(ckpt.rng_state())
    folder = ckpt.save_checkpoint(tmp_path, model, opt, sched, ckpt.TrainState(step=1), "", rng_states=states)
    for index, seed in enumerate((10, 11)):
        random.seed(seed)
        torch.manual_seed(seed)
        expected = (random.random(), torch.rand(1))
        ckpt.load_checkpoint(folder, *_parts(), process_index=index, num_processes=2)
        assert (random.random(), torch.rand(1)) == expected
    for processes in (1, 3):  # the batch and the place in the data depend on the process count
        with pytest.raises(RunError, match=f"written by a run on 2 process\\(es\\) and this one has {processes}"):
            ckpt.load_checkpoint(folder, *_parts(), process_index=0, num_processes=processes)
    single = ckpt.save_checkpoint(tmp_path / "one", model, opt, sched, ckpt.TrainState(step=1), "")
    with pytest.raises(RunError, match="resume with 1 process"):
        ckpt.load_checkpoint(single, *_parts(), process_index=0, num_processes=2)


class _ShellCommand:
    """Unpickling this runs a shell command (what a crafted checkpoint file would carry)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("name", ["rng.pt", "optimizer.pt", "scheduler.pt"])
def test_a_crafted_pickle_in_a_checkpoint_is_refused_unrun_naming_the_file(tmp_path, name):
    model, opt, sched = _parts()
    folder = ckpt.save_checkpoint(tmp_path / "ckpts", model, opt, sched, ckpt.TrainState(step=3), "")
    marker = tmp_path / "payload-ran"
    torch.save({"state": {}, "param_groups": [], "python": _ShellCommand(marker)}, folder / name)
    other, opt2, sched2 = _parts(seed=1)
    before = other[1].weight.clone()
    with pytest.raises(RunError) as caught:
        ckpt.load_checkpoint(folder, other, opt2, sched2)
    assert not marker.exists(), "the payload ran while the checkpoint was loaded"
    assert str(folder / name) in caught.value.message and "refused" in caught.value.message
    assert torch.equal(other[1].weight, before), "nothing is restored from a refused checkpoint"


def test_an_rng_file_of_earlier_versions_with_a_numpy_array_still_resumes(tmp_path):
    import numpy as np

    model, opt, sched = _parts()
    folder = ckpt.save_checkpoint(tmp_path, model, opt, sched, ckpt.TrainState(step=1), "")
    np.random.seed(5)
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
               folder / "rng.pt")  # the layout written before the NumPy key became a tensor
    expected = np.random.random()
    ckpt.load_checkpoint(folder, *_parts())
    assert np.random.random() == expected


def test_a_damaged_or_missing_checkpoint_file_is_named(tmp_path):
    model, opt, sched = _parts()
    folder = ckpt.save_checkpoint(tmp_path, model, opt, sched, ckpt.TrainState(step=1), "")
    (folder / "scheduler.pt").write_bytes(b"not a torch file")
    with pytest.raises(RunError, match="scheduler.pt is damaged"):
        ckpt.load_checkpoint(folder, model, opt, sched)
    (folder / "scheduler.pt").unlink()
    with pytest.raises(RunError, match="scheduler.pt is missing"):
        ckpt.load_checkpoint(folder, model, opt, sched)


def _one_saved(tmp_path):
    model, opt, sched = _parts()
    first = ckpt.save_checkpoint(tmp_path, model, opt, sched, ckpt.TrainState(step=1), "")
    return model, opt, sched, first


def _assert_nothing_lost(tmp_path, first):
    assert not list(tmp_path.glob(".tmp-*")), "no partial checkpoint stays behind"
    assert ckpt.latest_checkpoint(tmp_path) == first and (first / "state.json").exists()


def test_a_disk_without_room_for_the_checkpoint_is_named_before_anything_is_written(tmp_path, monkeypatch):
    from collections import namedtuple

    from studio.core.errors import DiskError

    model, opt, sched, first = _one_saved(tmp_path)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(DiskError) as caught:
        ckpt.save_checkpoint(tmp_path, model, opt, sched, ckpt.TrainState(step=2), "")
    assert f"no space left on the disk holding {tmp_path}" in caught.value.message
    assert "save checkpoint step-000002" in caught.value.message and "MiB needed" in caught.value.message
    assert "studio train --resume" in caught.value.hint
    _assert_nothing_lost(tmp_path, first)


def test_a_disk_that_fills_during_the_checkpoint_leaves_the_previous_one_and_no_partial_folder(tmp_path, monkeypatch):
    import safetensors.torch

    from studio.core.errors import DiskError

    model, opt, sched, first = _one_saved(tmp_path)

    def fills_up(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"\0" * 100)
        raise safetensors.SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                                          'message: "No space left on device" })')

    monkeypatch.setattr(safetensors.torch, "save_file", fills_up)
    with pytest.raises(DiskError, match="no space left on the disk holding"):
        ckpt.save_checkpoint(tmp_path, model, opt, sched, ckpt.TrainState(step=2), "")
    _assert_nothing_lost(tmp_path, first)
