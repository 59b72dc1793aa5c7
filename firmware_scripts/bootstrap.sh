#!/usr/bin/env bash
# Set up kiosk-edge on a fresh Debian / Raspberry Pi OS machine, then run it or its tests.
#   bash firmware_scripts/bootstrap.sh run    # the kiosk: simulated on a PC, real parts on a Pi
#   bash firmware_scripts/bootstrap.sh test   # the whole test suite
# Safe to run again: installs only what is missing.
set -euo pipefail

mode="${1:-}"
case "$mode" in
  run|test|setup) ;;
  *) echo "usage: $0 run|test|setup" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="$repo/.venv"

is_pi() {
  grep -qs "Raspberry Pi" /proc/device-tree/model
}

# shellcheck source=firmware_scripts/apt-packages.sh
. "$repo/firmware_scripts/apt-packages.sh"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- system packages: firmware_scripts/apt-packages.txt, the project's one list ------------
if command -v apt-get >/dev/null 2>&1; then
  sections=(runtime)
  [ "$mode" = test ] && sections+=(test)
  is_pi && sections+=(pi)
  mapfile -t packages < <(apt_packages "${sections[@]}")
  apt_install "${packages[@]}"
else
  echo "==> no apt-get here: install what firmware_scripts/apt-packages.txt lists yourself" >&2
fi

# --- the virtual environment -------------------------------------------------------------
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv"
  if is_pi; then
    "$python" -m venv --system-site-packages "$venv"   # sees apt's picamera2 and lgpio
  else
    "$python" -m venv "$venv"
  fi
fi
extras="dev"
is_pi && extras="dev,pi"   # lgpio and simplejpeg built for the venv's numpy (docs/provisioning.md)
stamp="$venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-$extras"
if [ ! -f "$stamp" ]; then
  echo "==> installing kiosk-edge and its pinned dependencies into $venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e ".[$extras]"
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
# The web UI's message catalogs (.po -> .mo) are build artefacts; compiled on every run, so a
# .po changed since the install is never served stale (the app itself never writes them).
"$venv/bin/pybabel" -q compile -d web_ui/translations
if is_pi; then
  # apt's picamera2 under the venv's numpy 2: fail here, loudly, not at the first citizen's visit.
  (cd / && "$venv/bin/python" -m provisioning.pi_imports)
fi

# --- run or test -------------------------------------------------------------------------
case "$mode" in
  setup)
    echo "==> ready: $venv/bin/kiosk --help"
    ;;
  run)
    if is_pi; then
      config="${KIOSK_CONFIG:-/etc/kiosk-edge/config.toml}"
      if [ ! -f "$config" ]; then
        echo "==> no $config yet: installing the example (edit it, or run 'kiosk provision' later)"
        as_root install -d -m 0755 "$(dirname "$config")"
        as_root install -m 0644 config/config.example.toml "$config"
      fi
      exec "$venv/bin/kiosk" run --config "$config"
    fi
    echo "==> simulated kiosk: open http://127.0.0.1:8080/ (developer panel: /dev); Ctrl+C stops"
    exec "$venv/bin/kiosk" run --simulate
    ;;
  test)
    set +e
    "$venv/bin/python" -m pytest "${@:2}"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then
      echo "pytest collected no tests: that is a failure here, not a pass" >&2
      exit 1
    fi
    exit "$rc"
    ;;
esac
