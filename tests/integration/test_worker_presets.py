"""Every method preset trains two steps on the demo model, evaluates, answers a sample and saves final/."""

from __future__ import annotations

import pytest

from studio.core import config as configmod
from studio.core.config import METHODS
from studio.core.protocol import validate_event

from worker_runs import DEMO_MODEL, ROOT, read_events, train_in_process

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not (DEMO_MODEL / "model.safetensors").exists(), reason="demo model not built")]

QUICK = ["train.max_steps=2", "train.grad_accum=1", "train.batch_size=2", "data.max_length=256",
         "eval.every_steps=1", "eval.sample_prompts=[Hi]", "eval.sample_max_new_tokens=3", "output.report_to=[none]"]


@pytest.mark.parametrize("method", METHODS)
def test_method_preset_runs_on_the_demo_model(tmp_path, method):
    cfg = configmod.load(ROOT / "resources" / "presets" / f"{method}.yaml", QUICK)
    rows = (ROOT / cfg.data.train).read_text(encoding="utf-8").splitlines()[:40]
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg.data.train = str(tmp_path / "train.jsonl")
    cfg.model.path = str(DEMO_MODEL)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    configmod.save(cfg, run_dir / "config.yaml")
    assert train_in_process(run_dir) == "completed"
    events = read_events(run_dir)
    assert all(validate_event(e) == [] for e in events)
    kinds = [e["type"] for e in events]
    assert kinds.count("step") == 2 and kinds.count("eval") == 2 and "sample" in kinds
    assert (run_dir / "final" / "studio.json").exists()
