#!/usr/bin/env bash
# Does every pinned dependency of a kiosk install from a binary wheel on the Raspberry Pi OS
# releases we support? A package without one would build from source on the Pi (minutes to hours,
# a compiler and headers the image does not have) or fail. Asks PyPI, downloads nothing we keep.
#   bash firmware_scripts/check-wheels.sh [--with-deps]
# Targets: Pi OS Bookworm (Python 3.11, glibc 2.36) and Trixie (Python 3.13, glibc 2.41), aarch64.
# Prints one row per pin and target; exit 1 if any pin has no wheel. --with-deps also resolves
# the whole dependency tree for each target (slower; catches a transitive package without wheels).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

with_deps=0
[ "${1:-}" = "--with-deps" ] && with_deps=1
python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3

# The kiosk's pins: [project].dependencies and the pi extra (central runs on servers, not Pis).
# pip does not evaluate environment markers for --python-version, so we do, per target:
# one line per pin, "requirement-without-marker<TAB>applies-on-3.11<TAB>applies-on-3.13".
mapfile -t pins < <("$python" - <<'EOF'
import tomllib
from packaging.requirements import Requirement
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for pin in project["dependencies"] + project["optional-dependencies"]["pi"]:
    req = Requirement(pin)
    applies = []
    for version in ("3.11", "3.13"):
        env = {"python_version": version, "python_full_version": f"{version}.0",
               "platform_machine": "aarch64", "sys_platform": "linux", "extra": ""}
        applies.append("1" if req.marker is None or req.marker.evaluate(env) else "0")
    req.marker = None
    print(str(req), *applies, sep="\t")
EOF
)

# manylinux tags a glibc of that version accepts, newest first (pip takes them as given).
platforms() {
  local max="$1" minor
  for ((minor = max; minor >= 17; minor--)); do printf -- '--platform=manylinux_2_%d_aarch64\n' "$minor"; done
  printf -- '--platform=manylinux2014_aarch64\n'
}

targets=("3.11 cp311 36 bookworm 1" "3.13 cp313 41 trixie 2")
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0
printf '%-34s %-22s %-22s\n' "pin" "bookworm cp311 aarch64" "trixie cp313 aarch64"
for line in "${pins[@]}"; do
  IFS=$'\t' read -r pin on311 on313 <<<"$line"; applies=("$on311" "$on313")
  row=("$pin")
  for target in "${targets[@]}"; do
    read -r version abi glibc name column <<<"$target"
    if [ "${applies[$((column - 1))]}" != 1 ]; then
      row+=("not used (marker)")
      continue
    fi
    mapfile -t plats < <(platforms "$glibc")
    dest="$work/$name/${pin%%[=;<> ]*}"
    if "$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$version" \
        --implementation cp --abi "$abi" --abi abi3 --abi none "${plats[@]}" \
        --dest "$dest" "$pin" >"$work/log" 2>&1; then
      wheel="$(find "$dest" -name '*.whl' -printf '%f\n' 2>/dev/null | head -n1)"
      case "$wheel" in
        *-none-any.whl) row+=("ok (pure Python)") ;;
        *) row+=("ok") ;;
      esac
    else
      row+=("NO WHEEL")
      failed=1
      sed 's/^/    /' "$work/log" | tail -n 3 >&2
    fi
  done
  printf '%-34s %-22s %-22s\n' "${row[@]}"
done

if [ "$with_deps" -eq 1 ]; then
  for target in "${targets[@]}"; do
    read -r version abi glibc name column <<<"$target"
    mapfile -t plats < <(platforms "$glibc")
    wanted=()
    for line in "${pins[@]}"; do
      IFS=$'\t' read -r pin on311 on313 <<<"$line"; applies=("$on311" "$on313")
      if [ "${applies[$((column - 1))]}" = 1 ]; then wanted+=("$pin"); fi
    done
    if "$python" -m pip download -q --only-binary=:all: --python-version "$version" \
        --implementation cp --abi "$abi" --abi abi3 --abi none "${plats[@]}" \
        --dest "$work/deps-$name" "${wanted[@]}" >"$work/log" 2>&1; then
      echo "whole tree, $name: ok ($(find "$work/deps-$name" -name "*.whl" | wc -l) wheels)"
    else
      echo "whole tree, $name: FAILED"
      tail -n 5 "$work/log" >&2
      failed=1
    fi
  done
fi
exit "$failed"
