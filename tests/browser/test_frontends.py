"""The explorer beyond JupyterLab, as a user would run it: Jupyter Notebook 7, Voilà and marimo,
each served on 127.0.0.1 with the repository on the kernel's path, driven through Chromium with
every request off the machine refused. In each: the explorer renders, its self-explanation
panel fills in (the best explanations numbered: marimo's stylesheet inside the widget's shadow
DOM would otherwise drop the numbers), moving the slider steers live (the steered text changes,
the baseline stays), the text meets WCAG AA contrast, and nothing goes to stderr. Screenshots go
to test-artifacts/frontend-*.png.
"""

from __future__ import annotations

import os
import secrets
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import pytest

from contrast import below_aa, text_contrasts
from lab_page import free_port, running_server

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 240_000
SETUP = (
    "import saewidgets as sw\n"
    "model, sae = sw.organism()\n"
    "FEATURE = sw.organism_ground_truth().feature('animal')\n"
    "ex = sw.FeatureExplorer(model, sae, feature=FEATURE, prompt='The quick brown', max_new_tokens=12)\n"
)
MARIMO_APP = '''import marimo

app = marimo.App(width="full")


@app.cell
def _():
    import saewidgets as sw

    model, sae = sw.organism()
    FEATURE = sw.organism_ground_truth().feature("animal")
    ex = sw.FeatureExplorer(model, sae, feature=FEATURE, prompt="The quick brown", max_new_tokens=12)
    ex
    return


if __name__ == "__main__":
    app.run()
'''


