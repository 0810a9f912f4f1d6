"""Build the three installers, then install the Linux one for real into a fresh prefix and HOME.

The install uses the package indexes pip is configured with on this machine (read from
``pip config list``, so no host is named here) and takes the CPU torch. Where uv cannot
download a managed Python (no network beyond the package index), STUDIO_PYTHON points it at
the interpreter running these tests, and the test says so. One install serves every check:
interrupted during download then finished by the launcher, self-test, re-run changing
nothing, update in place, interrupted repair finished by the launcher, uninstall keeping runs.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = ast.literal_eval(next(ln for ln in (ROOT / "studio" / "__init__.py").read_text().splitlines()
                                if ln.startswith("__version__")).split("=", 1)[1].strip())
DIST = ROOT / "dist"
LINUX = DIST / f"Studio-{VERSION}-linux-x86_64.run"
WINDOWS = DIST / f"Studio-{VERSION}-windows-x86_64.exe"
MACOS = DIST / f"Studio-{VERSION}-macos-arm64.zip"

sys.path.insert(0, str(ROOT / "packaging"))
from pip_settings import pip_settings  # noqa: E402

TOOLS = [tool for tool in ("makeself", "makensis", "shellcheck") if not shutil.which(tool)]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux host"),
              # .ci/run installs them; on a developer's machine: apt-get install makeself nsis shellcheck
              pytest.mark.skipif(bool(TOOLS), reason=f"not installed: {', '.join(TOOLS)}")]


@pytest.fixture(scope="module")
def built():
    subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py"), "--fast"], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return DIST


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    base = tmp_path_factory.mktemp("install")
    home = base / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIO_", "PYTHONPATH", "VIRTUAL_ENV", "UV_"))}
    env.update(pip_settings(), HOME=str(home), QT_QPA_PLATFORM="offscreen", XDG_DATA_HOME=str(home / ".local/share"))
    # No managed Python can be downloaded here: uv uses this interpreter instead (STUDIO_PYTHON).
    env["STUDIO_PYTHON"] = sys.executable
    return {"prefix": base / "Stüdio Test", "home": home, "env": env}


def run_until(cmd, env, marker: str | None, timeout: float = 900):
    """Run ``cmd``; with a marker, kill its whole process group the moment that line appears."""
    # Run outside the checkout, so `python -m studio` can only find the installed Studio.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=env["HOME"])
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if marker and marker in line:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=timeout)
    return proc.returncode, "".join(lines)


def state(prefix: Path) -> dict:
    try:
        return json.loads((prefix / "state.json").read_text())
    except OSError:
        return {}


def env_python(prefix: Path, code: str, env) -> str:
    return subprocess.run([str(prefix / "env/bin/python"), "-c", code], capture_output=True, text=True,
                          env=env, check=True, cwd=env["HOME"]).stdout.strip()


def snapshot(prefix: Path) -> dict:
    """Every file of the installation but uv's cache, with its modification time and size."""
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in prefix.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and (prefix / "cache") not in p.parents}


