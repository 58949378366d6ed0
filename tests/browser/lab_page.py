"""A JupyterLab server for browser tests and benchmarks, and driving its notebook pages
with Playwright (open, run cells, read outputs). Chromium is Debian's; never downloaded."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[2]
CELL = ".jp-Notebook .jp-Cell"
CHROMIUM = os.environ.get("SAEWIDGETS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True,
    },
    "@jupyterlab/apputils-extension/themes.jupyterlab-settings": {"theme": "JupyterLab Light"},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


class Lab:
    """A running JupyterLab: its URL, token and root directory."""

    def __init__(self, url: str, token: str, root: Path) -> None:
        self.url, self.token, self.root = url, token, root

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def write_notebook(self, name: str, cells: list[str]) -> Path:
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = self.root / name
        nbformat.write(nb, path)
        return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path, ready_url: str, name: str,
                   timeout: float, *, any_answer: bool = False) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` (its output in ``log_path``) until ``ready_url`` answers 200 (or anything at
    all, a 404 included, with ``any_answer``); terminated, then killed if it lingers, on exit."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(ready_url, timeout=2) as response:
                        if any_answer or response.status == 200:
                            break
                except urllib.error.HTTPError:
                    if any_answer:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start; log:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.3)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def start_lab(root: Path, home: Path, timeout: float = 90.0) -> Iterator[Lab]:
    """Run JupyterLab on 127.0.0.1 serving ``root`` (settings and runtime files under ``home``),
    with the repository on the kernel's PYTHONPATH (light theme, no news, no update checks)."""
    settings = home / "settings"
    for rel, value in LAB_SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "ANYWIDGET_HMR": "0",
    }
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root"]
    with running_server(cmd, env, root, home / "lab.log", f"{url}/api/status?token={token}", "JupyterLab", timeout):
        yield Lab(url, token, root)


def watched_page(browser: Any, width: int, height: int) -> tuple[Any, Any, list[str], list[str]]:
    """A new context and page of ``width`` x ``height`` that records every request leaving the
    machine (anything but 127.0.0.1, data: and blob:) and every page error: (context, page,
    outside, errors)."""
    from urllib.parse import urlparse

    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if urlparse(r.url).hostname not in ("127.0.0.1", None)
            and not r.url.startswith(("data:", "blob:")) else None)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, outside, errors


def open_notebook(page: Any, url: str, timeout: float = 60_000) -> None:
    """Open a notebook and wait until its kernel is ready (accepting the kernel dialog)."""
    page.goto(url, wait_until="domcontentloaded", timeout=timeout)
    page.wait_for_selector(f"{CELL} .jp-InputArea-editor", timeout=timeout)
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    try:
        accept.first.click(timeout=3_000)
    except Exception:
        pass  # no kernel dialog this time
    wait_idle(page, timeout)


def wait_idle(page: Any, timeout: float = 60_000) -> None:
    """Wait until the notebook's kernel reports idle."""
    page.wait_for_function(
        """() => {
            const s = document.querySelector('.jp-Notebook-ExecutionIndicator');
            const t = s && (s.getAttribute('data-status') || s.textContent);
            return t ? /idle/i.test(t) : !!document.querySelector('.jp-KernelStatus-success, [title*="Idle"]');
        }""",
        timeout=timeout,
    )


def run_cell(page: Any, index: int, timeout: float = 120_000) -> str:
    """Run code cell ``index`` (Shift+Enter) and return its output text when done."""
    cell = page.locator(CELL).nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Escape")  # command mode: Shift+Enter runs the selected cell
    before = cell.locator(".jp-InputPrompt").inner_text()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(
        """([i, before]) => {
            const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
            const p = cell && cell.querySelector('.jp-InputPrompt');
            const text = p ? p.textContent : '';
            return /\\[\\d+\\]/.test(text) && text !== before;
        }""",
        arg=[index, before],
        timeout=timeout,
    )
    return cell.locator(".jp-OutputArea").first.inner_text()  # the cell's own (widgets may hold more)
