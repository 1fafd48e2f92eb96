#!/usr/bin/env bash
# Run every pixcam test: install (no run), lint, the test suite on this machine, the quick
# suite on the other Pythons (3.10-3.13) found here, then the real-device tests inside one VM
# with v4l2loopback (skipped, with the reason, where that VM cannot start).
set -euo pipefail
cd "$(dirname "$0")/.."
bash setup.sh --no-run
.venv/bin/ruff check daemon tests bench backgrounds
.venv/bin/mypy  # [tool.mypy] in pyproject.toml: the package, strict on the frame chain
.venv/bin/python -m pytest -q -ra tests --ignore=tests/v4l2
# The quick suite and two real commands on every other CPython 3.10-3.13 this machine has.
bash tests/other_pythons.sh
bash tests/v4l2/run-in-vm.sh -q
