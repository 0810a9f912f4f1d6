"""The install, repair, update and uninstall steps, each phase named with the time so far.

Runs on the Python uv installed for Studio, before Studio's environment exists, so only the
standard library and Studio's pure modules (imported from the wheel itself) are used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from studio.core import accelerator
from studio.core.errors import StudioError
from studio.installer.state import Layout, read_state

#: Settings a person (or a test) may give as environment variables; stored, so a later repair
#: started from the menu uses the same mirrors and the same torch choice.
SETTINGS = ("STUDIO_TORCH_BACKEND", "STUDIO_TORCH_INDEX_URL", "STUDIO_INDEX_URL", "STUDIO_EXTRA_INDEX_URL",
            "STUDIO_FIND_LINKS")
#: Free space an install needs, in GiB, by torch build (downloads in the cache plus the environment).
NEEDED_GIB = {"cpu": 4, "default": 4, "cu": 12, "rocm": 20}
PHASES = ("Finding your GPU", "Checking free disk space", "Copying Studio's files and adding Studio to your menu",
          "Preparing the Python environment", "Downloading and installing packages", "Installing Studio",
          "Checking the installation")


class InstallError(StudioError):
    """A step of the installation failed; the message says which and what to do."""


@dataclass
class Options:
    layout: Layout
    payload: Path
    rebuild: bool = False          # repair: make the environment again from the cache
    self_test: bool = True
    shortcuts: bool = True


class Progress:
    """Prints ``[3/8 0:42] Phase...`` lines and records the phase in the state file."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> str:
        s = int(time.monotonic() - self.start)
        return f"{s // 60}:{s % 60:02d}"

    def phase(self, title: str) -> None:
        print(f"\n[{PHASES.index(title) + 1}/{len(PHASES)} {self.elapsed()}] {title}...", flush=True)

    def say(self, text: str) -> None:
        print(f"    {text}", flush=True)


def settings(layout: Layout) -> dict:
    """Stored settings, overridden by the same names in the environment."""
    stored = read_state(layout).get("settings", {})
    return {**stored, **{k: os.environ[k] for k in SETTINGS if os.environ.get(k)}}


def uv_env(layout: Layout) -> dict:
    """uv keeps its cache and Pythons in Studio's folder and ignores the person's uv config files."""
    return {**os.environ, "UV_CACHE_DIR": str(layout.cache), "UV_PYTHON_INSTALL_DIR": str(layout.python_dir),
            "UV_NO_CONFIG": "1", "UV_HTTP_TIMEOUT": os.environ.get("UV_HTTP_TIMEOUT", "180")}


def index_args(conf: dict, choice: accelerator.TorchChoice) -> list[str]:
    """uv's index options: the torch index first, then mirrors and local wheel folders."""
    args = ["--index-strategy", "unsafe-best-match"]
    if choice.index_url:
        args += ["--index", choice.index_url]
    for url in conf.get("STUDIO_EXTRA_INDEX_URL", "").split():
        args += ["--index", url]
    if conf.get("STUDIO_INDEX_URL"):
        args += ["--default-index", conf["STUDIO_INDEX_URL"]]
    for link in conf.get("STUDIO_FIND_LINKS", "").split():
        args += ["--find-links", link]
    return args


def uv(layout: Layout, *args: str, what: str) -> None:
    """Run uv (its own progress bars show bytes downloaded); a failure names the step."""
    cmd = [str(layout.uv()), *args]
    if subprocess.run(cmd, env=uv_env(layout)).returncode != 0:
        raise InstallError(f"{what} failed (uv's messages above name the package or the network error)",
                           "check the network connection (and STUDIO_INDEX_URL if you use a mirror) and free "
                           "disk space, then start Studio again: the installation resumes from what is downloaded")


def check_disk(path: Path, need_gib: float) -> None:
    probe = path
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**30
    if free < need_gib:
        raise InstallError(f"not enough free disk space in {probe}: {free:.1f} GiB free, Studio needs about "
                           f"{need_gib:.0f} GiB", "free some space (or choose another install folder) and run "
                                                  "the installer again")


def needed_gib(choice: accelerator.TorchChoice, layout: Layout) -> float:
    key = "cu" if choice.backend.startswith("cu") else "rocm" if choice.backend.startswith("rocm") else choice.backend
    return NEEDED_GIB[key] * (0.5 if layout.env_python.exists() else 1.0)


def copy_payload(opts: Options) -> None:
    """Put the download's files in ``app/`` (old wheels out, so exactly one Studio wheel is there)."""
    app = opts.layout.app
    if opts.payload.resolve() == app.resolve():
        return
    app.mkdir(parents=True, exist_ok=True)
    for old in app.glob("studio-*.whl"):
        old.unlink()
    shutil.copytree(opts.payload, app, dirs_exist_ok=True)


def wheel(layout: Layout) -> Path:
    found = sorted(layout.app.glob("studio-*.whl"))
    if not found:
        raise InstallError(f"no Studio wheel in {layout.app}", "download the installer again and run it")
    return found[-1]


def make_env(layout: Layout, rebuild: bool) -> None:
    works = layout.env_python.exists() and subprocess.run([str(layout.env_python), "-c", ""]).returncode == 0
    if works and not rebuild:
        return
    shutil.rmtree(layout.env, ignore_errors=True)
    uv(layout, "venv", "--quiet", "--python", sys.executable, str(layout.env), what="creating the environment")


def installed_torch(layout: Layout) -> str:
    code = "import importlib.metadata as m; print(m.version('torch'))"
    p = subprocess.run([str(layout.env_python), "-c", code], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else ""


def install_packages(layout: Layout, conf: dict, choice: accelerator.TorchChoice, progress: Progress) -> None:
    lock = layout.app / "requirements.lock"
    base = ["pip", "install", "--python", str(layout.env_python), *index_args(conf, choice)]
    uv(layout, *base, "-r", str(lock), choice.requirement, what="installing packages")
    have = installed_torch(layout)
    if have != choice.requirement.split("==", 1)[1]:
        # A build that only satisfies a range (a stale +cpu for a GPU machine) is never kept.
        progress.say(f"replacing torch {have or '(broken)'} with {choice.requirement}")
        uv(layout, *base, "--reinstall-package", "torch", "-r", str(lock), choice.requirement,
           what="replacing PyTorch")
        have = installed_torch(layout)
    if have != choice.requirement.split("==", 1)[1]:
        raise InstallError(f"torch {have or '(none)'} is installed instead of {choice.requirement}",
                           "run the installer again and choose Repair; if that fails, uninstall and install again")
    progress.say(f"torch {have} is installed")


def install_studio(layout: Layout) -> None:
    uv(layout, "pip", "install", "--quiet", "--python", str(layout.env_python), "--no-deps",
       "--reinstall-package", "studio", str(wheel(layout)), what="installing Studio")
    shutil.rmtree(layout.resources, ignore_errors=True)
    shutil.copytree(layout.app / "resources", layout.resources)
