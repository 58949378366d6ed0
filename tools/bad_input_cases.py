"""Every numbered case of the "Bad input never looks like a result" issue, run on the model organism.

For each case it prints what was tried and the exact message the package raises (or, for the cache,
the warning it gives and how it recovers). Runs offline in about a minute on 2 CPU cores:

    python3 tools/bad_input_cases.py
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers.utils import logging as transformers_logging

import saewidgets as sw
from saewidgets.engine import Decoding, Edit, NonFiniteError, Row, generate
from saewidgets.self_explanation.cache import CacheEntryWarning

FEATURE = 3
SHORT = "The word"
LONG = " ".join(["red"] * 200)  # 200 tokens: the organism's context is 128 positions


def show(case: str, call: Callable[[], Any]) -> None:
    """Run ``call``; print the case and the error it raises (type and message), or its own account of how
    the package recovered (a string)."""
    print(f"- {case}")
    try:
        result = call()
    except Exception as error:  # noqa: BLE001 - the point is to show whatever the package raises
        print(f"    {type(error).__name__}: {_tidy(error)}")
    else:
        print(f"    {_tidy(result)}" if isinstance(result, str) else f"    no exception; returned {result!r}")


ROOT = Path(tempfile.mkdtemp(prefix="bad-input-"))


def _tidy(text: Any) -> str:
    """The message with this run's temporary folder written as <tmp>."""
    return str(text).replace(str(ROOT), "<tmp>")


def heading(text: str) -> None:
    print(f"\n## {text}\n")


def explorer_case(model: Any, sae: Any, name: str, value: Any) -> str:
    """Set one trait of a FeatureExplorer from Python. An out-of-limits value raises; a value that is
    valid alone but does not fit this prompt shows in ``explorer.error`` and the widget keeps working."""
    ex = sw.FeatureExplorer(model, sae, feature=FEATURE, prompt=SHORT, max_new_tokens=4, auto_self_explain=False)
    try:
        ex.wait(60)
        setattr(ex, name, value)
        ex.wait(60)
        shown = ex.error
        ex.error = ""
        setattr(ex, name, {"prompt": SHORT, "max_new_tokens": 4}[name])  # recovery: a good value runs again
        ex.wait(60)
        recovered = ex.error == "" and ex.generation.get("status") == "done"
        return (f"no exception, recovers: the view's error banner (explorer.error) says {shown!r}; set back to a good value, "
                f"it generates again (recovered: {recovered})")
    finally:
        ex.close()


def write_organism_sae(sae: Any, folder: Path) -> Path:
    sw.save_sae(sae, folder)
    return folder


def with_cfg(sae: Any, folder: Path, key: str, value: Any) -> Path:
    write_organism_sae(sae, folder)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg[key] = value
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder


