#!/bin/sh
# Sets Studio up (or finishes, repairs or updates it), then starts it. Opened in Terminal by Studio.app.
res=$(cd "$(dirname "$0")" && pwd)
root="$HOME/Library/Application Support/studio-app"
if "$res/payload/setup.sh" install --prefix "$root"; then
  "$root/env/bin/studio" >/dev/null 2>&1 &
  echo "Studio is starting; you can close this window."
else
  echo "Studio's set-up did not finish; the lines above say why. Open Studio again to retry."
fi
