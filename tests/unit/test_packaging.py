"""The installer's parts that need no download: state, disk check, index options, launcher, self-test verdict.

The real install of the built Linux installer is tests/integration/test_installers.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.accelerator import GpuInfo, TorchChoice, choose_torch
from studio.installer import shortcuts, steps
from studio.installer.state import INSTALLED, Layout, is_complete, read_state, write_state

ROOT = Path(__file__).resolve().parents[2]


def test_only_a_state_written_last_as_installed_counts_as_complete(tmp_path):
    layout = Layout(tmp_path / "Stüdio app")
    assert read_state(layout) == {} and not is_complete(layout, "0.1.0")
    layout.env_python.parent.mkdir(parents=True)
    layout.env_python.write_text("")
    write_state(layout, {"state": "installing", "version": "0.1.0"})
    assert not is_complete(layout, "0.1.0")
    write_state(layout, {"state": INSTALLED, "version": "0.1.0"})
    assert is_complete(layout, "0.1.0") and not is_complete(layout, "0.2.0")  # a newer Studio updates
    layout.state_file.write_text('{"state": "instal')  # cut off mid-write by a crash
    assert not is_complete(layout, "0.1.0")


def test_the_disk_check_names_the_folder_and_the_space_needed(tmp_path):
    steps.check_disk(tmp_path / "not" / "made" / "yet", need_gib=0.001)
    with pytest.raises(steps.InstallError) as err:
        steps.check_disk(tmp_path / "not" / "made" / "yet", need_gib=10**9)
    assert str(tmp_path) in err.value.message and "GiB free" in err.value.message
    assert "free some space" in err.value.hint


def test_a_gpu_build_needs_more_space_than_the_cpu_build(tmp_path):
    layout = Layout(tmp_path)
    cuda = choose_torch(GpuInfo(nvidia_smi="RTX, 24564 MiB, 580.95.05, 8.9\n"), env={})
    assert steps.needed_gib(cuda, layout) > steps.needed_gib(choose_torch(GpuInfo(), env={}), layout)


def test_uv_takes_the_torch_index_first_then_mirrors_and_wheel_folders():
    choice = TorchChoice("cu128", "https://mirror.example/torch/cu128", "test")
    conf = {"STUDIO_EXTRA_INDEX_URL": "file:///srv/a file:///srv/b", "STUDIO_INDEX_URL": "https://mirror.example/pypi",
            "STUDIO_FIND_LINKS": "/srv/wheels"}
    args = steps.index_args(conf, choice)
    assert args == ["--index-strategy", "unsafe-best-match", "--index", "https://mirror.example/torch/cu128",
                    "--index", "file:///srv/a", "--index", "file:///srv/b",
                    "--default-index", "https://mirror.example/pypi", "--find-links", "/srv/wheels"]


def test_stored_settings_are_reused_and_the_environment_overrides_them(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    write_state(layout, {"settings": {"STUDIO_TORCH_BACKEND": "cpu", "STUDIO_FIND_LINKS": "/old"}})
    monkeypatch.setenv("STUDIO_FIND_LINKS", "/new")
    monkeypatch.delenv("STUDIO_TORCH_BACKEND", raising=False)
    assert steps.settings(layout) == {"STUDIO_TORCH_BACKEND": "cpu", "STUDIO_FIND_LINKS": "/new"}


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck not installed")
def test_the_launcher_and_setup_scripts_pass_shellcheck(tmp_path):
    layout = Layout(tmp_path / "with space" / "ü $x")
    shortcuts.write_launcher(layout)
    scripts = [layout.launcher, ROOT / "packaging/common/setup.sh", ROOT / "packaging/macos/Studio",
               ROOT / "packaging/macos/first-run.command"]
    result = subprocess.run(["shellcheck", "--shell=sh", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_launcher_finishes_an_unfinished_install_in_a_path_with_spaces(tmp_path):
    layout = Layout(tmp_path / "my apps" / "Stüdio")
    shortcuts.write_launcher(layout)
    (layout.app).mkdir(parents=True)
    setup = layout.app / "setup.sh"
    setup.write_text('#!/bin/sh\necho "setup called with: $*"\nexit 3\n')
    setup.chmod(0o755)
    result = subprocess.run([str(layout.launcher)], capture_output=True, text=True)
    assert result.returncode == 1 and "unfinished" in result.stderr
    assert f"setup called with: install --prefix {layout.root} --no-self-test" in result.stdout


def test_the_menu_entry_quotes_the_launcher_and_uninstall_removes_only_ours(tmp_path, monkeypatch):
    monkeypatch.setattr(shortcuts, "_home", lambda: tmp_path / "home")
    layout = Layout(tmp_path / "my apps" / "Stüdio")
    made = shortcuts.add_menu_entry(layout)
    if not sys.platform.startswith("linux"):
        assert made == []
        return
    entry = shortcuts.desktop_entry(layout).read_text()
    assert f'Exec="{layout.launcher}"' in entry
    other = Layout(tmp_path / "elsewhere")
    shortcuts.remove_menu_entry(other)
    assert shortcuts.desktop_entry(layout).exists()
    shortcuts.remove_menu_entry(layout)
    assert not shortcuts.desktop_entry(layout).exists() and not shortcuts.command_link().is_symlink()


def test_self_test_exits_1_with_a_plain_verdict_when_torch_is_broken(tmp_path):
    broken = tmp_path / "site"
    (broken / "torch").mkdir(parents=True)
    (broken / "torch" / "__init__.py").write_text("raise ImportError('libtorch_cpu.so: cannot open shared object file')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken), str(ROOT)]), "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-m", "studio", "--self-test"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  PyTorch: PyTorch does not load" in result.stdout and "libtorch_cpu.so" in result.stdout
    assert "Studio is NOT ready" in result.stdout and "Repair" in result.stdout


def test_a_bad_torch_backend_setting_is_an_error_that_says_what_to_do(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STUDIO_TORCH_BACKEND": "cu999"}
    result = subprocess.run([sys.executable, "-m", "studio.installer", "install", "--prefix", str(tmp_path / "app")],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "STUDIO_TORCH_BACKEND=cu999 is not one of" in result.stderr and "what to do:" in result.stderr
    assert not (tmp_path / "app" / "state.json").exists()  # nothing was started


def test_the_lock_pins_every_dependency_of_pyproject_in_its_range():
    import tomllib

    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = {}
    for line in (ROOT / "packaging" / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            req = Requirement(line)
            pinned[req.name.lower().replace("_", "-")] = next(iter(req.specifier)).version
    problems = []
    for dep in map(Requirement, deps):
        name = dep.name.lower().replace("_", "-")
        if name == "torch":  # the installer picks torch's build per machine
            continue
        if name not in pinned or not dep.specifier.contains(pinned[name], prereleases=True):
            problems.append(f"{dep} (lock: {pinned.get(name, 'missing')})")
    assert not problems, f"run `python packaging/build.py --relock`: {problems}"
    assert "torch" not in pinned and not any(n.startswith("nvidia-") for n in pinned)
