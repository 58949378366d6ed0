"""``python -m saewidgets.export NOTEBOOK.ipynb [-o OUT.html]``: offline HTML of a saved notebook."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .notebook import offline_html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m saewidgets.export",
        description="Convert a notebook to HTML whose saewidgets views work with no kernel and no network.",
    )
    parser.add_argument("notebook", type=Path, help="the .ipynb file (save it with its widget state)")
    parser.add_argument("-o", "--output", type=Path, help="the HTML file to write (default: next to the notebook)")
    parser.add_argument("--execute", action="store_true",
                        help="run the notebook first (its widget state saved), then export what it shows")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell with --execute (default 600)")
    parser.add_argument("--all-anywidgets", action="store_true",
                        help="also inline other anywidget-based widgets (they must work without a kernel)")
    args = parser.parse_args(argv)
    output = args.output or args.notebook.with_suffix(".html")
    import warnings

    from .notebook import MissingWidgetState

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MissingWidgetState)
        try:
            saved = offline_html(args.notebook, output, select="all" if args.all_anywidgets else "saewidgets",
                                 execute=args.execute, timeout=args.timeout)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    for warning in caught:
        if issubclass(warning.category, MissingWidgetState):
            print(f"warning: {warning.message}", file=sys.stderr)
    print(f"wrote {saved} (works offline: open it in a browser)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
