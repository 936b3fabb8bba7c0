"""Importing never executes a pickle: a malicious one creates nothing, a whole pickled model is refused
with a sentence saying how to save a state dict instead, and a state dict alone asks for its architecture."""
from __future__ import annotations

import os
import pickle

import pytest
import torch
from torch import nn

from engine.importers import import_model
from engine.importers.fx_import import ImportRefused
from engine.importers.weights import load_state_dict


class _Payload:
    """Unpickling this runs ``os.system("touch <marker>")``: what a malicious model file does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _malicious(path, marker, how):
    if how == "pickle":
        with open(path, "wb") as f:
            pickle.dump({"weight": _Payload(marker)}, f)
    else:  # what torch.save writes: a zip with data.pkl inside
        torch.save({"weight": torch.zeros(2), "extra": _Payload(marker)}, path)


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_a_malicious_pickle_creates_nothing(tmp_path, how, suffix):
    marker = tmp_path / "pwned"
    path = tmp_path / f"model{suffix}"
    _malicious(path, marker, how)
    with pytest.raises(ImportRefused) as info:
        import_model(path)
    assert not marker.exists()
    assert "would run code when loaded" in str(info.value) and "system" in str(info.value)
    with pytest.raises(ImportRefused):
        load_state_dict(path)  # given as --weights: the same
    assert not marker.exists()
    # and the check really matters: unpickling the very same file would have run the payload
    with open(path, "rb") as f:
        if how == "pickle":
            pickle.load(f)
        else:
            torch.load(f, weights_only=False)
    assert marker.exists()


def test_a_whole_pickled_model_is_refused_with_how_to_save_weights(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), path)
    with pytest.raises(ImportRefused) as info:
        import_model(path)
    text = str(info.value)
    assert "whole pickled model" in text and "run code" in text
    assert "torch.save(model.state_dict()" in text and "--weights" in text


def test_a_state_dict_alone_asks_for_the_network(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(nn.Linear(2, 3).state_dict(), path)
    with pytest.raises(ImportRefused, match="holds weights .* but not the network.*--weights weights.pt"):
        import_model(path)
    assert set(load_state_dict(path)) == {"weight", "bias"}


def test_other_files_get_a_sentence(tmp_path):
    with pytest.raises(ImportRefused, match="no such file"):
        import_model(tmp_path / "missing.onnx")
    odd = tmp_path / "model.h5"
    odd.write_bytes(b"\x89HDF")
    with pytest.raises(ImportRefused, match="LayerLab imports .py, .onnx and .safetensors"):
        import_model(odd)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx at all")
    with pytest.raises(ImportRefused, match="not a valid ONNX model"):
        import_model(broken)


def test_a_pt_file_that_torch_did_not_write_gets_one_sentence(tmp_path):
    """`echo x > junk.pt` got torch's paragraph about weights_only, cut mid-word ('Re-running `torch.)."""
    junk = tmp_path / "junk.pt"
    junk.write_text("x\n")
    for call in (lambda: import_model(junk), lambda: load_state_dict(junk)):
        with pytest.raises(ImportRefused) as caught:
            call()
        assert str(caught.value) == "junk.pt is not a file torch.save wrote (it is neither a zip archive nor a pickle)."
    good = tmp_path / "good.pt"
    torch.save(nn.Linear(2, 2).state_dict(), good)
    raw = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(ImportRefused, match=r"^cut.pt looks like a zip archive but is damaged"):
        load_state_dict(tmp_path / "cut.pt")
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    (tmp_path / "legacy_cut.pt").write_bytes((tmp_path / "legacy.pt").read_bytes()[:40])
    with pytest.raises(ImportRefused) as caught:
        load_state_dict(tmp_path / "legacy_cut.pt")
    text = str(caught.value)
    assert text.startswith("legacy_cut.pt is damaged or is not a state dict: torch.load(weights_only=True) cannot "
                           "read it") and "weights_only` argument" not in text and "\n" not in text


def test_a_torchscript_file_is_named_for_what_it_is(tmp_path):
    """LayerLab's own TorchScript export was refused as 'a whole pickled model', with advice to save
    a state dict in 'the code that made it'."""
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(nn.Sequential(nn.Linear(3, 2), nn.ReLU())), str(path))
    with pytest.raises(ImportRefused, match="is a TorchScript file") as err:
        import_model(path)
    assert "state_dict" not in str(err.value) and "its ONNX or safetensors export" in str(err.value)
