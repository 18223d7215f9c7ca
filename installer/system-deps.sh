#!/usr/bin/env bash
# Debian/Ubuntu system libraries that Qt (PySide6) loads at run time: offscreen, and for a real window on X11
# (what `ldd` lists for PySide6's Qt/plugins/platforms/libqxcb.so; Qt aborts at start-up when one is missing).
# Installs only what is missing, so it is a quick no-op on a desktop or a prepared machine.
set -euo pipefail
need=()
# Read from a string, not a pipe: under pipefail `ldconfig -p | grep -q` fails when grep quits early and
# ldconfig dies of SIGPIPE, which read as missing (seen with fc-list: 1 run in 4).
libs=$(ldconfig -p 2>/dev/null || true)
have_lib() { grep -qF "$1" <<<"$libs"; }
have_lib libEGL.so.1        || need+=(libegl1)
have_lib libGL.so.1         || need+=(libgl1)
have_lib libfontconfig.so.1 || need+=(libfontconfig1)
have_lib libxkbcommon.so.0  || need+=(libxkbcommon0)
have_lib libdbus-1.so.3     || need+=(libdbus-1-3)
have_lib libglib-2.0.so.0   || need+=(libglib2.0-0)
# the xcb platform plugin (a window on X11, or under Xvfb)
have_lib libX11.so.6              || need+=(libx11-6)
have_lib libX11-xcb.so.1          || need+=(libx11-xcb1)
have_lib libxcb.so.1              || need+=(libxcb1)
have_lib libxkbcommon-x11.so.0    || need+=(libxkbcommon-x11-0)
have_lib libxcb-cursor.so.0       || need+=(libxcb-cursor0)
have_lib libxcb-icccm.so.4        || need+=(libxcb-icccm4)
have_lib libxcb-image.so.0        || need+=(libxcb-image0)
have_lib libxcb-keysyms.so.1      || need+=(libxcb-keysyms1)
have_lib libxcb-randr.so.0        || need+=(libxcb-randr0)
have_lib libxcb-render.so.0       || need+=(libxcb-render0)
have_lib libxcb-render-util.so.0  || need+=(libxcb-render-util0)
have_lib libxcb-shape.so.0        || need+=(libxcb-shape0)
have_lib libxcb-shm.so.0          || need+=(libxcb-shm0)
have_lib libxcb-sync.so.1         || need+=(libxcb-sync1)
have_lib libxcb-util.so.1         || need+=(libxcb-util1)
have_lib libxcb-xfixes.so.0       || need+=(libxcb-xfixes0)
have_lib libxcb-xkb.so.1          || need+=(libxcb-xkb1)
fonts=$(fc-list 2>/dev/null || true)  # not piped into grep -q, as above
grep -qi dejavu <<<"$fonts" || need+=(fonts-dejavu-core)
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