class Payload:
    """Unpickling this would create ``marker`` (it never runs: the loaders do not unpickle)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> Any:
        return (os.system, (f"touch '{self.marker}'",))


def main() -> None:
    warnings.simplefilter("ignore", UserWarning)  # keep the output to the cases (the cache case re-enables its own)
    transformers_logging.set_verbosity_error()  # (its "longer than the maximum sequence length" note)
    transformers_logging.disable_progress_bar()
    try:
        run_cases(ROOT)
    finally:
        shutil.rmtree(ROOT, ignore_errors=True)


def run_cases(root: Path) -> None:
    model, sae = sw.organism()

    def steer(prompt: str = SHORT, **options: Any) -> Any:
        return sw.steer(model, sae, prompt, **{"features": {FEATURE: 4.0}, "max_new_tokens": 4, "progress": False, **options})

    def explain(**options: Any) -> Any:
        return sw.self_explain(model, sae, FEATURE, **{"scales": [4.0], "max_new_tokens": 3, "progress": False, **options})
    print(f"organism: {sae!r}; context {model._module.config.n_positions} positions")

    heading("1. Prompt or generation longer than the model's context; absurd max_new_tokens")
    show("sw.steer: prompt of 200 tokens", lambda: steer(LONG))
    show("sw.steer: max_new_tokens=200 on a 3-token prompt",
         lambda: steer(max_new_tokens=200))
    show("sw.steer: max_new_tokens=10**6", lambda: steer(max_new_tokens=10**6))
    show("sw.self_explain: a template of 200 tokens",
         lambda: explain(template=LONG + ' "X" means'))
    show("sw.self_explain: max_new_tokens=200", lambda: explain(max_new_tokens=200))
    show("sw.self_explain: max_new_tokens=10**6", lambda: explain(max_new_tokens=10**6))
    show("FeatureExplorer: explorer.prompt = a 200-token prompt", lambda: explorer_case(model, sae, "prompt", LONG))
    show("FeatureExplorer: explorer.max_new_tokens = 200", lambda: explorer_case(model, sae, "max_new_tokens", 200))
    show("FeatureExplorer: explorer.max_new_tokens = 10**6", lambda: explorer_case(model, sae, "max_new_tokens", 10**6))

    heading("2. Values that overflow: scales, directions, weights")
    show("sw.steer(features={3: 1e30})", lambda: steer(features={FEATURE: 1e30}))
    huge = torch.full((sae.d_in,), 1e38)
    show("sw.steer(directions=<a d_model vector of 1e38>)",
         lambda: steer(features=None, directions=huge))
    show("sw.steer(features=sw.Direction(<1e38 vector>))",
         lambda: steer(features=sw.Direction(huge, name="huge")))
    show("sw.self_explain(scales=[1e30])", lambda: explain(scales=[1e30]))
    show("engine: generate with an Edit of 1e30 (past the steering checks, inside the run)",
         lambda: generate(model, [Row(SHORT, (Edit(2, torch.full((sae.d_in,), 1e30)),))], Decoding(max_new_tokens=2)))
    print(f"    (that error is a {NonFiniteError.__module__}.NonFiniteError, a ValueError subclass)")
    nan_folder = write_organism_sae(sae, root / "nan-sae")
    weights = load_file(str(nan_folder / "sae_weights.safetensors"))
    weights["W_dec"][5, 7] = float("nan")
    save_file(weights, str(nan_folder / "sae_weights.safetensors"))
    show("sw.load_sae(<the organism's SAE saved with sw.save_sae, then W_dec[5, 7] set to NaN>)", lambda: sw.load_sae(nan_folder))

    def unchecked() -> str:
        loaded = sw.load_sae(nan_folder, check_finite=False)
        return f"no exception, loads as it is: {loaded!r}, with {int(torch.isnan(loaded.W_dec).sum())} NaN in W_dec"

    show("the documented skip: sw.load_sae(..., check_finite=False)", unchecked)

    heading("3. A damaged self-explanation cache entry")
    cache_dir = root / "cache"
    run = dict(scales=[0.0, 2.0, 4.0, 8.0], max_new_tokens=3, progress=False, cache_dir=cache_dir)
    fresh = sw.self_explain(model, sae, FEATURE, **run)
    (path,) = (cache_dir / "self_explain").iterdir()
    sound = path.read_text()
    print(f"(a sound entry written by sw.self_explain(..., cache_dir=...): {path.name})")

    def damaged(edit: Callable[[dict], Any]) -> str:
        entry = json.loads(sound)
        edit(entry)
        path.write_text(json.dumps(entry))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CacheEntryWarning)
            again = sw.self_explain(model, sae, FEATURE, **run)
        messages = [_tidy(w.message) for w in caught if issubclass(w.category, CacheEntryWarning)]
        same = again["explanation"].tolist() == fresh["explanation"].tolist()
        healed = json.loads(path.read_text()) == json.loads(sound)
        return (f"no exception, recovers: CacheEntryWarning {' | '.join(messages)}; recomputed (explanations as a fresh run: "
                f"{same}), the file rewritten with the sound entry: {healed}")

    show("entry missing self_similarity and generated",
         lambda: damaged(lambda e: [e.pop(k) for k in ("self_similarity", "generated")]))
    show("entry with edited scales (scales[2] = 5.0)", lambda: damaged(lambda e: e["scales"].__setitem__(2, 5.0)))
    show("entry with a NaN metric", lambda: damaged(lambda e: e["entropy"].__setitem__(1, float("nan"))))

    heading("4. cfg.json values of the wrong type (the organism's SAE, written by sw.save_sae, one key changed)")
    for i, (key, value) in enumerate([("apply_b_dec_to_input", "false"), ("d_in", 8.7), ("k", 3.7), ("d_sae", "abc"),
                                      ("d_in", [8]), ("architecture", ["topk"]), ("activation_fn_kwargs", "x")]):
        folder = with_cfg(sae, root / f"cfg{i}", key, value)
        show(f"cfg.json {key}: {json.dumps(value)}",
             lambda folder=folder: sw.load_sae(folder))

    heading("5. Seeds out of range")
    for seed in (2**64, -1):
        show(f"sw.steer(seed={seed}, temperature=1.0)",
             lambda seed=seed: steer(temperature=1.0, seed=seed))

    heading("6. An .npz whose member is a pickled object")
    arrays = {name: t.numpy() for name, t in sae.state_tensors().items()}
    marker = root / "PAYLOAD_RAN"
    object_npz = root / "object" / "params.npz"
    object_npz.parent.mkdir()
    np.savez(object_npz, **{**arrays, "W_enc": np.array([Payload(marker)], dtype=object)})  # numpy pickles it
    show("params.npz, W_enc an object array (np.savez pickles it into the .npy member)", lambda: sw.load_sae(object_npz))
    raw_npz = root / "raw" / "params.npz"
    raw_npz.parent.mkdir()
    np.savez(raw_npz, **{k: v for k, v in arrays.items() if k != "W_enc"})
    with zipfile.ZipFile(raw_npz, "a") as archive:
        archive.writestr("W_enc.npy", pickle.dumps(Payload(marker)))
    show("params.npz, member W_enc.npy holding raw pickle bytes", lambda: sw.load_sae(raw_npz))
    print(f"    payload ran: {marker.exists()}")


if __name__ == "__main__":
    main()
