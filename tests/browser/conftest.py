"""Fixtures for browser tests: a real JupyterLab server and Debian's Chromium via Playwright.

The server runs in a temporary root with its own settings (light theme, no news,
no update checks) and the repository on the kernel's PYTHONPATH. Chromium is
Debian's (``/usr/bin/chromium``); Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lab_page import CHROMIUM, CHROMIUM_ARGS, start_lab

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


def _needs() -> str | None:
    """Why browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; never `playwright install`)"
    if shutil.which("jupyter") is None and not _module_available("jupyterlab"):
        return "jupyterlab is not installed"
    if not (REPO / "saewidgets" / "static" / "widget.js").is_file():
        return "the JS bundle is missing: run `npm install && npm run build` in js/ (or pip install -e .)"
    return None


def _module_available(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is not None


REQUIRE = "SAEWIDGETS_REQUIRE_BROWSER"


def _required() -> bool:
    return os.environ.get(REQUIRE, "") not in ("", "0")


def pytest_collection_modifyitems(config, items):
    """Without Chromium, Playwright, JupyterLab or the bundle, browser tests skip; with
    ``SAEWIDGETS_REQUIRE_BROWSER=1`` (CI: .ci/run) they fail instead (``pytest_runtest_setup``)."""
    reason = _needs()
    if reason is None or _required():
        return
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"{reason} (set {REQUIRE}=1 to fail instead)"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if "browser" in item.keywords and _required():
        reason = _needs()
        if reason is not None:
            pytest.fail(f"{REQUIRE}=1 but browser tests cannot run: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    with start_lab(tmp_path_factory.mktemp("lab-root"), tmp_path_factory.mktemp("lab-home")) as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
