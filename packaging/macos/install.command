#!/usr/bin/env bash
# Studio installer for macOS: double-click this file in Finder.
# It reuses the Linux installer's steps (a private Python environment and the `studio` command)
# and adds an application launcher in ~/Applications.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/../linux/install.sh" --no-desktop --prefix "$HOME/Library/Application Support/studio-app" "$@"
app="$HOME/Applications/Studio.app/Contents/MacOS"
mkdir -p "$app"
printf '#!/bin/sh\nexec "%s" "$@"\n' "$HOME/Library/Application Support/studio-app/venv/bin/studio" > "$app/Studio"
chmod +x "$app/Studio"
echo "Studio is in ~/Applications. Apple-silicon Macs train on the GPU through MPS."
