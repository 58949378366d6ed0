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
    parser.add_argument("--all-anywidgets", action="store_true",
                        help="also inline other anywidget-based widgets (they must work without a kernel)")
    args = parser.parse_args(argv)
    output = args.output or args.notebook.with_suffix(".html")
    try:
        saved = offline_html(args.notebook, output, select="all" if args.all_anywidgets else "saewidgets")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {saved}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