def _module_missing(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is None


@contextmanager
def serve(args: list[str], ready_url: str, cwd: Path, home: Path, timeout: float = 120.0) -> Iterator[None]:
    """Run ``python -m <args>`` in ``cwd`` (its Jupyter files under ``home``, the repository on
    PYTHONPATH) until ``ready_url`` answers; stopped on exit."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": os.environ.get("JUPYTER_DATA_DIR", ""),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "MARIMO_CONFIG_DIR": str(home / "marimo"),
        "XDG_CONFIG_HOME": str(home / "xdg"),
        "ANYWIDGET_HMR": "0",
    }
    if not env["JUPYTER_DATA_DIR"]:
        env.pop("JUPYTER_DATA_DIR")
    log_path = home / "server.log"
    with running_server([sys.executable, "-m", *args], env, cwd, log_path, ready_url, args[0], timeout, any_answer=True):
        yield
    print(f"--- {args[0]} log (tail) ---\n{log_path.read_text()[-1500:]}")


def _notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP + "ex")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _page(browser, origin: str):
    """A page that may reach ``origin`` only; the requests it refused are recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    outside: list[str] = []

    def route(r):
        url = r.request.url
        if url.startswith(("data:", "blob:", origin)) or urlparse(url).hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            outside.append(url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack or ''}"))
    return context, page, outside, errors


def ours(errors: list[str]) -> list[str]:
    """The page errors that come from saewidgets' front end (the host's own are its business)."""
    return [e for e in errors if "saewidgets" in e or "sw-" in e or "widget.js" in e]


def check_explorer(page, name: str, artifacts: Path) -> dict:
    """The explorer renders, explains, steers live; its text meets AA. Returns what was measured."""
    root = page.locator(".sw-explorer")
    root.wait_for(timeout=TIMEOUT)
    done = page.locator(".sw-generation[data-status=done]")
    done.wait_for(timeout=TIMEOUT)
    page.locator(".sw-chart svg").first.wait_for(timeout=TIMEOUT)
    page.locator(".sw-selfexplain[data-status=done] .sw-se-chart svg").wait_for(timeout=TIMEOUT)
    baseline = page.locator(".sw-baseline .sw-text").inner_text()
    assert page.locator(".sw-steered .sw-text").inner_text() == baseline  # scale 0

    best = page.locator(".sw-se-best li").first
    assert best.evaluate("li => getComputedStyle(li).listStyleType") == "decimal"  # the numbers show
    assert best.evaluate("li => getComputedStyle(li.parentElement).display") == "block"

    request = page.locator(".sw-generation").get_attribute("data-request")
    slider = page.locator(".sw-scale-row .sw-slider")
    slider.focus()
    slider.press("End")  # steer at the top of the range, from the keyboard
    page.locator(f".sw-generation[data-status=done]:not([data-request='{request}'])").wait_for(timeout=TIMEOUT)
    steered = page.locator(".sw-steered .sw-text").inner_text()
    assert page.locator(".sw-baseline .sw-text").inner_text() == baseline
    assert steered != baseline and page.locator(".sw-steered .sw-diff").count() > 0
    page.locator(".sw-selfexplain[data-row='31']").wait_for(timeout=TIMEOUT)  # the panel follows the slider

    rows = text_contrasts(root)
    failing = below_aa(rows)
    assert not failing, (name, failing)
    root.scroll_into_view_if_needed()
    root.screenshot(path=str(artifacts / f"frontend-{name}.png"))
    return {"lowest contrast": min(r["ratio"] for r in rows), "texts": len(rows)}


@pytest.mark.skipif(_module_missing("notebook"), reason="Jupyter Notebook is not installed (pip install notebook)")
def test_explorer_in_jupyter_notebook_7(browser, artifacts, tmp_path):
    from lab_page import open_notebook, run_cell, wait_idle

    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    _notebook(root / "explorer.ipynb")
    port, token = free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    with serve(["notebook", "--no-browser", "--ip", "127.0.0.1", "--port", str(port), f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}", "--allow-root"], f"{url}/api/status?token={token}", root, home):
        context, page, outside, errors = _page(browser, url)
        try:
            open_notebook(page, f"{url}/notebooks/explorer.ipynb?token={token}", timeout=TIMEOUT)
            accept = page.locator(".jp-Dialog .jp-mod-accept")  # the kernel dialog can come late
            if accept.count():
                accept.first.click()
                wait_idle(page, TIMEOUT)
            output = run_cell(page, 0, timeout=TIMEOUT)
            assert "Feature explorer" in output
            measured = check_explorer(page, "notebook7", artifacts)
            assert page.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
        finally:
            page.screenshot(path=str(artifacts / "frontend-notebook7-last.png"), full_page=True)
            context.close()
    import notebook

    print("Notebook", notebook.__version__, measured)
    assert outside == [] and not ours(errors), (outside, errors)


@pytest.mark.skipif(_module_missing("voila"), reason="Voila is not installed (pip install voila)")
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_explorer_in_voila(browser, artifacts, tmp_path, theme):
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    _notebook(root / "explorer.ipynb")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serve(["voila", "explorer.ipynb", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
                f"--theme={theme}", "--show_tracebacks=True"], f"{url}/voila/static/", root, home):
        context, page, outside, errors = _page(browser, url)
        try:
            page.goto(url, wait_until="domcontentloaded", timeout=TIMEOUT)
            measured = check_explorer(page, f"voila-{theme}", artifacts)
            assert page.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
        finally:
            context.close()
    import voila

    print("Voila", voila.__version__, theme, measured)
    # Voila's own page template asks a CDN for Font Awesome (refused here: the explorer needs none of it)
    assert [u for u in outside if "fontawesome" not in u] == [] and not ours(errors), (outside, errors)


@pytest.mark.skipif(_module_missing("marimo"), reason="marimo is not installed (pip install marimo)")
def test_explorer_in_marimo(browser, artifacts, tmp_path):
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    (root / "explorer_app.py").write_text(MARIMO_APP)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serve(["marimo", "run", "explorer_app.py", "--headless", "--host", "127.0.0.1", "--port", str(port),
                "--no-token", "--no-sandbox"], f"{url}/health", root, home):
        context, page, outside, errors = _page(browser, url)
        try:
            page.goto(url, wait_until="domcontentloaded", timeout=TIMEOUT)
            measured = check_explorer(page, "marimo", artifacts)
            assert page.locator(".sw-explorer").evaluate("el => el.getRootNode() instanceof ShadowRoot")
        finally:
            page.screenshot(path=str(artifacts / "frontend-marimo-last.png"), full_page=True)
            context.close()
    from importlib.metadata import version  # not `import marimo` here: the server ran it, the test needs no copy

    print("marimo", version("marimo"), measured)
    assert outside == [] and not ours(errors), (outside, errors)
