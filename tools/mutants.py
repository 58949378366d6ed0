"""Mutation check: known bugs planted in the security- and correctness-critical code must fail
the tests named for them.

Each mutant is a small hand-written edit (a snippet of one file replaced by a wrong one) and the
tests that must catch it. For each mutant the script copies the checkout (the package, tests,
tools, the JS sources with a link to ``js/node_modules``) to a temporary folder, applies the
edit there (the snippet must occur exactly once), rebuilds the JS bundle when a ``js/`` file
changed, and runs only the named tests on the copy. The mutant is *killed* when they fail
(pytest exit status 1) and *survives* when they pass. Browser tests run with browser
requirements off, so a missing browser reads as a skip and the mutant survives, never as a kill.

    python3 tools/mutants.py              # every mutant, 2 at a time; a table; exit 1 if any survives
    python3 tools/mutants.py --list       # the mutants and their tests
    python3 tools/mutants.py NAME ...     # some of them
    python3 tools/mutants.py --baseline   # first check that the named tests pass unmutated

Exit status: 0 all killed, 1 a mutant survived, 2 a mutant no longer applies (its snippet is
gone or ambiguous: update it with the code) or its tests could not run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("saewidgets", "tests", "tools", "js/src", "js/test", "js/package.json", "pyproject.toml", "README.md")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "test-artifacts", "node_modules")
TIMEOUT = 600  # seconds per mutant


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the checkout
    old: tuple[str, ...]  # the snippet as the code reads (alternatives: the first one present is used)
    new: str
    tests: tuple[str, ...]  # pytest node ids that must fail
    why: str


ENGINE = "tests/test_engine.py::"
EXPORT = "tests/test_export.py::"
ENRICH = "tests/test_enrichment.py::"
HOSTILE_PAGE = "tests/browser/test_hostile_page.py::"
JS_UNITS = "tests/test_js.py::test_js_unit_tests_pass"  # node --test on js/src (no browser)

MUTANTS = (
    # -- escaping of model and user text -------------------------------------------------------------
    Mutant("inline-json-raw", "saewidgets/export/page.py",
           ('    for char, escape in (("<", "\\\\u003c"),',), '    for char, escape in ():  # (("<", "\\\\u003c"),',
           (EXPORT + "test_inline_json_keeps_script_text_inert",),
           "JSON in <script> without escapes: </script> or <!-- in model text ends the element"),
    Mutant("inline-json-u2028", "saewidgets/export/page.py",
           ('("\\u2028", "\\\\u2028"), ("\\u2029", "\\\\u2029")',), '("\\u2028", "\\u2028"), ("\\u2029", "\\u2029")',
           (EXPORT + "test_inline_json_keeps_script_text_inert",),
           "line separators left raw in inline JSON"),
    Mutant("page-title-raw", "saewidgets/export/page.py",
           ('f"<title>{html.escape(title)}</title>"',), 'f"<title>{title}</title>"',
           (EXPORT + "test_standalone_page_escapes_its_title_subtitle_and_headings",),
           "the page's <title> written raw"),
    Mutant("page-heading-raw", "saewidgets/export/page.py",
           ('<h2 id=\\"view-{i}\\">{html.escape(headings[i])}</h2>',), '<h2 id=\\"view-{i}\\">{headings[i]}</h2>',
           (EXPORT + "test_standalone_page_escapes_its_title_subtitle_and_headings",),
           "gallery headings (explanations) written raw"),
    Mutant("static-escape-off", "saewidgets/export/static_view.py",
           ("    return html.escape(str(value), quote=True)",), "    return str(value)",
           (EXPORT + "test_static_picture_of_a_hostile_state",),
           "the script-free picture without escaping"),
    Mutant("static-token-title-raw", "saewidgets/export/static_view.py",
           ('title="{esc(repr(str(token)))}"',), 'title="{repr(str(token))}"',
           (EXPORT + "test_static_picture_of_a_hostile_state",),
           "a token's tooltip attribute written raw"),
    Mutant("js-escape-text-off", "js/src/explorer/histogram.js",
           ('  return String(value)\n    .replace(/&/g, "&amp;")',), '  return String(value);\n  String(value).replace(/&/g, "&amp;")',  # noqa: E501
           (JS_UNITS, HOSTILE_PAGE + "test_hovered_tooltips_show_hostile_text_literally"),
           "vega tooltips (innerHTML) without escapeText"),
    Mutant("js-text-as-html", "js/src/dom.js",
           ("    node.append(child instanceof Node ? child : document.createTextNode(String(child)));",),
           '    if (child instanceof Node) node.append(child);\n    else node.insertAdjacentHTML("beforeend", String(child));',
           (HOSTILE_PAGE + "test_hostile_page_shows_every_field_as_text",),
           "the view's text children parsed as HTML"),
    # -- where steering edits land ----------------------------------------------------------------------
    Mutant("positions-ignore-padding", "saewidgets/engine/batch.py",
           ("        out.append(offset + p % n)",), "        out.append(p % n)",
           (ENGINE + "test_prompt_position_edits_match_a_torch_hook",),
           "prompt indices counted from the padded batch's start"),
    Mutant("prompt-positions-include-padding", "saewidgets/engine/batch.py",
           ("        return list(range(offset, width))",), "        return list(range(0, width))",
           (ENGINE + "test_prompt_edits_cover_each_rows_own_tokens",),
           'positions="prompt" edits the left padding too'),
    Mutant("prompt-positions-skip-first", "saewidgets/engine/batch.py",
           ("        return list(range(offset, width))",), "        return list(range(offset + 1, width))",
           (ENGINE + "test_prompt_edits_cover_each_rows_own_tokens",),
           'positions="prompt" misses the first token'),
    Mutant("replace-every-step", "saewidgets/engine/run.py",
           ("    if first and plan.replace_at is not None:",), "    if plan.replace_at is not None:",
           (ENGINE + "test_prompt_and_every_step_edits_mix_in_one_batch",),
           "prompt-position replacements applied to generated tokens too"),
    Mutant("add-last-position-only", "saewidgets/engine/run.py",
           ("        h[:] += plan.add_all.to(h.device, h.dtype)[:, None, :]",),
           "        h[:, -1] += plan.add_all.to(h.device, h.dtype)",
           (ENGINE + "test_every_position_edits_reach_generated_tokens",),
           "steering adds its vector at the last position only"),
    Mutant("add-at-overwrites", "saewidgets/engine/run.py",
           ("v.to(h.device, h.dtype), accumulate=True)",), "v.to(h.device, h.dtype), accumulate=False)",
           (ENGINE + "test_edits_at_the_same_position_add_up",),
           "two edits at one position: the last one wins"),
    Mutant("clamp-ignores-activation", "saewidgets/engine/run.py",
           ("targets.to(h.dtype) - acts)",), "targets.to(h.dtype))",
           (ENGINE + "test_clamp_sets_the_features_activation",),
           "clamping adds the target instead of setting the activation"),
    Mutant("generate-without-lock", "saewidgets/engine/run.py",
           ("    with model_lock(model), torch.no_grad(), model.generate(",), "    with torch.no_grad(), model.generate(",
           ("tests/test_explorer.py::test_steer_waits_for_the_model_lock",),
           "generation without the model's lock (two threads tracing one model)"),
    Mutant("feature-info-unlocked", "saewidgets/widgets/explorer/widget.py",
           ("        self._info_lock = threading.RLock()",), '        self._info_lock = __import__("contextlib").nullcontext()',
           ("tests/test_explorer.py::test_background_statistics_are_not_overwritten_by_the_kernel_thread",),
           "feature_info set without its lock: a stale value from the kernel thread lands last"),
    # -- the snapshot: its grid and the row the saved view shows -----------------------------------------
    Mutant("grid-one-sided", "saewidgets/export/snapshot.py",
           ("    u = np.linspace(-1.0, 1.0, n)",), "    u = np.linspace(0.0, 1.0, n)",
           (EXPORT + "test_symlog_grid_follows_the_slider",),
           "the scale grid covers positive scales only"),
    Mutant("grid-drops-current-scale", "saewidgets/export/snapshot.py",
           ("            values = sorted({*values, float(explorer.scale)})",), "            values = sorted(values)",
           (EXPORT + "test_snapshot_answers_the_live_slider_too",),
           "the current scale is not in the grid: the saved view loses its text"),
    Mutant("grid-rows-shifted", "saewidgets/export/snapshot.py",
           ('            "steered": [_pack_side(side, packer) for side in generations[f]],',),
           '            "steered": [_pack_side(side, packer) for side in generations[f][1:] + generations[f][:1]],',
           (EXPORT + "test_snapshot_holds_what_the_live_explorer_computes",),
           "generations stored one grid row off"),
    Mutant("js-nearest-never-last", "js/src/standalone/snapshot.js",
           ("  for (let i = 1; i < grid.length; i++) if (Math.abs(grid[i] - value) < Math.abs(grid[best] - value)) best = i;",),
           "  for (let i = 1; i < grid.length - 1; i++) if (Math.abs(grid[i] - value) < Math.abs(grid[best] - value)) best = i;",
           (JS_UNITS, HOSTILE_PAGE + "test_the_slider_shows_the_snapshots_row_at_each_grid_scale"),
           "the saved view's slider never reaches the last grid scale"),
    Mutant("js-row-off-by-one", "js/src/standalone/snapshot.js",
           ("      steered: entry.steered[index],",), "      steered: entry.steered[Math.max(0, index - 1)],",
           (HOSTILE_PAGE + "test_the_slider_shows_the_snapshots_row_at_each_grid_scale",),
           "the saved view shows the previous grid row's text"),
    Mutant("js-float16-bias", "js/src/standalone/packing.js",
           ("  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);",),
           "  return sign * 2 ** (exponent - 16) * (1 + fraction / 1024);",
           (JS_UNITS, HOSTILE_PAGE + "test_the_slider_shows_the_snapshots_row_at_each_grid_scale"),
           "float16 log-probabilities decoded with the wrong exponent bias"),
    # -- the enrichment walk -------------------------------------------------------------------------
    Mutant("walk-steps-off-by-one", "saewidgets/logit_lens/ranks.py",
           ("            steps = (np.arange(1, m + 1, dtype=np.int64) * vocab - m).astype(wide)",),
           "            steps = (np.arange(0, m, dtype=np.int64) * vocab - m).astype(wide)",
           (ENRICH + "test_scores_equal_the_running_sum_walk",),
           "the running sum counts members from 0"),
    Mutant("walk-before-value", "saewidgets/logit_lens/ranks.py",
           ("        low_ = score[every, bottom].astype(np.int64) - n",),
           "        low_ = score[every, bottom].astype(np.int64)",
           (ENRICH + "test_scores_equal_the_running_sum_walk",),
           "the lowest running sum read after a member instead of before it"),
    Mutant("walk-complement-sign", "saewidgets/logit_lens/ranks.py",
           ("            es[:, s] = -np.where(high + low_ > 0, high, low_) / (m * n)",),
           "            es[:, s] = np.where(high + low_ > 0, high, low_) / (m * n)",
           (ENRICH + "test_scores_equal_the_running_sum_walk",),
           "a set scored through its complement keeps the complement's sign"),
    Mutant("walk-ties-early", "saewidgets/logit_lens/ranks.py",
           ("    return int((steps - late * m).max()), int((steps - early * m).min() - n)",),
           "    return int((steps - early * m).max()), int((steps - early * m).min() - n)",
           (ENRICH + "test_heavy_ties_are_scored_tie_aware", ENRICH + "test_a_few_exact_ties_count_as_one_step"),
           "a tied member's 'after' value taken at its group's start"),
    Mutant("walk-tied-extreme-missed", "saewidgets/logit_lens/ranks.py",
           ("        before = (at > 0) & tied[every, np.clip(at - 1, 0, pairs - 1)]",),
           "        before = np.zeros_like(after)",
           (ENRICH + "test_an_extreme_at_the_end_of_a_tie_group",),
           "an extreme at the last member of a tie group not seen as tied"),
    Mutant("mann-whitney-offset", "saewidgets/logit_lens/ranks.py",
           ("u_side = m * n - rank_sum + m * (m - 1) / 2",), "u_side = m * n - rank_sum + m * (m + 1) / 2",
           (ENRICH + "test_mann_whitney_matches_scipy",),
           "Mann-Whitney U off by m"),
    Mutant("bh-not-monotone", "saewidgets/logit_lens/ranks.py",
           ("    q = np.minimum.accumulate(scaled[::-1])[::-1]",), "    q = scaled",
           (ENRICH + "test_benjamini_hochberg_by_hand",),
           "Benjamini-Hochberg q-values without the step-up minimum"),
    Mutant("enrichment-chunks-overlap", "saewidgets/logit_lens/enrichment.py",
           ("            rows = slice(chunk.positions.start + start, chunk.positions.start + start + es.shape[0])",),
           "            rows = slice(start, start + es.shape[0])",
           (ENRICH + "test_enrichment_table_matches_the_reference_on_model_weights",),
           "each chunk of features written over the first rows"),
)


def apply(mutant: Mutant, root: Path) -> None:
    path = root / mutant.path
    text = path.read_text(encoding="utf-8")
    for old in mutant.old:
        if text.count(old) == 1:
            path.write_text(text.replace(old, mutant.new), encoding="utf-8")
            return
    counts = {old[:60]: text.count(old) for old in mutant.old}
    raise LookupError(f"{mutant.path}: the snippet to mutate must occur exactly once; found {counts}")


def copy_checkout(dest: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=IGNORED, symlinks=True)
        elif source.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    modules = ROOT / "js" / "node_modules"
    if modules.exists():
        (dest / "js" / "node_modules").symlink_to(modules.resolve(), target_is_directory=True)


def build_js(root: Path) -> None:
    esbuild = root / "js" / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        raise FileNotFoundError("js/node_modules/.bin/esbuild is missing: run `npm install` in js/ (pip install -e . does)")
    subprocess.run([str(esbuild), "src/index.js", "--bundle", "--format=esm", "--minify", "--target=es2020",
                    "--outfile=../saewidgets/static/widget.js", "--log-level=warning"],
                   cwd=root / "js", check=True, capture_output=True, text=True)


def run_tests(root: Path, tests: tuple[str, ...], report: Path) -> tuple[int, str]:
    """Run ``tests`` in the copy at ``root``: (pytest's exit status, the first failing test id)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SAEWIDGETS_REQUIRE_BROWSER", "PYTHONPATH")}
    env["PYTHONPATH"] = str(root)
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=",
               f"--junitxml={report}", *tests]
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return 124, "(timed out)"
    return done.returncode, _first_failure(report) or done.stdout[-300:].strip()


