# shellcheck shell=bash
# Sourced by bootstrap.sh, setup-pi.sh and .ci/run: the apt packages of firmware_scripts/apt-packages.txt.
#   apt_packages SECTION...   prints the packages of those sections, one per line
#   apt_install PACKAGE...    installs those dpkg does not have (one 'apt-get update' at most)

_apt_list="$(dirname "${BASH_SOURCE[0]}")/apt-packages.txt"

apt_packages() {
  local want=" $* "
  awk -v want="$want" '
    { sub(/#.*/, ""); gsub(/[ \t]+/, "") }
    /^\[.*\]$/ { section = substr($0, 2, length($0) - 2); known[section] = 1; next }
    $0 != "" && index(want, " " section " ") { print }
    END {
      n = split(want, asked, " ")
      for (i = 1; i <= n; i++) if (!(asked[i] in known)) { print "apt-packages: no section [" asked[i] "]" > "/dev/stderr"; exit 2 }
    }
  ' "$_apt_list"
}

apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "==> apt: installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
