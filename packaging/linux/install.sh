#!/usr/bin/env bash
# Studio installer for Linux: a private Python environment, the `studio` command and a menu entry.
#
#   curl -LO .../install.sh && bash install.sh           (or run it from a clone of the repository)
#
# Options:
#   --prefix DIR               where Studio lives (default: ~/.local/share/studio-app)
#   --source PATH_OR_SPEC      what to install (default: the repository this script sits in)
#   --system-site-packages     reuse packages already installed for this Python (faster, offline-friendly)
#   --no-desktop               do not create the menu entry and ~/.local/bin/studio link
#   --cpu                      take PyTorch's CPU build (no CUDA download)
set -euo pipefail

prefix="${HOME}/.local/share/studio-app"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_spec="$(cd "$here/../.." && pwd)"
venv_flags=()
desktop=1
torch_spec="torch>=2.4,<2.15"

say() { printf '\033[1mstudio installer:\033[0m %s\n' "$*"; }
die() { printf 'studio installer: error: %s\n' "$1" >&2; [ -n "${2:-}" ] && printf '  what to do: %s\n' "$2" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --source) source_spec="$2"; shift 2 ;;
    --system-site-packages) venv_flags+=(--system-site-packages); shift ;;
    --no-desktop) desktop=0; shift ;;
    --cpu) torch_spec="torch==2.13.0"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown option $1" "run with --help to see the options" ;;
  esac
done

py=""
for cand in python3.12 python3.11 python3.10 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    py="$cand"; break
  fi
done
[ -n "$py" ] || die "Python 3.10 or newer was not found" "install Python 3.11 from your distribution (e.g. sudo apt install python3.11 python3.11-venv) and run this again"
"$py" -c 'import venv, ensurepip' 2>/dev/null || die "$py cannot create virtual environments" "install the venv module (e.g. sudo apt install python3-venv) and run this again"

say "installing into $prefix with $("$py" --version)"
mkdir -p "$prefix"
"$py" -m venv "${venv_flags[@]}" "$prefix/venv" || die "could not create $prefix/venv" "check that $prefix is writable and has free space"
pip=("$prefix/venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install "$torch_spec" "$source_spec" \
  || die "package installation failed (the messages above name the package)" "check your network connection and free disk space, then run this installer again; it resumes where it stopped"
"$prefix/venv/bin/studio" --help >/dev/null || die "Studio was installed but does not start" "run $prefix/venv/bin/studio --help to see why"

if [ "$desktop" = 1 ]; then
  mkdir -p "$HOME/.local/bin" "$HOME/.local/share/applications"
  ln -sf "$prefix/venv/bin/studio" "$HOME/.local/bin/studio"
  cat > "$HOME/.local/share/applications/studio.desktop" <<DESKTOP
[Desktop Entry]
Type=Application
Name=Studio
Comment=Fine-tune language models on your own machine
Exec=$prefix/venv/bin/studio
Terminal=false
Categories=Development;Science;
DESKTOP
  say "added Studio to your applications menu and ~/.local/bin/studio"
fi
say "done. Start it with: $prefix/venv/bin/studio"