def _first_failure(report: Path) -> str:
    try:
        tree = ElementTree.parse(report)
    except (OSError, ElementTree.ParseError):
        return ""
    for case in tree.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            return f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
    return ""


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | SURVIVED | STALE | ERROR
    detail: str
    seconds: float


def check(mutant: Mutant, workdir: Path) -> Outcome:
    start = time.monotonic()
    root = workdir / mutant.name
    try:
        copy_checkout(root)
        apply(mutant, root)
        if mutant.path.startswith("js/"):
            build_js(root)
    except (LookupError, FileNotFoundError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        return Outcome(mutant, "STALE" if isinstance(error, LookupError) else "ERROR", detail, time.monotonic() - start)
    code, detail = run_tests(root, mutant.tests, workdir / f"{mutant.name}.xml")
    shutil.rmtree(root, ignore_errors=True)
    status = {0: "SURVIVED", 1: "killed"}.get(code, "ERROR")
    if code not in (0, 1):
        detail = f"pytest exit status {code}: {detail}"
    return Outcome(mutant, status, detail if code else "the tests passed", time.monotonic() - start)


def baseline(mutants: list[Mutant], workdir: Path) -> bool:
    """The named tests pass on an unmutated copy (with its own freshly built bundle)."""
    root = workdir / "baseline"
    copy_checkout(root)
    if any(m.path.startswith("js/") for m in mutants):
        build_js(root)
    tests = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
    code, detail = run_tests(root, tests, workdir / "baseline.xml")
    print(f"baseline: {len(tests)} tests on the unmutated code: {'pass' if code == 0 else f'FAIL ({detail})'}")
    return code == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests")
    parser.add_argument("--jobs", type=int, default=2, help="mutants checked at once (default 2)")
    parser.add_argument("--baseline", action="store_true", help="first check that the tests pass unmutated")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTANTS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown mutant(s) {unknown}; see --list")
    chosen = [known[n] for n in args.names] or list(MUTANTS)
    if args.list:
        for m in chosen:
            print(f"{m.name:34} {m.path}\n{'':34} {m.why}\n{'':34} killed by: {', '.join(m.tests)}")
        return 0
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="saewidgets-mutants-") as tmp:
        workdir = Path(tmp)
        if args.baseline and not baseline(chosen, workdir):
            return 2
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            outcomes = list(pool.map(lambda m: check(m, workdir), chosen))
    width = max(len(m.name) for m in chosen)
    print(f"{'mutant':{width}}  {'result':8}  {'s':>5}  killed by / detail")
    for o in outcomes:
        print(f"{o.mutant.name:{width}}  {o.status:8}  {o.seconds:5.0f}  {o.detail.splitlines()[0] if o.detail else ''}")
    counts = {s: sum(o.status == s for o in outcomes) for s in ("killed", "SURVIVED", "STALE", "ERROR")}
    print(f"{counts['killed']}/{len(outcomes)} killed, {counts['SURVIVED']} survived, {counts['STALE']} stale, "
          f"{counts['ERROR']} errors in {time.monotonic() - start:.0f} s")
    if counts["SURVIVED"]:
        return 1
    return 2 if counts["STALE"] or counts["ERROR"] else 0


if __name__ == "__main__":
    sys.exit(main())
