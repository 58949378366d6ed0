"""Loaders never run a pickle: crafted files are refused, nothing they carry gets executed."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

import saewidgets as sw
from tiny_models import tiny_hf_model


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "a crafted file's payload was executed"


def evil_state(marker):
    return {"W_enc": Payload(marker), "W_dec": torch.zeros(4, 8)}


def test_the_payload_is_live(tmp_path):
    """Control: the same bytes do run code when unpickled naively, so the tests below bite."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("name", ["sae.pt", "sae.pth", "sae.bin"])
def test_torch_zip_file_with_code_is_refused(tmp_path, marker, name):
    torch.save(evil_state(marker), tmp_path / name)
    with pytest.raises(ValueError, match="refusing to load .*never unpickles"):
        sw.load_sae(tmp_path / name)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_plain_pickle_named_pt_is_refused(tmp_path, marker):
    (tmp_path / "sae.pt").write_bytes(pickle.dumps(evil_state(marker)))
    with pytest.raises(ValueError, match="refusing to load"):
        sw.load_sae(tmp_path / "sae.pt")


def test_saelens_directory_with_pickled_weights_is_refused(tmp_path, marker):
    torch.save(evil_state(marker), tmp_path / "sae_weights.pt")
    (tmp_path / "cfg.json").write_text(json.dumps({"hook_name": "blocks.0.hook_resid_pre"}))
    with pytest.raises(ValueError, match="refusing to load"):
        sw.load_sae(tmp_path)


def test_npz_with_object_array_is_refused(tmp_path, marker):
    directory = tmp_path / "layer_3" / "width_16k"
    directory.mkdir(parents=True)
    np.savez(directory / "params.npz", W_enc=np.array([Payload(marker)], dtype=object), W_dec=np.zeros((4, 8)))
    with pytest.raises(ValueError, match="refusing to load .*pickled objects.*never unpickles"):
        sw.load_sae(directory)


def test_npz_member_that_is_a_raw_pickle_is_refused(tmp_path, marker):
    """A zip member that is not .npy data (numpy hands back its bytes): named, never unpickled."""
    import zipfile

    path = tmp_path / "params.npz"
    np.savez(path, W_dec=np.zeros((4, 8), np.float32))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("W_enc.npy", pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError, match=r"refusing to load .*params\.npz: member 'W_enc' is a pickle .*never unpickles"):
        sw.load_sae(path)


def test_pickle_named_npz_is_refused(tmp_path, marker):
    (tmp_path / "params.npz").write_bytes(pickle.dumps(evil_state(marker)))
    with pytest.raises(ValueError, match="refusing to load"):
        sw.load_sae(tmp_path / "params.npz")


def test_pickle_named_safetensors_is_refused(tmp_path, marker):
    (tmp_path / "sae_weights.safetensors").write_bytes(pickle.dumps(evil_state(marker)))
    (tmp_path / "cfg.json").write_text("{}")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        sw.load_sae(tmp_path)


@pytest.mark.parametrize("name", ["sae.pkl", "sae.pickle"])
def test_pickle_files_are_refused_unread(tmp_path, marker, name):
    (tmp_path / name).write_bytes(pickle.dumps(evil_state(marker)))
    with pytest.raises(ValueError, match="pickle files can run code"):
        sw.load_sae(tmp_path / name)


def test_directory_holding_only_a_pickle_has_no_weights(tmp_path, marker):
    (tmp_path / "sae.pkl").write_bytes(pickle.dumps(evil_state(marker)))
    with pytest.raises(FileNotFoundError, match="no SAE weights"):
        sw.load_sae(tmp_path)


def test_plain_tensor_pt_still_loads(tmp_path):
    """weights_only .pt files of plain tensors stay usable."""
    state = {"W_enc": torch.randn(8, 4), "W_dec": torch.randn(4, 8)}
    torch.save(state, tmp_path / "sae.pt")
    sae = sw.load_sae(tmp_path / "sae.pt", hook="blocks.0.hook_resid_pre")
    assert torch.equal(sae.W_enc, state["W_enc"]) and sae.d_sae == 4


def test_pt_refused_on_torch_without_a_safe_loader(tmp_path, monkeypatch):
    torch.save({"W_enc": torch.randn(8, 4), "W_dec": torch.randn(4, 8)}, tmp_path / "sae.pt")
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    with pytest.raises(ValueError, match="cannot load .pt files safely.*upgrade torch"):
        sw.load_sae(tmp_path / "sae.pt")


def test_model_directory_with_pickled_code_is_refused(tmp_path, marker):
    hf, tok = tiny_hf_model("gpt2")
    hf.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    state = dict(hf.state_dict())
    state["lm_head.weight"] = Payload(marker)
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="refusing to load .*could run code.*safetensors"):
        sw.load_model(tmp_path)
