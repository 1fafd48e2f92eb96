#!/usr/bin/env bash
# Run the end-to-end tests in tests/v4l2 inside ONE QEMU VM that has real v4l2loopback devices:
#   /dev/video10 "Camera"  fed by ffmpeg from a real video (the physical camera),
#   /dev/video11 "pixcam"  written by `pixcam run`, read back by ffmpeg and OpenCV.
# This machine's kernel cannot load modules, so the VM (../shared/tools/run-in-v4l2-vm.sh)
# boots Debian's stock kernel with v4l2loopback 0.12.7 and runs pytest with the host's venv.
#
# Usage: tests/v4l2/run-in-vm.sh [extra pytest args]
# Exit code: pytest's. Where the VM cannot run here (not root, no runner, not Debian, no
# qemu and no apt) it prints "SKIPPED: <reason>" and exits 0, or 1 with V4L2_VM_REQUIRED=1.
# Knobs: VM_TIMEOUT (default 2400 s), VM_MEM (default 4096 MiB), VM_CACHE, V4L2_VM_RUNNER; see the runner's --help.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
runner=${V4L2_VM_RUNNER:-$repo/../shared/tools/run-in-v4l2-vm.sh}

skip() {
  echo "SKIPPED: v4l2 end-to-end tests: $*"
  [ "${V4L2_VM_REQUIRED:-0}" = 1 ] && exit 1
  exit 0
}

[ -x "$runner" ] || skip "VM runner $runner not found"
[ "$(id -u)" = 0 ] || skip "not root (the VM runner needs root for apt-get and to export / over 9p)"
grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release || skip "the VM runner needs a Debian 12 host"
[ -x "$repo/.venv/bin/python" ] || skip "no venv at $repo/.venv (create it first)"
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v ffmpeg >/dev/null; then
  command -v apt-get >/dev/null || skip "qemu-system-x86_64/ffmpeg missing and no apt-get"
  # The guest runs the host's programs, so ffmpeg must be on the host.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    qemu-system-x86 ffmpeg >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends qemu-system-x86 ffmpeg >/dev/null
  } || skip "cannot apt-get install qemu-system-x86 ffmpeg"
fi
"$runner" --prepare || skip "the VM runner could not prepare its kernel and module (see above)"

# v4l2loopback 0.12.7: per-device values are comma-separated arrays.
export V4L2_OPTS="devices=2 video_nr=10,11 card_label=Camera,pixcam exclusive_caps=1,1"
export VM_TIMEOUT=${VM_TIMEOUT:-2400}
# Chromium (test_browser_vm.py) runs beside pixcam and ffmpeg; /tmp is half of this RAM.
export VM_MEM=${VM_MEM:-4096}
# The guest reads the repository (the venv, pixcam, the tests) through the host's root, which
# it mounts with a cache, not through the runner's read-write share: every file operation on
# that share is a round trip to QEMU, and a restarted pixcam's imports took seconds longer
# there (each module of pixcam about 0.4 s). Nothing here is written to the repository: the
# tests write to the guest's /tmp. The share is an empty scratch folder, removed afterwards.
share=$(mktemp -d "${TMPDIR:-/tmp}/pixcam-vm-share.XXXXXX")
trap 'rm -rf "$share"' EXIT
export VM_SHARE=$share
# The guest's writes are lost at power-off, so byte code compiled there would be compiled
# again at every start of every process: compile it here, where it is kept.
"$repo/.venv/bin/python" -m compileall -q "$repo/daemon" "$repo/tests" >/dev/null || true
# OpenCV warns on every open retry made while a writer is not streaming yet: expected here.
export OPENCV_LOG_LEVEL=${OPENCV_LOG_LEVEL:-ERROR}
export VM_ENV="${VM_ENV:-} PIXCAM_MODELS_DIR PYTEST_ADDOPTS OPENCV_LOG_LEVEL"
cd "$repo"
start=$SECONDS
rc=0
"$runner" "$repo/.venv/bin/python" -m pytest tests/v4l2 -v -rs -p no:cacheprovider "$@" || rc=$?
echo "v4l2 VM tests: exit code $rc, wall time $((SECONDS - start)) s"
exit "$rc"
