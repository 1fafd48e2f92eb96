#!/usr/bin/env bash
# Set pixcam up in ./.venv and start it.
#
#   bash setup.sh            install, then run pixcam (camera -> virtual camera, or the demo)
#   bash setup.sh --no-run   install only
#   bash setup.sh --run      run only (after an earlier install)
#
# Models come from ../shared/models when that folder exists (offline, as CI and developers run;
# PIXCAM_MODEL_SOURCE overrides it: a folder or an https URL prefix), else they are downloaded
# from their pinned public origins (or $PIXCAM_MODEL_MIRROR/HOST/PATH). Every file is checked
# against its sha256; the int8 default is made from the float weights on the way.
set -euo pipefail
cd "$(dirname "$0")"
run=1
[ "${1:-}" = "--no-run" ] && run=0

say() { printf 'setup: %s\n' "$*"; }

run_pixcam() {
  # A camera is a capture device that is not a loopback (pixcam's own output is no input).
  if .venv/bin/python -c 'import sys; from pixcam.video.sources import list_cameras
sys.exit(not list_cameras())'; then
    say "starting pixcam (Ctrl-C stops it)"
    exec .venv/bin/pixcam run
  fi
  # No camera: the demo video when it is there (CI and developers have ../shared), else a
  # 3-second clip of a picture that ships with pixcam, so the whole chain still runs once.
  local demo=${PIXCAM_DEMO_VIDEO:-../shared/data/video/doctor-desk-960x540.mp4}
  mkdir -p out
  if [ -f "$demo" ]; then
    say "no camera found: running the demo on $demo"
    .venv/bin/pixcam run --input "$demo" --output out/demo-blur.mp4 --background blur --frames 300
    say "wrote out/demo-blur.mp4"
  else
    say "no camera found: running the demo on the bundled picture backgrounds/warm-office.png"
    .venv/bin/pixcam run --input backgrounds/warm-office.png --output out/demo-blur.mp4 \
      --background blur --frames 90
    say "wrote out/demo-blur.mp4 (no person in that picture, so all of it is blurred);" \
        "plug in a camera and run .venv/bin/pixcam run to see yourself cut out"
  fi
}

if [ "${1:-}" = "--run" ]; then
  run_pixcam
  exit
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip
say "installing pixcam and its dependencies"
"$VPY" -m pip install -q -e '.[test]'
# The tray and the PipeWire camera need PyGObject, which builds against the system's GObject
# libraries; without them pixcam still runs, headless, into v4l2loopback.
if ! "$VPY" -c 'import gi' 2>/dev/null; then
  "$VPY" -m pip install -q -e '.[tray]' 2>/dev/null \
    || say "PyGObject did not build (needs libgirepository1.0-dev libcairo2-dev; the icon also" \
           "needs gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1); no tray icon, no PipeWire camera"
fi
# pystray's StatusNotifier backend needs the AyatanaAppIndicator3 typelib; without it the
# icon shows only in XEmbed trays, not in GNOME's or KDE's panels.
if "$VPY" -c 'import sys; from pixcam.tray import tray_backend; sys.exit(tray_backend() != "gtk")'; then
  say "for the tray icon in GNOME/KDE panels: sudo apt install gir1.2-ayatanaappindicator3-0.1"
fi

source=${PIXCAM_MODEL_SOURCE:-}
if [ -z "$source" ] && [ -d ../shared/models ]; then source=../shared/models; fi
if [ -n "$source" ]; then
  say "installing the models from $source"
  .venv/bin/pixcam models install --from "$source"
else
  say "downloading the models${PIXCAM_MODEL_MIRROR:+ through $PIXCAM_MODEL_MIRROR}"
  .venv/bin/pixcam models install
fi

[ "$run" = 1 ] || exit 0
run_pixcam