def fake_torch_wheel(folder: Path, version: str) -> Path:
    """A real, installable distribution named torch of another build (like the registry's CUDA one)."""
    wheel = folder / f"torch-{version}-py3-none-any.whl"
    info = f"torch-{version}.dist-info"
    files = {"torch/__init__.py": f"__version__ = '{version}'\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


def test_build_makes_the_three_installers(built):
    assert LINUX.read_bytes()[:2] == b"#!" and os.access(LINUX, os.X_OK)
    assert WINDOWS.read_bytes()[:2] == b"MZ"  # makensis -WX built it: its own checks passed
    names = zipfile.ZipFile(MACOS).namelist()
    payload = "Studio.app/Contents/Resources/payload/"
    for name in ("Studio.app/Contents/MacOS/Studio", "Studio.app/Contents/Info.plist", payload + "uv",
                 payload + "requirements.lock", payload + "setup.sh", payload + "resources/demo-model/config.json"):
        assert name in names, name
    assert any(n.startswith(payload + "studio-") and n.endswith(".whl") for n in names)
    mode = zipfile.ZipFile(MACOS).getinfo("Studio.app/Contents/MacOS/Studio").external_attr >> 16
    assert mode & 0o111, "the launcher must stay executable"


def test_linux_installer_end_to_end(built, machine):
    prefix, env = machine["prefix"], machine["env"]
    install = [str(LINUX), "--nox11", "--", "--prefix", str(prefix)]
    launcher = prefix / "bin" / "studio"

    # 1. Killed while downloading packages: not "installed"; the next start finishes it.
    rc, out = run_until(install, env, "Downloading and installing packages")
    assert rc == -signal.SIGKILL and state(prefix).get("state") == "installing", out
    rc, out = run_until([str(launcher), "--help"], env, None)
    assert rc == 0 and "unfinished" in out and "usage: studio" in out, out
    assert state(prefix)["state"] == "installed"
    assert env_python(prefix, "import torch; print(torch.__version__)", env) == "2.13.0+cpu"
    studio_file = env_python(prefix, "import studio; print(studio.__file__)", env)
    assert studio_file.startswith(str(prefix / "env")), studio_file  # runs from the installed environment
    desktop = (machine["home"] / ".local/share/applications/studio.desktop").read_text()
    assert f'Exec="{launcher}"' in desktop

    # 2. Running the installer again on a current install changes nothing.
    before = snapshot(prefix)
    rc, out = run_until(install, env, None)
    assert rc == 0 and "nothing to do" in out, out
    assert snapshot(prefix) == before

    # 3. A torch of another build in the environment (it satisfies torch>=2.4) is replaced.
    fake = fake_torch_wheel(machine["home"].parent, "2.13.0")
    subprocess.run([str(prefix / "app/uv"), "pip", "install", "--quiet", "--no-deps", "--python",
                    str(prefix / "env/bin/python"), str(fake)], check=True, env={**env, "UV_CACHE_DIR": str(prefix / "cache")})
    assert env_python(prefix, "import importlib.metadata as m; print(m.version('torch'))", env) == "2.13.0"
    rc, out = run_until([*install, "--no-self-test"], env, None)
    assert rc == 0 and "nothing to do" not in out, out
    assert env_python(prefix, "import torch; print(torch.__version__)", env) == "2.13.0+cpu"

    # 4. An older install is updated in place; the person's runs stay. The installer ends with
    #    the self-test, which passes offscreen on the installed environment's own Studio.
    runs = machine["home"] / ".local/share/studio/runs/my-run"
    runs.mkdir(parents=True)
    (runs / "config.yaml").write_text("name: mine\n")
    old = state(prefix)
    (prefix / "state.json").write_text(json.dumps({**old, "version": "0.0.1"}))
    rc, out = run_until(install, env, None)
    assert rc == 0 and state(prefix)["version"] == VERSION and runs.exists(), out
    assert "Studio is installed correctly and can train" in out and state(prefix)["self_test"] == "passed", out
    assert f"Studio {VERSION} in {prefix / 'env'}" in out, out  # not the wheel the installer ran from

    # 5. A repair killed while installing packages: the next start repairs again.
    rc, out = run_until([str(prefix / "app/setup.sh"), "repair", "--prefix", str(prefix), "--no-self-test"],
                        env, "Downloading and installing packages")
    assert state(prefix).get("state") == "installing", out
    rc, out = run_until([str(launcher), "--help"], env, None)
    assert rc == 0 and "unfinished" in out and state(prefix)["state"] == "installed", out
    assert env_python(prefix, "import torch, PySide6; print(torch.__version__)", env) == "2.13.0+cpu"

    # 6. Uninstall removes the app and keeps the runs, saying where they are.
    rc, out = run_until([str(prefix / "app/setup.sh"), "uninstall", "--prefix", str(prefix)], env, None)
    assert rc == 0 and "kept in" in out and str(runs.parents[1]) in out, out
    assert not prefix.exists() and (runs / "config.yaml").exists()
    assert not (machine["home"] / ".local/share/applications/studio.desktop").exists()
    assert not (machine["home"] / ".local/bin/studio").is_symlink()
