"""Install size and time of the Linux installer, and time from launch to window after installing.

    python packaging/build.py linux && python benchmarks/install.py [--keep DIR]

Installs dist/Studio-*-linux-x86_64.run into a fresh folder and HOME with an empty uv cache
(cold: every package downloaded), then repairs it (warm: the environment made again from the
cache), then starts the installed Studio twice (`studio --screenshot`, offscreen) and reports
its first paint. Packages come from the indexes pip is configured with (packaging/pip_settings.py);
where no managed Python can be downloaded, STUDIO_PYTHON points uv at this interpreter.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))
from pip_settings import pip_settings  # noqa: E402


def timed(cmd: list[str], env: dict, cwd: str) -> tuple[float, str]:
    start = time.monotonic()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return time.monotonic() - start, p.stdout + p.stderr


def size_gib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True).stdout
    return int(out.split()[0]) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", help="install into this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    run_file = max((ROOT / "dist").glob("Studio-*-linux-x86_64.run"), key=os.path.getmtime)
    base = Path(args.keep or tempfile.mkdtemp(prefix="studio-install-bench-"))
    prefix, home = base / "Studio app", base / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIO_", "PYTHONPATH", "UV_"))}
    env.update(pip_settings(), HOME=str(home), STUDIO_PYTHON=sys.executable, QT_QPA_PLATFORM="offscreen")
    print(f"load before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {run_file.name}")
    cold, _ = timed([str(run_file), "--nox11", "--", "--prefix", str(prefix), "--no-self-test"], env, str(home))
    print(f"install, cold cache (every package downloaded): {cold:6.1f} s")
    warm, _ = timed([str(prefix / "app/setup.sh"), "repair", "--prefix", str(prefix), "--no-self-test"], env,
                    str(home))
    print(f"repair, warm cache (environment made again):     {warm:6.1f} s")
    total, cache = size_gib(prefix), size_gib(prefix / "cache")
    print(f"size on disk: {total:.2f} GiB in all, of which uv's cache {cache:.2f} GiB "
          "(environment files are hard links into the cache)")
    for which in ("first", "second"):
        wall, out = timed([str(prefix / "bin/studio"), "--screenshot", str(base / f"{which}.png")], env, str(home))
        paint = re.search(r"first paint (\d+) ms", out)
        print(f"{which} start: window painted {paint.group(1) if paint else '?'} ms after launch "
              f"(command {wall:.1f} s including the screenshot's background loads)")
    print(f"load after: {os.getloadavg()[0]:.1f}; kept in {base}" if args.keep else f"load after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
