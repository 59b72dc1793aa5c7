#!/usr/bin/env bash
# Prepare a fresh Raspberry Pi OS Bookworm (Lite recommended) to be a kiosk-edge kiosk.
# Run as root from a checkout of this repository:
#   sudo bash firmware_scripts/setup-pi.sh [--overlay] [--no-browser] [--update-key FILE.pem]
# Safe to run again: each step checks what is there and only changes what differs.
# Afterwards: `sudo -u kiosk /opt/kiosk-edge/current/.venv/bin/python -m edge provision`
# (from /opt/kiosk-edge/current), then reboot.
#
#   --overlay          read-only root (overlayfs, raspi-config). Needs /var/lib/kiosk-edge and
#                      /etc/kiosk-edge on a separate writable partition; refused otherwise.
#   --no-browser       no touchscreen browser (a kiosk whose screen is driven elsewhere).
#   --update-key FILE  a public key (PEM) trusted to sign update bundles (repeatable).
set -euo pipefail

overlay=0
browser=1
update_keys=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --overlay) overlay=1 ;;
    --no-browser) browser=0 ;;
    --update-key) update_keys+=("$2"); shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "setup-pi: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-pi: run as root (sudo)" >&2
  exit 1
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
app_root=/opt/kiosk-edge
etc_dir=/etc/kiosk-edge
state_dir=/var/lib/kiosk-edge
boot_config=/boot/firmware/config.txt
[ -f "$boot_config" ] || boot_config=/boot/config.txt
changed_boot=0

say() { echo "==> $*"; }

# install_text DEST MODE: stdin becomes DEST, only if different (keeps mtimes, no restarts).
install_text() {
  local dest="$1" mode="$2" tmp
  tmp="$(mktemp)"
  cat >"$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
    return 1
  fi
  install -D -m "$mode" "$tmp" "$dest"
  rm -f "$tmp"
  say "wrote $dest"
  return 0
}

# ensure_line FILE LINE: append LINE unless the file already has it.
ensure_line() {
  local file="$1" line="$2"
  touch "$file"
  grep -qxF -- "$line" "$file" && return 1
  printf '%s\n' "$line" >>"$file"
  say "$file: added '$line'"
  return 0
}

# --- packages: firmware_scripts/apt-packages.txt, the project's one list ------------------------
# shellcheck source=firmware_scripts/apt-packages.sh
. "$repo/firmware_scripts/apt-packages.sh"
sections=(runtime pi)
[ "$browser" -eq 1 ] && sections+=(pi-browser)
mapfile -t packages < <(apt_packages "${sections[@]}")
# Raspberry Pi OS Bullseye and older call the browser chromium-browser.
if ! apt-cache show chromium >/dev/null 2>&1; then
  packages=("${packages[@]/#chromium/chromium-browser}")
fi
apt_install "${packages[@]}"

# --- the kiosk user ------------------------------------------------------------------------
if ! id kiosk >/dev/null 2>&1; then
  say "creating user kiosk"
  useradd --system --create-home --home-dir /home/kiosk --shell /usr/sbin/nologin kiosk
fi
for group in gpio video render input lp dialout audio; do
  if getent group "$group" >/dev/null && ! id -nG kiosk | tr ' ' '\n' | grep -qx "$group"; then
    usermod -aG "$group" kiosk
    say "kiosk added to group $group"
  fi
done

# --- camera and hardware watchdog (firmware config) -------------------------------------------
if [ -f "$boot_config" ]; then
  ensure_line "$boot_config" "camera_auto_detect=1" && changed_boot=1
  ensure_line "$boot_config" "dtparam=watchdog=on" && changed_boot=1
fi
# systemd pets the SoC watchdog; a hung kernel or PID 1 reboots the kiosk.
install_text /etc/systemd/system.conf.d/60-kiosk-watchdog.conf 0644 <<'EOF' || true
[Manager]
RuntimeWatchdogSec=15s
RebootWatchdogSec=2min
EOF

# --- the USB receipt printer ---------------------------------------------------------------
# Any USB printer-class interface (07) or the usual ESC/POS vendors: group lp may use it,
# and /dev/kiosk-printer names the usblp node when that driver binds.
if install_text /etc/udev/rules.d/60-kiosk-printer.rules 0644 <<'EOF'; then
# kiosk-edge: the receipt printer, for the user kiosk (group lp), via libusb or usblp.
SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ENV{ID_USB_INTERFACES}=="*:0701??:*", MODE="0660", GROUP="lp"
SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="04b8", MODE="0660", GROUP="lp"
SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="0519", MODE="0660", GROUP="lp"
SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="0416", MODE="0660", GROUP="lp"
SUBSYSTEM=="usbmisc", KERNEL=="lp[0-9]*", MODE="0660", GROUP="lp", SYMLINK+="kiosk-printer"
EOF
  udevadm control --reload-rules || true
  udevadm trigger --subsystem-match=usb --subsystem-match=usbmisc || true
fi

# --- logs: bounded on the SD card --------------------------------------------------------------
if install_text /etc/systemd/journald.conf.d/60-kiosk.conf 0644 <<'EOF'; then
[Journal]
SystemMaxUse=200M
SystemKeepFree=500M
SystemMaxFileSize=20M
RuntimeMaxUse=64M
MaxRetentionSec=1month
EOF
  systemctl restart systemd-journald || true
