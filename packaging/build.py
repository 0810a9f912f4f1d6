"""Build Studio's installers into dist/: one download per system.

    python packaging/build.py            # all three
    python packaging/build.py linux      # or windows, macos (several may be named)
    python packaging/build.py --relock   # re-resolve packaging/requirements.lock first

Each carries a pinned uv (fetched as a wheel from the package index, one per system), the
Studio wheel, the demo resources and packaging/requirements.lock (exact versions of every
dependency except torch, whose build the installer picks for the machine's GPU):

- Linux: dist/Studio-VERSION-linux-x86_64.run, a self-extracting archive made by makeself;
- Windows: dist/Studio-VERSION-windows-x86_64.exe, a per-user NSIS installer (no admin);
- macOS: dist/Studio-VERSION-macos-arm64.zip holding Studio.app.

Needs: pip, makeself, makensis (Debian packages makeself and nsis), shellcheck to lint.
"""

from __future__ import annotations

import argparse
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "packaging"
DIST = ROOT / "dist"
WORK = ROOT / "build" / "packaging"
LOCK = HERE / "requirements.lock"
UV_VERSION = "0.13.9"
#: system -> (uv wheel platform tag, uv binary name in the wheel, artifact suffix)
SYSTEMS = {
    "linux": ("manylinux_2_17_x86_64", "uv", "linux-x86_64.run"),
    "windows": ("win_amd64", "uv.exe", "windows-x86_64.exe"),
    "macos": ("macosx_11_0_arm64", "uv", "macos-arm64.zip"),
}
#: The demo resources the installed Studio needs (not the scripts that build them).
RESOURCES = ("demo-model", "datasets", "presets", "icons", "style.qss")
#: torch and the CUDA runtime it pulls: the installer picks these per machine, so the lock omits them.
TORCH_PACKAGES = re.compile(r"^(torch|triton|nvidia-[\w-]+|cuda-[\w-]+)==", re.IGNORECASE)


