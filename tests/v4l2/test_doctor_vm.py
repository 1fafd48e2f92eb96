"""`pixcam doctor` on a machine where v4l2loopback really is loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_doctor_reports_loaded_loopback_with_options(
    tmp_path: Path, camera_dev: str, pixcam_dev: str, models_installed: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[camera]\ndevice = "{camera_dev}"\n\n[output]\ndevice = "{pixcam_dev}"\n',
        encoding="utf-8",
    )
    res = subprocess.run(
        [sys.executable, "-m", "pixcam", "doctor", "--config", str(config)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    out = res.stdout
    print(out)
    lines = out.splitlines()
    assert any(line.startswith("ok    v4l2loopback   loaded") for line in lines), out
    # Both devices, with the labels and exclusive_caps the module was loaded with.
    assert any(
        line.startswith("ok    virtual cam")
        and pixcam_dev in line
        and "'pixcam'" in line
        and "exclusive_caps=Y" in line
        for line in lines
    ), out
    assert any(camera_dev in line and "'Camera'" in line for line in lines), out
    assert any(line.startswith(f"ok    output         {pixcam_dev} is writable") for line in lines)
    # Nothing required is missing here (no display and no boot config are only warnings).
    assert not [line for line in lines if line.startswith("FAIL")], out
    assert res.returncode == 0, out + res.stderr
