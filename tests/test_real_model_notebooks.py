"""The GPT-2 and Gemma notebooks run as written, cell for cell, offline.

The hub is out of reach in tests, so the Hugging Face cache (a fresh HF_HOME) holds tiny
random stand-ins under the notebooks' own ids: a 12-block GPT-2 as openai-community/gpt2,
a 26-block Gemma-2 as google/gemma-2-2b, a SAELens-format SAE in
jbloom/GPT2-Small-SAEs-Reformatted and a Gemma Scope params.npz in
google/gemma-scope-2b-pt-res, laid out as huggingface_hub lays them. With HF_HUB_OFFLINE=1
every loading line of the notebooks (sw.load_model on hub ids, SAELens's release=/sae_id=,
hf_hub_download, device_map="auto") runs through the real libraries and that cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_models import tiny_hf_model

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
D_IN, D_SAE = 32, 64


def snapshot(home: Path, repo: str) -> Path:
    """The snapshot folder of ``repo`` at COMMIT, with refs/main pointing at it."""
    folder = home / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    (folder / "snapshots" / COMMIT).mkdir(parents=True, exist_ok=True)
    return folder / "snapshots" / COMMIT


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    home = tmp_path_factory.mktemp("hf_home")
    for repo, family, n_layers in (("openai-community/gpt2", "gpt2", 12), ("google/gemma-2-2b", "gemma2", 26)):
        model, tokenizer = tiny_hf_model(family, n_layers=n_layers)
        model.save_pretrained(snapshot(home, repo))
        tokenizer.save_pretrained(snapshot(home, repo))
    decoder = torch.randn(D_SAE, D_IN, generator=torch.Generator().manual_seed(0))
    decoder /= decoder.norm(dim=1, keepdim=True)
    jb = snapshot(home, "jbloom/GPT2-Small-SAEs-Reformatted") / "blocks.8.hook_resid_pre"
    jb.mkdir()
    save_file({"W_enc": decoder.T.contiguous(), "W_dec": decoder, "b_enc": torch.zeros(D_SAE), "b_dec": torch.zeros(D_IN)},
              str(jb / "sae_weights.safetensors"))
    (jb / "cfg.json").write_text(json.dumps({  # the pre-6.0 SAELens config that repository has
        "model_name": "gpt2-small", "hook_point": "blocks.8.hook_resid_pre", "hook_point_layer": 8,
        "hook_point_head_index": None, "d_in": D_IN, "d_sae": D_SAE, "dtype": "torch.float32", "device": "cpu",
        "context_size": 128, "normalize_activations": False,
    }))
    scope = snapshot(home, "google/gemma-scope-2b-pt-res") / "layer_12" / "width_16k" / "average_l0_82"
    scope.mkdir(parents=True)
    np.savez(scope / "params.npz", W_enc=decoder.T.numpy(), W_dec=decoder.numpy(), b_enc=np.zeros(D_SAE, np.float32),
             b_dec=np.zeros(D_IN, np.float32), threshold=np.full(D_SAE, 0.1, np.float32))
    return home


def run_notebook(name: str, hf_home: Path, tmp_path: Path, monkeypatch) -> list[dict]:
    import nbformat
    from nbclient import NotebookClient

    for key in ("HF_ENDPOINT", "HF_TOKEN", "TRANSFORMERS_OFFLINE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_CACHE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout's package
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]


def check_outputs(outputs: list[dict], out_dir: Path) -> None:
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "baseline:" in printed and "steered:" in printed and "chosen explanations:" in printed
    assert [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    for suffix in ("html", "png", "svg"):
        assert list(out_dir.glob(f"*.{suffix}")), suffix
    assert (out_dir / "gallery.html").stat().st_size > 100_000


def test_gpt2_notebook_runs_as_written(hf_home, tmp_path, monkeypatch):
    pytest.importorskip("sae_lens", reason="the notebook loads its SAE with release=: pip install 'saewidgets[saelens]'")
    outputs = run_notebook("gpt2_small_res_jb.ipynb", hf_home, tmp_path, monkeypatch)
    check_outputs(outputs, tmp_path / "gpt2_exports")
    shown = "".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert f"SAE(standard, d_in={D_IN}, d_sae={D_SAE}, hook='blocks.8.hook_resid_pre')" in shown


def test_gemma_notebook_runs_as_written(hf_home, tmp_path, monkeypatch):
    pytest.importorskip("accelerate", reason="the notebook uses device_map='auto': pip install 'saewidgets[accelerate]'")
    outputs = run_notebook("gemma2_2b_gemma_scope.ipynb", hf_home, tmp_path, monkeypatch)
    check_outputs(outputs, tmp_path / "gemma_exports")
    shown = "".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert f"SAE(jumprelu, d_in={D_IN}, d_sae={D_SAE}, hook='blocks.12.hook_resid_post')" in shown


def test_notebooks_state_their_install_line_first():
    for name, line, login in (
        ("gpt2_small_res_jb.ipynb", 'pip install "saewidgets[saelens]"', False),
        ("gemma2_2b_gemma_scope.ipynb", 'pip install "saewidgets[accelerate]"', True),
    ):
        first = "".join(json.loads((ROOT / "notebooks" / name).read_text())["cells"][0]["source"])
        assert line in first, name
        assert ("hf auth login" in first) == login and "huggingface-cli" not in first, name
