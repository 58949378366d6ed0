"""Explorer latency in a real browser: slider release -> steered text complete.

Starts JupyterLab, opens a notebook in Debian's Chromium (Playwright), renders
``sw.FeatureExplorer`` on the model organism (a tiny random GPT-2 when the
organism is not built), then moves the scale slider ``--moves`` times to
scales not seen before and times, inside the page, from the slider's
``change`` event (what a release fires) to the steered text being complete
(and to its first streamed token). A second pass returns to scales already
seen (answered from the explorer's cache). The baseline is ``sw.steer`` with
the same settings and scales, called directly in the same kernel afterwards:
the generation itself, without widget, comm or browser.

    python benchmarks/bench_explorer_latency.py [--moves 24] [--tokens 20] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "browser")]

from lab_page import CHROMIUM, CHROMIUM_ARGS, open_notebook, run_cell, start_lab  # noqa: E402

PROMPT = "The word"

MOVE_JS = """async ([position, timeout]) => {
    const slider = document.querySelector('.sw-scale-row .sw-slider');
    const panel = document.querySelector('.sw-generation');
    const old = panel.dataset.request;
    const start = performance.now();
    let first = null;
    slider.value = String(position);
    slider.dispatchEvent(new Event('input', {bubbles: true}));
    slider.dispatchEvent(new Event('change', {bubbles: true}));
    return await new Promise((resolve, reject) => {
        const check = () => {
            if (panel.dataset.request === old) return;
            const steered = panel.querySelectorAll('[data-role=steered] .sw-tok').length;
            if (first === null && steered > 0) first = performance.now() - start;
            if (panel.dataset.status === 'done') {
                observer.disconnect();
                resolve({total: performance.now() - start, first: first ?? performance.now() - start,
                         cached: /cached/.test(document.querySelector('.sw-gen-status').textContent)});
            }
        };
        const observer = new MutationObserver(check);
        observer.observe(panel, {subtree: true, childList: true, attributes: true, characterData: true});
        setTimeout(() => { observer.disconnect(); reject(new Error('no result in time')); }, timeout);
        check();
    });
}"""


def organism_code() -> tuple[str, str]:
    """(code for the kernel, description); the organism if it is built, else a tiny model."""
    try:
        import saewidgets as sw

        sw.organism()
        return ("model, sae = sw.organism()\ngt = sw.organism_ground_truth()\n"
                "FEATURE = int(gt.features.feature.iloc[0])", "model organism (sw.organism())")
    except Exception:
        import saewidgets as sw
        from tiny_models import random_sae, tiny_hf_model

        root = Path(tempfile.mkdtemp(prefix="bench-tiny-"))
        hf, tok = tiny_hf_model("gpt2", d_model=32, n_layers=3)
        hf.save_pretrained(root / "model")
        tok.save_pretrained(root / "model")
        sw.save_sae(random_sae(32, 64, layer=1), root / "sae")
        return (f"model = sw.load_model({str(root / 'model')!r})\nsae = sw.load_sae({str(root / 'sae')!r})\n"
                "FEATURE = 5", "tiny random GPT-2 (3 x 32) — the organism is not built")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run_browser(root: Path, home: Path, code: str, tokens: int, positions: list[int], threads: int | None):
    """Render the explorer in JupyterLab and time the slider moves (fresh, then seen before)."""
    from playwright.sync_api import sync_playwright

    with start_lab(root, home) as lab:
        threads_code = f"import torch\ntorch.set_num_threads({threads})\n" if threads else ""
        lab.write_notebook("bench.ipynb", [
            threads_code + "import saewidgets as sw\n" + code + "\n"
            f"ex = sw.FeatureExplorer(model, sae, feature=FEATURE, prompt={PROMPT!r}, max_new_tokens={tokens})\n"
            "ex",
            # the baseline, in the same kernel: direct sw.steer calls for the scales the slider chose
            "import time\n"
            f"scales = [entry['features'][-1][1] for entry in ex.session.generations()][-{len(positions)}:]\n"
            "times = []\n"
            "for s in scales:\n"
            "    t0 = time.perf_counter()\n"
            f"    sw.steer(model, sae, {PROMPT!r}, features={{FEATURE: s}}, max_new_tokens={tokens}, progress=False)\n"
            "    times.append(1000 * (time.perf_counter() - t0))\n"
            "print('BASELINE', len(set(scales)), times)",
        ])
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_notebook(page, lab.notebook_url("bench.ipynb"), timeout=120_000)
            run_cell(page, 0, timeout=180_000)
            page.wait_for_selector(".sw-generation[data-status=done]", timeout=120_000)
            page.evaluate(MOVE_JS, [positions[0] // 2, 120_000])  # warm-up move
            fresh = [page.evaluate(MOVE_JS, [pos, 120_000]) for pos in positions]
            again = [page.evaluate(MOVE_JS, [pos, 120_000]) for pos in positions]
            line = run_cell(page, 1, timeout=300_000)
            browser.close()
    distinct = int(line.split()[1])
    baseline = [float(x) for x in line.split("[", 1)[1].rsplit("]", 1)[0].split(",")]
    return fresh, again, baseline, distinct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=24, help="slider moves per pass (>= 20)")
    parser.add_argument("--tokens", type=int, default=20, help="tokens generated per move (explorer default: 20)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the kernel (default: torch's)")
    args = parser.parse_args()

    code, description = organism_code()
    positions = [(-1) ** i * (10 + 3 * i) for i in range(1, args.moves + 1)]  # distinct slider positions
    with tempfile.TemporaryDirectory() as tmp:
        root, home = Path(tmp) / "root", Path(tmp) / "home"
        root.mkdir()
        home.mkdir()
        fresh, again, baseline, distinct = run_browser(root, home, code, args.tokens, positions, args.threads)
    results = {
        "sw.steer in the kernel (baseline)": baseline,
        "slider -> first steered token": [r["first"] for r in fresh],
        "slider -> steered text complete": [r["total"] for r in fresh],
        "slider -> complete, scale seen before": [r["total"] for r in again],
    }
    base = percentile(baseline, 0.5)
    print(f"\nExplorer latency: {description}; {args.moves} moves x {args.tokens} tokens, prompt {PROMPT!r}")
    import torch

    threads = args.threads or torch.get_num_threads()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads {threads}, "
          f"load average {os.getloadavg()[0]:.1f}, "
          f"Python {platform.python_version()}, Chromium {CHROMIUM}")
    print(f"distinct scales: {distinct}; cache hits in the second pass: {sum(r['cached'] for r in again)}/{len(again)}\n")
    print(f"| {'measure':40s} | {'p50 ms':>8s} | {'p90 ms':>8s} | {'p50 / baseline':>14s} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 10}|{'-' * 16}|")
    for name, values in results.items():
        p50, p90 = percentile(values, 0.5), percentile(values, 0.9)
        print(f"| {name:40s} | {p50:8.0f} | {p90:8.0f} | {p50 / base:14.2f} |")
    target = percentile(results["slider -> steered text complete"], 0.5)
    print(f"\ntarget p50 <= 300 ms: {'met' if target <= 300 else 'NOT met'} ({target:.0f} ms)")


if __name__ == "__main__":
    main()
