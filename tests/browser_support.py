"""Debian's Chromium driven by Playwright (from PyPI; no browser download), or one skip line."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("GOVHUB_CHROMIUM", "/usr/bin/chromium")


def _why_no_browser() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A launched headless Chromium; skips the test in one clear line if it cannot start."""
    why = _why_no_browser()
    if why is not None:
        pytest.skip(f"browser tests skipped: {why}")
    from playwright.async_api import Error, async_playwright

    async with async_playwright() as pw:
        try:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
        except Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            pytest.skip(f"browser tests skipped: Chromium at {CHROMIUM} cannot start: {first}")
        try:
            yield browser
        finally:
            await browser.close()
