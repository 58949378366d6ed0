"""Driving a JupyterLab notebook page with Playwright: open, run cells, read outputs."""

from __future__ import annotations

from typing import Any

CELL = ".jp-Notebook .jp-Cell"


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
    return cell.locator(".jp-OutputArea").inner_text()
