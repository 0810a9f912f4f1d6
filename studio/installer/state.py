"""Where an installation keeps its parts, and the state file that says whether it is complete.

An installation folder holds::

    app/         what the download carried: uv, the Studio wheel, the lock, the demo resources
    python/      the Python uv installed for Studio (never the system's)
    cache/       uv's download cache (a repair or an interrupted install resumes from it)
    env/         the environment Studio runs in
    bin/studio   the launcher (Linux, macOS): repairs an unfinished install, then starts Studio
    state.json   "installed" is written last; anything else means "finish or repair me"

The person's runs, exports and settings live elsewhere (Studio's user data folder) and are
never touched by install, repair, update or uninstall.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

INSTALLED = "installed"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def app(self) -> Path:
        return self.root / "app"

    @property
    def python_dir(self) -> Path:
        return self.root / "python"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def env(self) -> Path:
        return self.root / "env"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def launcher(self) -> Path:
        return self.root / "bin" / "studio"

    @property
    def env_python(self) -> Path:
        return self.env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")

    @property
    def env_studio(self) -> Path:
        return self.env / ("Scripts/studio.exe" if sys.platform == "win32" else "bin/studio")

    @property
    def resources(self) -> Path:
        """Where the installed Studio finds ``resources/`` (``sys.prefix/share/studio``)."""
        return self.env / "share" / "studio" / "resources"

    def uv(self, base: Path | None = None) -> Path:
        return (base or self.app) / ("uv.exe" if sys.platform == "win32" else "uv")

    def owned(self) -> list[Path]:
        """Everything an uninstall removes (the folder itself too, once it is empty)."""
        return [self.app, self.python_dir, self.cache, self.env, self.root / "bin", self.state_file]


def read_state(layout: Layout) -> dict:
    """The state file's contents; ``{}`` when missing or unreadable (an unfinished install)."""
    try:
        return json.loads(layout.state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_state(layout: Layout, state: dict) -> None:
    """Replace the state file atomically, so a kill leaves the old one or the new one."""
    layout.root.mkdir(parents=True, exist_ok=True)
    tmp = layout.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, layout.state_file)


def is_complete(layout: Layout, version: str) -> bool:
    state = read_state(layout)
    return state.get("state") == INSTALLED and state.get("version") == version and layout.env_python.exists()
