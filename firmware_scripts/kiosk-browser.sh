#!/usr/bin/env bash
# The touchscreen browser: Chromium in kiosk mode on the daemon's local web UI.
# Started by kiosk-browser.service inside cage (one full-screen Wayland application).
#   KIOSK_URL          page to show            (default http://127.0.0.1:8080/)
#   KIOSK_HEALTH_URL   the daemon's health     (default <KIOSK_URL>api/health)
#   KIOSK_BROWSER      browser binary          (default: chromium, else chromium-browser)
#   KIOSK_PROFILE_DIR  throw-away profile dir  (default ~/.cache/kiosk-browser)
#   KIOSK_CHECK_S      seconds between checks  (default 5)
#   KIOSK_HEARTBEAT_MAX_S    the page beats every 10 s; older than this is a hung page (45)
#   KIOSK_HEARTBEAT_GRACE_S  no judging the page this long after the start (60)
# Exits (and so is restarted by systemd) when the browser exits, when the UI comes back
# after being down, or when the page stops beating (GET /api/browser: a frozen renderer or a
# page stuck on an error), so the screen never stays dead.
set -euo pipefail

url="${KIOSK_URL:-http://127.0.0.1:8080/}"
health="${KIOSK_HEALTH_URL:-${url%/}/api/health}"
profile="${KIOSK_PROFILE_DIR:-${HOME:-/tmp}/.cache/kiosk-browser}"
check_s="${KIOSK_CHECK_S:-5}"
beat_url="${url%/}/api/browser"
beat_max_s="${KIOSK_HEARTBEAT_MAX_S:-45}"
beat_grace_s="${KIOSK_HEARTBEAT_GRACE_S:-60}"
browser="${KIOSK_BROWSER:-}"
if [ -z "$browser" ]; then
  browser="$(command -v chromium || command -v chromium-browser || true)"
fi
if [ -z "$browser" ]; then
  echo "kiosk-browser: no chromium found (apt-get install chromium)" >&2
  exit 1
fi

ui_up() {
  curl -fsS -o /dev/null --max-time 2 "$health"
}

# Seconds since the page last beat, whole; nothing when it never has or cannot be asked.
beat_age() {
  curl -fsS --max-time 2 "$beat_url" 2>/dev/null \
    | sed -n 's/.*"heartbeat_age_s": *\([0-9][0-9]*\).*/\1/p'
}

# Wait for the daemon (up to 2 minutes), so the first page is the UI, not an error.
for _ in $(seq 1 240); do
  if ui_up; then break; fi
  sleep 0.5
done

# A fresh profile every start: no restored tabs, no crash bubble, nothing a citizen left.
rm -rf -- "$profile"
mkdir -p -- "$profile"

"$browser" \
  --kiosk \
  --app="$url" \
  --user-data-dir="$profile" \
  --lang=vi \
  --noerrdialogs \
  --disable-infobars \
  --no-first-run \
  --disable-session-crashed-bubble \
  --disable-translate \
  --disable-features=TranslateUI,Translate \
  --disable-pinch \
  --overscroll-history-navigation=0 \
  --disable-component-update \
  --check-for-update-interval=31536000 \
  --autoplay-policy=no-user-gesture-required \
  --ozone-platform-hint=auto &
pid=$!
started=$SECONDS
trap 'kill "$pid" 2>/dev/null || true' EXIT TERM INT

was_down=0
while kill -0 "$pid" 2>/dev/null; do
  sleep "$check_s"
  if ui_up; then
    if [ "$was_down" -eq 1 ]; then
      echo "kiosk-browser: the UI is back; restarting the browser on a fresh page" >&2
      exit 0
    fi
    if [ $((SECONDS - started)) -ge "$beat_grace_s" ]; then
      age="$(beat_age)"
      if [ -n "$age" ] && [ "$age" -gt "$beat_max_s" ]; then
        echo "kiosk-browser: the page has not beaten for ${age} s; restarting the browser" >&2
        exit 0
      fi
    fi
  else
    was_down=1
  fi
done
wait "$pid"
