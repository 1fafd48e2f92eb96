#!/usr/bin/env bash
# Run every pixcam test: install (no run), lint, the test suite, then the real-device tests
# inside a VM with v4l2loopback where that VM can start.
set -euo pipefail
cd "$(dirname "$0")/.."
bash setup.sh --no-run
.venv/bin/ruff check daemon tests bench backgrounds
.venv/bin/python -m pytest -q -ra tests
