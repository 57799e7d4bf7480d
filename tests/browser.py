"""Headless Chromium for tests that look at pages as a person would: the DOM after scripts ran
(``dump_dom``), a screenshot (``screenshot``) and a check that it shows something
(``assert_real_picture``).

The browser runs with the network off except for this machine (``--host-resolver-rules`` maps
every other host to nothing), so a page that needs a CDN renders blank here whatever network
the machine has. ``keep_copy`` also writes a screenshot to ``SHOTS`` (``/tmp/ui-shots``) for
people to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from matplotlib import image as mpimg

SHOTS = Path(os.environ.get("TRAINABILITY_SHOTS_DIR", "/tmp/ui-shots"))
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed but CI is set: .ci/run installs it (apt)")
    pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")


def chromium_argv(binary: str, profile: Path) -> list[str]:
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars", OFFLINE,
            f"--user-data-dir={profile}"]


def _scripts(wait_ms: int) -> list[str]:
    """Let a page's scripts run (and their fetches finish) before the capture."""
    return [f"--virtual-time-budget={wait_ms}"] if wait_ms else []


def screenshot(url: str, out: Path, tmp_path: Path, *, height: int = 2000,
               wait_ms: int = 0) -> Path:
    argv = [*chromium_argv(chromium(), tmp_path / "profile"), *_scripts(wait_ms),
            f"--screenshot={out}", f"--window-size=1200,{height}", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.exists(), f"no screenshot; chromium said:\n{done.stderr[-3000:]}"
    return out


def dump_dom(url: str, tmp_path: Path, *, wait_ms: int = 0) -> str:
    argv = [*chromium_argv(chromium(), tmp_path / "profile-dom"), *_scripts(wait_ms),
            "--dump-dom", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def assert_real_picture(path: Path, width: int = 1200, *, min_height: int = 1000,
                        coloured: float = 0.002) -> None:
    """Not blank, and some pixels clearly coloured (plots, badges), not just black on white."""
    pixels = mpimg.imread(path)
    assert pixels.shape[1] == width and pixels.shape[0] >= min_height, pixels.shape
    rgb = pixels[..., :3]
    assert rgb.std() > 0.05, "the screenshot is blank"
    saturation = rgb.max(axis=-1) - rgb.min(axis=-1)
    assert (saturation > 0.3).mean() > coloured


def keep_copy(shot: Path, name: str) -> Path:
    """A copy of ``shot`` in ``SHOTS`` (for people to look at)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(shot, SHOTS / name))
