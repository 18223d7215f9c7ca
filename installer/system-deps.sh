#!/usr/bin/env bash
# Debian/Ubuntu system libraries that Qt (PySide6) loads at run time, even offscreen.
# Installs only what is missing, so it is a quick no-op on a desktop or a prepared machine.
set -euo pipefail
need=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib libEGL.so.1        || need+=(libegl1)
have_lib libGL.so.1         || need+=(libgl1)
have_lib libfontconfig.so.1 || need+=(libfontconfig1)
have_lib libxkbcommon.so.0  || need+=(libxkbcommon0)
have_lib libdbus-1.so.3     || need+=(libdbus-1-3)
have_lib libglib-2.0.so.0   || need+=(libglib2.0-0)
fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core)
if [ ${#need[@]} -eq 0 ]; then
  echo "system-deps: Qt's system libraries are present"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "system-deps: please install the equivalents of: ${need[*]}" >&2
  exit 1
fi
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
echo "system-deps: installing ${need[*]}"
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}"
