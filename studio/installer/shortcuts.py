"""The launcher and the menu entry (Linux); macOS's Studio.app and Windows' Start menu make their own."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from studio.installer.state import Layout

LAUNCHER = """#!/bin/sh
# Studio launcher: finishes or repairs an unfinished installation, then starts Studio.
# shellcheck disable=SC2016 # the folder is a literal path, quoted whatever characters it holds
root={root}
if ! grep -q '"state": "installed"' "$root/state.json" 2>/dev/null || [ ! -x "$root/env/bin/studio" ]; then
  if [ ! -t 1 ] && [ -n "${{DISPLAY:-}}${{WAYLAND_DISPLAY:-}}" ] && command -v x-terminal-emulator >/dev/null 2>&1; then
    # Started from the menu: finish in a terminal window so the person sees the progress.
    x-terminal-emulator -e "$0" "$@" && exit 0
  fi
  echo "Studio's installation is unfinished or damaged; completing it first." >&2
  # No self-test here: the window should open; Help > Check installation runs it on request.
  "$root/app/setup.sh" install --prefix "$root" --no-self-test || exit 1
fi
exec "$root/env/bin/studio" "$@"
"""


def _home() -> Path:
    return Path.home()


def desktop_entry(layout: Layout) -> Path:
    return _home() / ".local" / "share" / "applications" / "studio.desktop"


def command_link() -> Path:
    return _home() / ".local" / "bin" / "studio"


def write_launcher(layout: Layout) -> None:
    layout.launcher.parent.mkdir(parents=True, exist_ok=True)
    layout.launcher.write_text(LAUNCHER.format(root=shlex.quote(str(layout.root))), encoding="utf-8")
    layout.launcher.chmod(0o755)


def _desktop_quote(path: Path) -> str:
    """A path for a desktop entry's Exec key (quoted; backslash, quote, dollar and backtick escaped)."""
    escaped = str(path).replace("\\", "\\\\\\\\").replace('"', '\\\\"').replace("$", "\\\\$").replace("`", "\\\\`")
    return f'"{escaped}"'


def add_menu_entry(layout: Layout) -> list[Path]:
    """The applications-menu entry and ``~/.local/bin/studio`` (Linux only)."""
    if not sys.platform.startswith("linux"):
        return []
    entry, link = desktop_entry(layout), command_link()
    entry.parent.mkdir(parents=True, exist_ok=True)
    icon = layout.resources / "icons" / "studio.svg"
    entry.write_text("[Desktop Entry]\nType=Application\nName=Studio\n"
                     "Comment=Fine-tune language models on your own machine\n"
                     f"Exec={_desktop_quote(layout.launcher)}\nIcon={icon}\nTerminal=false\n"
                     "Categories=Development;Science;\n", encoding="utf-8")
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(layout.launcher)
    return [entry, link]


def remove_menu_entry(layout: Layout) -> None:
    entry, link = desktop_entry(layout), command_link()
    if entry.exists() and str(layout.root) in entry.read_text(encoding="utf-8", errors="replace"):
        entry.unlink()
    if link.is_symlink() and Path(link.readlink()) == layout.launcher:
        link.unlink()
