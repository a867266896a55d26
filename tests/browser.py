"""Headless Chromium for tests of the HTML pages a run writes (certificate, Data Docs).

The pages must render styled offline, opened from the file: Chromium runs with every host
name unresolvable, so a page that fetches its CSS from a CDN renders unstyled here, as it
would on an offline machine. scripts/setup.sh installs Chromium (Debian's `chromium`);
where it is absent the tests that need it skip, saying so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium")
TIMEOUT_S = 90


def chromium() -> str:
    """The Chromium executable; skips the test where none is installed."""
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        "Chromium is not installed (scripts/setup.sh installs it with apt-get where it can "
        "run as root; else install the chromium package)"
    )


def _run(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        # Offline: no host name resolves, so nothing can be fetched from a CDN.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        *args,
        page.resolve().as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=True)


def dump_dom(page: Path, profile: Path) -> str:
    """The page's DOM as Chromium rendered it (after parsing, offline)."""
    return _run(page, profile, "--dump-dom").stdout


def screenshot(page: Path, profile: Path, width: int = 1200, height: int = 1600) -> np.ndarray:
    """The rendered page as an RGB array (height x width x 3)."""
    from PIL import Image

    out = profile / f"{page.stem}.png"
    _run(page, profile, f"--screenshot={out}", f"--window-size={width},{height}")
    with Image.open(out) as image:
        return np.asarray(image.convert("RGB"))


def colour_share(pixels: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 12) -> float:
    """Share of pixels within `tolerance` (per channel) of the colour `rgb`."""
    close = np.abs(pixels.astype(int) - np.array(rgb)).max(axis=2) <= tolerance
    return float(close.mean())
