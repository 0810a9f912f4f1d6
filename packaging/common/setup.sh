#!/bin/sh
# Studio set-up for Linux and macOS: installs Studio's own Python with the bundled uv, then runs
# Studio's installer on it. Run by the downloaded installer, by Studio.app, and by the launcher
# when an installation is unfinished.
#
#   setup.sh install|repair|uninstall|status [--prefix DIR] [--no-self-test] [--no-shortcuts]
#
# Environment: STUDIO_PYTHON=/path/to/python3.11 uses that interpreter instead of downloading one
# (for machines that cannot reach the Python downloads); STUDIO_TORCH_BACKEND, STUDIO_TORCH_INDEX_URL,
# STUDIO_INDEX_URL, STUDIO_EXTRA_INDEX_URL, STUDIO_FIND_LINKS: see docs/install.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
action=${1:-install}
[ $# -gt 0 ] && shift
if [ "$(uname -s)" = Darwin ]; then
  prefix="$HOME/Library/Application Support/studio-app"
else
  prefix="${XDG_DATA_HOME:-$HOME/.local/share}/studio-app"
fi
rest=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    *) rest="$rest $1"; shift ;;
  esac
done

die() { printf '\nStudio installer: %s\n  what to do: %s\n' "$1" "$2" >&2; exit 1; }

mkdir -p "$prefix" || die "cannot create the folder $prefix" "choose a folder you can write to"
prefix=$(cd "$prefix" && pwd)
free_kib=$(df -Pk "$prefix" | awk 'NR==2 {print $4}')
[ "${free_kib:-0}" -ge 1048576 ] || die "less than 1 GiB free in $prefix" "free some disk space and run this again"

export UV_PYTHON_INSTALL_DIR="$prefix/python" UV_CACHE_DIR="$prefix/cache" UV_NO_CONFIG=1
given="$prefix/python/given-by-STUDIO_PYTHON"
if [ -z "${STUDIO_PYTHON:-}" ] && [ -f "$given" ]; then
  STUDIO_PYTHON=$(cat "$given")  # an install made with STUDIO_PYTHON repairs with the same one
fi
if [ -n "${STUDIO_PYTHON:-}" ]; then
  py=$STUDIO_PYTHON
  echo "Using the Python given by STUDIO_PYTHON instead of downloading one: $py"
  if [ "$(cat "$given" 2>/dev/null)" != "$py" ]; then
    mkdir -p "$prefix/python" && printf '%s\n' "$py" > "$given"
  fi
elif [ "$action" = uninstall ] || [ "$action" = status ]; then
  py=$("$here/uv" python find 3.11 --python-preference only-managed 2>/dev/null) \
    || die "Studio's Python is missing from $prefix" "delete the folder $prefix by hand; your runs are elsewhere and stay"
else
  echo "[0/7] Installing Studio's own Python (once; later runs reuse it)..."
  "$here/uv" python install 3.11 --python-preference only-managed \
    || die "could not download Python" "check the network connection (or proxy settings: HTTPS_PROXY) and run this again"
  py=$("$here/uv" python find 3.11 --python-preference only-managed)
fi
wheel=""
for w in "$here"/studio-*.whl; do wheel=$w; done
[ -f "$wheel" ] || die "the Studio wheel is missing next to $0" "download the installer again"
# The installer is pure Python inside the Studio wheel; a wheel is a zip Python imports from.
# shellcheck disable=SC2086 # $rest holds only option words, split on purpose
PYTHONPATH=$wheel exec "$py" -m studio.installer "$action" --prefix "$prefix" --payload "$here" $rest
