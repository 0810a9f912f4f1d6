"""The worker's native-library settings: in place before torch loads, and what they bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from studio.worker import runtime_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _python(code: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in runtime_env.SETTINGS}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**base, "PYTHONPATH": ROOT, **(env or {})})


def test_apply_sets_what_is_unset_and_keeps_what_the_person_exported(monkeypatch):
    for name in runtime_env.SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "7")
    in_effect = runtime_env.apply()
    assert in_effect["LRU_CACHE_CAPACITY"] == os.environ["LRU_CACHE_CAPACITY"] == "7"
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == runtime_env.KERNEL_CACHE_ENTRIES
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


# What the environment held at the moment each entry point first imported torch.
_AT_TORCH_IMPORT = """
    import os, runpy, sys, json
    seen = {}
    class Watch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" and not seen:
                seen.update({k: os.environ.get(k) for k in %r})
            return None
    sys.meta_path.insert(0, Watch())
    sys.argv = [%r] + %r
    try:
        runpy.run_module(%r, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    import torch  # the entry point may not have needed it yet; then this import is the first
    print("SEEN " + json.dumps(seen))
"""


@pytest.mark.parametrize("module, argv", [
    ("studio.worker", ["--help"]),
    ("studio.worker.chat", ["--help"]),
    # The standby worker with a parent that is gone: it preloads torch, then exits.
    ("studio.worker.standby", ["{folder}", "--parent", "999999999"]),
])
def test_worker_entry_points_set_them_before_torch_loads(module, argv, tmp_path):
    argv = [a.format(folder=tmp_path) for a in argv]
    proc = _python(_AT_TORCH_IMPORT % (list(runtime_env.SETTINGS), module, argv, module))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SEEN ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads(lines[-1][5:]) == runtime_env.SETTINGS


# glibc's malloc statistics (mallinfo2), for the snippets below
_MALLINFO = """
    import ctypes
    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
"""

# bf16 matrix products of ever new row counts, as packed batches make them; malloc's bytes in
# use after each step's free memory is handed back, at steps 40 and 120.
_SHAPES = _MALLINFO + """
    import json, random
    from studio.worker import runtime_env
    runtime_env.apply()
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    random.seed(0)
    layers = [torch.nn.Linear(128, 512), torch.nn.Linear(512, 128)]
    in_use = {}
    for step in range(1, 121):
        x = torch.randn(random.randint(64, 1024), 128, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layers[1](layers[0](x))
        y.float().sum().backward()
        del x, y
        libc.malloc_trim(0)
        if step in (40, 120):
            in_use[step] = libc.mallinfo2().uordblks / 2**20
    print("IN_USE " + json.dumps(in_use))
"""


def _growth(env: dict) -> float:
    proc = _python(_SHAPES, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("IN_USE ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    in_use = json.loads(lines[-1][7:])
    return in_use["120"] - in_use["40"]


@pytest.mark.slow
def test_bounded_kernel_caches_stop_memory_growing_with_new_shapes():
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        pytest.skip("needs glibc's mallinfo2 to read malloc's bytes in use")
    # The libraries' own defaults, as a worker without these settings had them.
    unbounded = _growth({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024", "LRU_CACHE_CAPACITY": "1024"})
    if unbounded < 8:
        pytest.skip(f"this CPU's bf16 matrix products keep no per-shape kernels (+{unbounded:.1f} MiB)")
    bounded = _growth({})
    assert bounded < unbounded / 4, (bounded, unbounded)


# A block of 8 MiB, freed, then asked for again: glibc's own threshold rises past it at the free,
# so the second one comes from the heap; with the threshold fixed it is mapped again.
_BLOCK_TWICE = _MALLINFO + """
    from studio.worker import runtime_env
    print("SET", runtime_env.fix_mmap_threshold())
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    mapped = []
    for _ in range(2):
        before = libc.mallinfo2().hblks
        block = libc.malloc(8 << 20)
        mapped.append(libc.mallinfo2().hblks - before)
        libc.free(block)
    print("MAPPED", *mapped)
"""


@pytest.mark.parametrize("setting, second_mapped", [(None, 1), ("0", 0)])
def test_large_blocks_stay_mapped_after_one_is_freed(setting, second_mapped):
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        pytest.skip("needs glibc")
    proc = _python(_BLOCK_TWICE, env={} if setting is None else {"STUDIO_MMAP_THRESHOLD": setting})
    out = dict(ln.split(" ", 1) for ln in proc.stdout.splitlines() if ln.startswith(("SET", "MAPPED")))
    assert out, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert out["SET"] == ("0" if setting == "0" else str(runtime_env.MMAP_THRESHOLD))
    assert out["MAPPED"] == f"1 {second_mapped}", out
