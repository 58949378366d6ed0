"""Write js/test/fixtures.json: what the Python side computes, for the JS unit tests to match.

The front end repeats a few pure computations of the Python side (the histogram's rows, the
slider's symlog grid and rounding, unpacking packed arrays, picking the self-explanation row for a
slider scale). ``python tools/js_fixtures.py`` writes Python's answers; ``node --test js/test``
checks the JS against them, and tests/test_js.py checks that the file is up to date.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "js" / "test" / "fixtures.json"


def fixtures() -> dict:
    from saewidgets.export.packing import Packer, unpack
    from saewidgets.export.snapshot import round_scale, symlog_grid
    from saewidgets.logit_lens.charts import histogram_rows, histogram_spec
    from saewidgets.sessions.self_explanations import select

    histogram = {"feature": 3, "class": "colour", "edges": [-1.0, -0.5, 0.0, 0.5, 1.0], "xlabel": "logit weight",
                 "yscale": "sqrt", "series": [{"name": "colour", "counts": [0, 2, 5, 1]},
                                              {"name": "other", "counts": [7, 0, 3, 0]}]}
    histogram["spec"] = histogram_spec(histogram)
    packer = Packer()
    refs = {"f2": packer.add([0.0, -1.5, 65504.0, 1e-4, math.nan], "f2"), "f4": packer.add([3.25, -7e-3], "f4"),
            "u2": packer.add([0, 65535], "u2"), "u4": packer.add([70000], "u4"), "i4": packer.add([-5, 9], "i4")}
    data = packer.to_bytes()
    panel = {"status": "done", "factor": 2.0, "rows": [[float(s), f"row {i}", None, False]
                                                       for i, s in enumerate([0.0, 0.5, 1.0, 2.0, 4.0])]}
    sliders = [0.0, 0.2, -0.3, 0.49, 1.1, 100.0]
    ranges = [{"max": 100.0, "linear": 1.0}, {"max": 15.0, "linear": 0.15}, {"max": 2.5, "linear": 0.025}]
    return {
        "histogram": histogram,
        "histogram_rows": histogram_rows(histogram),
        "packed": {"data": base64.b64encode(data).decode(), "refs": refs,
                   "values": {k: [None if isinstance(v, float) and math.isnan(v) else v for v in unpack(r, data)]
                              for k, r in refs.items()}},
        "round_scale": [[v, round_scale(v)] for v in (0.0, 1.23456, -98.765, 0.0123456, 12345.6, -0.000987)],
        "symlog_grids": [{"range": r, "n": 9, "grid": symlog_grid(r, 9)} for r in ranges],
        "self_explanation": {"panel": panel,
                             "picks": [[s, select(panel, s)["current"]["index"]] for s in sliders]},
    }


def main() -> None:
    FIXTURES.parent.mkdir(parents=True, exist_ok=True)
    FIXTURES.write_text(json.dumps(fixtures(), indent=1, allow_nan=False) + "\n")
    print(f"wrote {FIXTURES}")


if __name__ == "__main__":
    main()
