"""This machine's pip configuration as Studio installer settings (for tests and benchmarks).

``pip config list`` says which indexes, local wheel folders and certificate pip uses here; the
installer takes the same through STUDIO_INDEX_URL, STUDIO_EXTRA_INDEX_URL, STUDIO_FIND_LINKS and
SSL_CERT_FILE, so a test install downloads what pip would (and nothing names a host).
"""

from __future__ import annotations

import subprocess
import sys


def pip_settings() -> dict:
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    conf = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        conf[key.rsplit(".", 1)[-1]] = value.strip().strip("'\"")
    names = {"index-url": "STUDIO_INDEX_URL", "extra-index-url": "STUDIO_EXTRA_INDEX_URL",
             "find-links": "STUDIO_FIND_LINKS", "cert": "SSL_CERT_FILE"}
    env = {names[k]: v for k, v in conf.items() if k in names and v}
    # PyTorch's own index may be unreachable: take torch from the configured indexes/find-links.
    first = (env.get("STUDIO_INDEX_URL") or env.get("STUDIO_EXTRA_INDEX_URL", "")).split()
    if first:
        env["STUDIO_TORCH_INDEX_URL"] = first[0]
    return env


if __name__ == "__main__":
    for name, value in pip_settings().items():
        print(f"{name}={value}")