fi

# --- automatic security updates --------------------------------------------------------------
install_text /etc/apt/apt.conf.d/20auto-upgrades 0644 <<'EOF' || true
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
APT::Periodic::AutocleanInterval "7";
EOF
install_text /etc/apt/apt.conf.d/52kiosk-unattended-upgrades 0644 <<'EOF' || true
// kiosk-edge: security updates only, never an unattended reboot during service hours.
Unattended-Upgrade::Origins-Pattern {
        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";
        "origin=Raspberry Pi Foundation,codename=${distro_codename},label=Raspberry Pi Foundation";
};
Unattended-Upgrade::Automatic-Reboot "false";
Unattended-Upgrade::Remove-Unused-Dependencies "true";
EOF

# --- the application: the first A/B release ----------------------------------------------------
version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/edge/__init__.py")"
release="$app_root/releases/${version}-initial"
if [ ! -L "$app_root/current" ]; then
  say "installing kiosk-edge $version as the first release"
  staging="$app_root/releases/.staging-initial"
  rm -rf "$staging"
  install -d -m 0755 "$app_root/releases"
  cp -a "$repo/." "$staging/"
  rm -rf "$staging/.git" "$staging/.venv"
  python3 -m venv --system-site-packages "$staging/.venv"
  "$staging/.venv/bin/python" -m pip install -q --upgrade pip
  "$staging/.venv/bin/python" -m pip install -q "${staging}[pi,chip]"
  mv "$staging" "$release"
  ln -sfn "releases/${version}-initial" "$app_root/.current.tmp"
  mv -T "$app_root/.current.tmp" "$app_root/current"
fi

# --- configuration, trust and state directories ----------------------------------------------
install -d -m 0750 -o kiosk -g kiosk "$etc_dir" "$etc_dir/pki" "$etc_dir/operators"
# Update signing keys: root's, outside the kiosk-writable /etc/kiosk-edge (the updater runs as
# root, so nothing the daemon's user can change may decide what it trusts).
install -d -m 0755 -o root -g root /etc/kiosk-update /etc/kiosk-update/keys
install -d -m 0700 -o kiosk -g kiosk "$state_dir"
if [ ! -f "$etc_dir/config.toml" ]; then
  install -m 0640 -o kiosk -g kiosk "$repo/config/config.example.toml" "$etc_dir/config.toml"
  say "installed $etc_dir/config.toml (run 'kiosk provision' to fill it in)"
fi
for key in "${update_keys[@]}"; do
  trusted="/etc/kiosk-update/keys/${key##*/}"
  install_text "$trusted" 0644 <"$key" || true
done
if ! grep -q '^\[update\]' "$etc_dir/config.toml"; then
  printf '\n[update]\nkeys_dir = "/etc/kiosk-update/keys"\n' >>"$etc_dir/config.toml"
fi

# --- systemd units -------------------------------------------------------------------------------
units=(kiosk-edge.service kiosk-update.service kiosk-update.timer kiosk-update.path kiosk-update-recover.service)
[ "$browser" -eq 1 ] && units+=(kiosk-browser.service)
reload=0
for unit in "${units[@]}"; do
  install_text "/etc/systemd/system/$unit" 0644 <"$repo/systemd/$unit" && reload=1
done
[ "$reload" -eq 1 ] && systemctl daemon-reload
systemctl enable kiosk-edge.service kiosk-update.timer kiosk-update.path kiosk-update-recover.service >/dev/null
if [ "$browser" -eq 1 ]; then
  systemctl enable kiosk-browser.service >/dev/null
  systemctl disable getty@tty1.service >/dev/null 2>&1 || true
  systemctl set-default graphical.target >/dev/null
fi

# --- optional read-only root ----------------------------------------------------------------------
if [ "$overlay" -eq 1 ]; then
  for dir in "$state_dir" "$etc_dir"; do
    if ! findmnt -n "$dir" >/dev/null; then
      echo "setup-pi: --overlay needs $dir on its own writable partition (it would be lost at every reboot); not enabled" >&2
      exit 1
    fi
  done
  if command -v raspi-config >/dev/null; then
    raspi-config nonint do_overlayfs 0
    say "read-only overlay root enabled (takes effect after a reboot)"
  else
    echo "setup-pi: raspi-config not found; overlay not enabled" >&2
    exit 1
  fi
fi

# --- the camera stack imports in the venv (numpy 2 beside apt's picamera2) ------------------
# Every run, not only the first install: an apt upgrade of python3-picamera2 or its modules can
# break it too. A failure here is loud and stops the setup (docs/provisioning.md).
say "checking that the venv imports picamera2, libcamera, simplejpeg, pidng, av and lgpio"
if ! (cd / && "$app_root/current/.venv/bin/python" -m provisioning.pi_imports); then
  echo "setup-pi: FAILED: the kiosk's venv cannot import the camera stack (above); the camera would not work" >&2
  exit 1
fi
"$app_root/current/.venv/bin/python" -c "from picamera2 import Picamera2"

say "done. Next: cd $app_root/current && sudo -u kiosk .venv/bin/python -m edge provision --config $etc_dir/config.toml"
if [ "$changed_boot" -eq 1 ]; then
  say "firmware settings changed: reboot to apply them"
fi
