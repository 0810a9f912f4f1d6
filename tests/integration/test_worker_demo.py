"""The embedded default: ``studio train`` on the demo preset finishes quickly with a falling loss.

Then ``studio runs`` lists the run as completed and ``studio export --merged`` writes a model
transformers loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from studio.core.protocol import validate_event

from worker_runs import DEMO_MODEL, ROOT, one_thread_env, read_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _studio(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, cwd=str(ROOT),
                          env=one_thread_env(), timeout=timeout)


@pytest.mark.skipif(not (DEMO_MODEL / "model.safetensors").exists(), reason="demo model not built")
def test_demo_preset_trains_lists_and_exports(tmp_path):
    run_dir = tmp_path / "demo"
    started = time.monotonic()
    done = _studio("train", "resources/presets/demo.yaml", "--run-dir", str(run_dir))
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    assert "finished: completed" in done.stdout and "step 30/30" in done.stdout
    events = read_events(run_dir)
    assert all(validate_event(e) == [] for e in events)
    losses = [e["loss"] for e in events if e["type"] == "step"]
    evals = [e["eval_loss"] for e in events if e["type"] == "eval"]
    assert len(losses) == 30 and sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.05, losses
    assert evals == sorted(evals, reverse=True) and evals[-1] < evals[0], evals
    assert [e for e in events if e["type"] == "sample"], "a sample answer at the end"
    assert list((run_dir / "tensorboard").iterdir())
    print(f"demo preset: {wall:.1f} s wall for studio train (loss {losses[0]:.3f} -> {losses[-1]:.3f})")

    listed = [json.loads(line) for line in _studio("runs", "--json").stdout.splitlines()]
    mine = [r for r in listed if r["run_dir"] == str(run_dir.resolve())]
    assert len(mine) == 1 and mine[0]["status"] == "completed" and mine[0]["best_eval_loss"] == pytest.approx(evals[-1])

    out = tmp_path / "merged"
    exported = _studio("export", str(run_dir), "--merged", str(out))
    assert exported.returncode == 0, exported.stderr[-2000:]
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(str(out)).config.model_type == "llama"