def version() -> str:
    text = (ROOT / "studio" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


def run(*cmd, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def fetch_uv(system: str) -> Path:
    """The pinned uv binary for a system, extracted from its wheel (kept in build/ between builds)."""
    tag, name, _ = SYSTEMS[system]
    out = WORK / "uv" / system / name
    if out.exists():
        return out
    wheels = WORK / "uv" / f"{system}-wheel"
    run(sys.executable, "-m", "pip", "download", f"uv=={UV_VERSION}", "--no-deps", "--only-binary", ":all:",
        "--platform", tag, "--quiet", "-d", wheels)
    wheel = next(wheels.glob(f"uv-{UV_VERSION}-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(f"uv-{UV_VERSION}.data/scripts/{name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    out.chmod(0o755)
    return out


def host_uv() -> Path:
    system = {"linux": "linux", "win32": "windows", "darwin": "macos"}[sys.platform]
    return fetch_uv(system)


def relock() -> None:
    """Resolve exact versions for every system (uv's universal resolution) at Studio's torch pin."""
    sys.path.insert(0, str(ROOT))
    from studio.core.accelerator import TORCH_VERSION

    pins = WORK / "torch-pin.txt"
    pins.parent.mkdir(parents=True, exist_ok=True)
    pins.write_text(f"torch=={TORCH_VERSION}\n", encoding="utf-8")
    raw = WORK / "lock-raw.txt"
    run(host_uv(), "pip", "compile", ROOT / "pyproject.toml", "--universal", "--python-version", "3.11",
        "--constraint", pins, "--no-header", "--no-annotate", "--quiet", "-o", raw)
    kept = [ln for ln in raw.read_text(encoding="utf-8").splitlines() if ln and not TORCH_PACKAGES.match(ln)]
    header = ("# Exact versions of Studio's dependencies for Python 3.11 on Linux, Windows and macOS.\n"
              "# Made by `python packaging/build.py --relock`; torch and its CUDA runtime are left out:\n"
              "# the installer adds the torch build that fits the machine (studio/core/accelerator.py).\n")
    LOCK.write_text(header + "\n".join(kept) + "\n", encoding="utf-8")
    print(f"wrote {LOCK} ({len(kept)} packages)")


def build_wheel() -> Path:
    out = WORK / "wheel"
    shutil.rmtree(out, ignore_errors=True)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", out, ROOT)
    shutil.rmtree(ROOT / "build" / "lib", ignore_errors=True)
    return next(out.glob("studio-*.whl"))


def payload(system: str, wheel: Path) -> Path:
    """The folder an installer carries: uv, the wheel, the lock, the demo resources, set-up script."""
    out = WORK / f"payload-{system}"
    shutil.rmtree(out, ignore_errors=True)
    (out / "resources").mkdir(parents=True)
    shutil.copy2(fetch_uv(system), out / SYSTEMS[system][1])
    shutil.copy2(wheel, out / wheel.name)
    shutil.copy2(LOCK, out / "requirements.lock")
    for name in RESOURCES:
        src = ROOT / "resources" / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, out / "resources" / name)
    for script in ("setup.cmd", "studio.cmd") if system == "windows" else ("setup.sh",):
        shutil.copy2(HERE / "common" / script, out / script)
        (out / script).chmod(0o755)
    return out


def lint_shell(*scripts: Path) -> None:
    if shutil.which("shellcheck"):
        run("shellcheck", "--shell=sh", *scripts)
    else:
        print("shellcheck not found: shell scripts not linted (apt-get install shellcheck)")


def build_linux(wheel: Path, out: Path, fast: bool = False) -> None:
    from studio.installer.shortcuts import LAUNCHER

    src = payload("linux", wheel)
    launcher = WORK / "launcher.sh"
    launcher.write_text(LAUNCHER.format(root="'/opt/Studio test/ü'"), encoding="utf-8")
    lint_shell(src / "setup.sh", launcher)
    run("makeself", "--quiet", "--tar-quietly", src, out, f"Studio {version()}", "./setup.sh", "install")


def build_windows(wheel: Path, out: Path, fast: bool = False) -> None:
    src = payload("windows", wheel)
    compressor = "zlib" if fast else "lzma"
    run("makensis", "-V2", "-WX", "-INPUTCHARSET", "UTF8", f"-DVERSION={version()}", f"-DPAYLOAD={src}",
        f"-DCOMPRESSOR={compressor}",
        f"-DOUTFILE={out}", HERE / "windows" / "studio.nsi")


def _zip_tree(folder: Path, zip_path: Path) -> None:
    """Zip a folder keeping the executable bits (Finder's unzip honours them)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            info = zipfile.ZipInfo(str(path.relative_to(folder.parent)))
            info.external_attr = (path.stat().st_mode & 0xFFFF) << 16
            if path.is_dir():
                info.filename += "/"
                zf.writestr(info, b"")
            else:
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())


def build_macos(wheel: Path, out: Path, fast: bool = False) -> None:
    app = WORK / "macos" / "Studio.app"
    shutil.rmtree(app.parent, ignore_errors=True)
    (app / "Contents" / "MacOS").mkdir(parents=True)
    shutil.copytree(payload("macos", wheel), app / "Contents" / "Resources" / "payload")
    plist = (HERE / "macos" / "Info.plist").read_text(encoding="utf-8").replace("@VERSION@", version())
    (app / "Contents" / "Info.plist").write_text(plist, encoding="utf-8")
    for name in ("Studio", "first-run.command"):
        dest = (app / "Contents" / "MacOS" / name) if name == "Studio" else app / "Contents" / "Resources" / name
        shutil.copy2(HERE / "macos" / name, dest)
        dest.chmod(dest.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    lint_shell(app / "Contents" / "MacOS" / "Studio", app / "Contents" / "Resources" / "first-run.command")
    _zip_tree(app, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("systems", nargs="*", choices=[*SYSTEMS, []], help="what to build (default: all)")
    parser.add_argument("--relock", action="store_true", help="re-resolve packaging/requirements.lock first")
    parser.add_argument("--fast", action="store_true", help="quicker, larger Windows installer (zlib, for tests)")
    args = parser.parse_args(argv)
    if args.relock or not LOCK.exists():
        relock()
    sys.path.insert(0, str(ROOT))
    wheel = build_wheel()
    DIST.mkdir(exist_ok=True)
    builders = {"linux": build_linux, "windows": build_windows, "macos": build_macos}
    for system in args.systems or list(SYSTEMS):
        out = DIST / f"Studio-{version()}-{SYSTEMS[system][2]}"
        builders[system](wheel, out, fast=args.fast)
        print(f"built {out} ({out.stat().st_size / 2**20:.0f} MiB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
