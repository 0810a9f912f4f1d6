"""``python -m studio.installer install|repair|uninstall``: Studio's own set-up.

Started by the download's ``setup.sh`` (Linux, macOS) or ``setup.cmd`` (Windows) on the Python
uv installed into Studio's folder, with the Studio wheel itself on ``PYTHONPATH``.

- install: set up, or finish an interrupted install, or update in place to this version;
  on a current, complete install it changes nothing.
- repair: make the environment again (downloads come from the cache when present).
- uninstall: remove the app, its Python, environment and cache; keep runs, exports, settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from studio import __version__
from studio.core import accelerator
from studio.core.errors import StudioError
from studio.installer import shortcuts, steps
from studio.installer.state import INSTALLED, Layout, is_complete, read_state, write_state


def _decide(conf: dict) -> accelerator.TorchChoice:
    try:
        return accelerator.choose_torch(accelerator.probe(), env=conf)
    except ValueError as exc:
        raise steps.InstallError(str(exc), "unset STUDIO_TORCH_BACKEND or give one of the names listed") from None


def _choose(conf: dict, progress: steps.Progress) -> accelerator.TorchChoice:
    choice = _decide(conf)
    progress.say(f"PyTorch build: {choice.backend} ({choice.reason})")
    if choice.gpu:
        progress.say(f"GPU: {choice.gpu}")
    if choice.warning:
        progress.say(f"NOTE: {choice.warning}")
    return choice


def install(opts: steps.Options) -> int:
    layout, progress = opts.layout, steps.Progress()
    conf = steps.settings(layout)
    previous = read_state(layout)
    choice = _decide(conf) if previous else None
    if (not opts.rebuild and is_complete(layout, __version__) and choice
            and previous.get("torch", {}).get("requirement") == choice.requirement
            and steps.installed_torch(layout) == choice.requirement.split("==", 1)[1]):
        print(f"Studio {__version__} is already installed and up to date in {layout.root}; nothing to do.")
        return 0
    progress.phase("Finding your GPU")
    choice = _choose(conf, progress)
    progress.phase("Checking free disk space")
    steps.check_disk(layout.root, steps.needed_gib(choice, layout))
    state = {"state": "installing", "version": __version__, "settings": conf,
             "torch": {**choice.to_dict(), "requirement": choice.requirement}}
    write_state(layout, state)  # from here on, "installing" until the very end
    progress.phase("Copying Studio's files and adding Studio to your menu")
    steps.copy_payload(opts)
    # The launcher comes first: started after an interruption, it finishes the installation.
    if sys.platform != "win32":
        shortcuts.write_launcher(layout)
    for made in shortcuts.add_menu_entry(layout) if opts.shortcuts else []:
        progress.say(f"added {made}")
    progress.phase("Preparing the Python environment")
    steps.make_env(layout, opts.rebuild)
    progress.phase("Downloading and installing packages")
    steps.install_packages(layout, conf, choice, progress)
    progress.phase("Installing Studio")
    steps.install_studio(layout)
    verdict = 0
    if opts.self_test:
        progress.phase("Checking the installation")
        verdict = subprocess.run([str(layout.env_studio), "--self-test"]).returncode
    write_state(layout, {**state, "state": INSTALLED, "self_test": "passed" if verdict == 0 else "failed"})
    print(f"\nStudio {__version__} is installed in {layout.root} ({progress.elapsed()}).")
    print(f"Start it from your applications menu or with: {layout.launcher if sys.platform != 'win32' else layout.env_studio}")
    return verdict


def user_data_folder(layout: Layout) -> str:
    code = "from studio.core.runs import studio_home; print(studio_home())"
    try:
        p = subprocess.run([str(layout.env_python), "-c", code], capture_output=True, text=True, timeout=60)
        return p.stdout.strip() or "Studio's user data folder"
    except (OSError, subprocess.SubprocessError):
        return "Studio's user data folder"


def uninstall(layout: Layout) -> int:
    data = user_data_folder(layout)
    shortcuts.remove_menu_entry(layout)
    for path in layout.owned():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    try:
        layout.root.rmdir()
    except OSError:
        pass  # the folder holds something that is not ours: leave it
    print(f"Studio is uninstalled from {layout.root}.")
    print(f"Your runs, exports and settings are kept in {data}; delete that folder to remove them too.")
    return 0


def status(layout: Layout) -> int:
    print(json.dumps(read_state(layout), indent=2, ensure_ascii=False))
    return 0 if is_complete(layout, __version__) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="studio-setup", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("install", "repair", "uninstall", "status"))
    parser.add_argument("--prefix", required=True, type=Path, help="Studio's installation folder")
    parser.add_argument("--payload", type=Path, help="the folder with uv, the wheel, the lock (default: PREFIX/app)")
    parser.add_argument("--no-self-test", action="store_true", help="skip the final self-test")
    parser.add_argument("--no-shortcuts", action="store_true", help="no menu entry, no ~/.local/bin/studio")
    args = parser.parse_args(argv)
    # setup.sh put the wheel on PYTHONPATH for this process only; the installed Studio, its
    # self-test and every other child must import the environment's own copy.
    os.environ.pop("PYTHONPATH", None)
    layout = Layout(args.prefix.expanduser().absolute())
    opts = steps.Options(layout, (args.payload or layout.app).absolute(), rebuild=args.action == "repair",
                         self_test=not args.no_self_test, shortcuts=not args.no_shortcuts)
    try:
        if args.action == "uninstall":
            return uninstall(layout)
        if args.action == "status":
            return status(layout)
        return install(opts)
    except StudioError as exc:
        print(f"\nStudio installer: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  what to do: {exc.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStudio installer: stopped. Run it again (or start Studio) to finish the installation.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
