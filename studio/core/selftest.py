"""Check an installation: PyTorch and the GPU it sees, bf16, a Qt window, two training steps.

``studio --self-test`` prints the checks and a verdict; the installer runs it last; the window
can call :func:`run_self_test` (from a thread: each check is a child process, so the window
never imports torch). A check that fails says what to do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from studio.core import accelerator
from studio.core.models import resource_path

DEMO_PRESET = "resources/presets/demo.yaml"
#: Two optimizer steps on the demo model, nothing else (no evaluation, samples or loggers).
TRAIN_OVERRIDES = ["train.max_steps=2", "eval.every_steps=0", "output.save_every_steps=100",
                   "output.report_to=[]", "eval.sample_prompts=[]"]
REPAIR_HINT = "run the installer again and choose Repair (or: studio-setup repair)"


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    hint: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def verdict(self) -> str:
        if self.ok:
            return "Studio is installed correctly and can train on this machine."
        failed = ", ".join(c.name for c in self.checks if not c.ok)
        return f"Studio is NOT ready: {failed} failed. The lines marked FAIL say what to do."

    def to_dict(self) -> dict:
        return {"ok": self.ok, "verdict": self.verdict(), "checks": [c.__dict__ for c in self.checks]}


def _child(args: list[str], timeout: float, env: dict | None = None) -> tuple[int, str, str]:
    # From an empty folder: `-m` puts the current folder first on sys.path, and files there
    # (a studio/ folder, a re.py) must not stand in for the installed modules.
    with tempfile.TemporaryDirectory(prefix="studio-selftest-cwd-") as cwd:
        try:
            p = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                               env={**os.environ, **(env or {})}, cwd=cwd)
            return p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            return -1, "", f"did not finish within {timeout:.0f} s"


def _last_json(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def _tail(text: str) -> str:
    """The line that says what went wrong: Studio's ``error:`` line, else the last line."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines or ["no output"])[-1][:300]


def check_studio() -> Check:
    """Which Studio this is and where it runs from (the installed environment, or a checkout)."""
    import studio

    return Check("Studio", True, f"Studio {studio.__version__} in {Path(studio.__file__).parent}, "
                                 f"Python {sys.version.split()[0]} at {sys.executable}")


def check_torch(expect_gpu: bool, gpu_seen: str) -> list[Check]:
    rc, out, err = _child(["-m", "studio.worker.selftest"], timeout=300)
    facts = _last_json(out) if rc == 0 else None
    if facts is None:
        return [Check("PyTorch", False, f"PyTorch does not load: {_tail(err)}", REPAIR_HINT)]
    build = facts["cuda"] and f"CUDA {facts['cuda']}" or facts["hip"] and f"ROCm {facts['hip']}" or "CPU/MPS build"
    checks = [Check("PyTorch", True, f"torch {facts['torch']} ({build}), Python {facts['python']}")]
    if facts["device"] == "cpu" and expect_gpu:
        checks.append(Check("accelerator", False, f"this machine has a GPU ({gpu_seen}) but PyTorch sees none, "
                                                  "so training would run on the CPU",
                            f"update the GPU driver, then {REPAIR_HINT}"))
    else:
        memory = f", {facts['memory_gib']} GiB" if facts["memory_gib"] else ""
        checks.append(Check("accelerator", True, f"{facts['device']}: {facts['name']}{memory}"))
    bf16 = facts["bf16"]
    checks.append(Check("bf16", not bf16.startswith("unsupported"), bf16,
                        "" if not bf16.startswith("unsupported") else "train with precision fp16 or fp32"))
    return checks


def check_qt() -> Check:
    rc, out, err = _child(["-m", "studio.gui.selftest"], timeout=120, env={"QT_QPA_PLATFORM": "offscreen"})
    facts = _last_json(out) if rc == 0 else None
    if not facts or not facts.get("ok"):
        return Check("window", False, f"Qt could not open a window: {_tail(err)}", REPAIR_HINT)
    return Check("window", True, f"Qt {facts['qt']} opened a window ({facts['platform']})")


def check_training() -> Check:
    preset = resource_path(DEMO_PRESET).resolve()  # the child may run in another folder
    if not preset.exists():
        return Check("training", False, f"the demo preset {preset} is missing", REPAIR_HINT)
    with tempfile.TemporaryDirectory(prefix="studio-selftest-") as tmp:
        # A private STUDIO_HOME keeps this run out of the person's run list.
        rc, out, err = _child(["-m", "studio", "train", str(preset), *TRAIN_OVERRIDES,
                               "--run-dir", str(Path(tmp) / "run"), "--json"],
                              timeout=600, env={"STUDIO_HOME": tmp})
    events = [e for e in (_last_json(ln) for ln in out.splitlines()) if e]
    steps = [e for e in events if e.get("type") == "step"]
    done = next((e for e in events if e.get("type") == "finished"), {})
    if rc != 0 or done.get("status") != "completed" or len(steps) < 2:
        why = next((e.get("message") for e in events if e.get("type") == "error"), None) or _tail(err or out)
        return Check("training", False, f"two training steps on the demo model failed: {why}", REPAIR_HINT)
    losses = ", ".join(f"{s['loss']:.3f}" for s in steps[:2])
    return Check("training", True, f"two steps on the demo model (loss {losses})")


def run_self_test(on_check: Callable[[Check], None] | None = None) -> Report:
    """Run every check in turn; ``on_check`` hears each result as it comes."""
    choice = accelerator.choose_torch(accelerator.probe())
    report = Report()
    steps = [lambda: [check_studio()], lambda: check_torch(choice.expects_gpu, choice.gpu), lambda: [check_qt()], lambda: [check_training()]]
    for step in steps:
        for check in step():
            report.checks.append(check)
            if on_check:
                on_check(check)
    return report
