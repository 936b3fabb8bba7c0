"""The resource policy (engine/limits.py, engine/safezip.py) and the graph's own memory check, in-process."""
from __future__ import annotations

import io
import os
import threading
import zipfile

import pytest
import torch

from engine import limits
from engine.errors import DataError, LimitExceeded, ProjectFileError
from engine.limits import fmt_bytes, memory_limit, parse_size
from engine.safezip import count_entries, open_zip, read_member
from tests import hostile
from tests.hostile import GiB, MiB


# ----------------------------------------------------------------------------- the limit
@pytest.mark.parametrize("text, value", [("2G", 2 * GiB), ("2GiB", 2 * GiB), ("512m", 512 * MiB), ("1.5g", int(1.5 * GiB)),
                                         ("1000000", 1_000_000), ("64 MB", 64 * MiB), ("3t", 3 << 40)])
def test_sizes_parse_like_ulimit(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "lots", "-1G", "2X", "0", "1e9"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_figures_read_as_a_person_writes_them():
    assert fmt_bytes(900) == "900 bytes"
    assert fmt_bytes(64 * MiB) == "64.0 MiB"
    assert fmt_bytes(4 * 10**12) == "3.6 TiB"
    assert fmt_bytes(10**400) == "about 10^400 bytes"  # what a lying header declares, without overflow


def test_the_limit_is_half_the_free_memory_or_the_users_setting(monkeypatch):
    monkeypatch.delenv(limits.ENV_MAX_MEMORY, raising=False)
    free = limits.available_memory()
    assert free is not None and free > 0
    assert memory_limit() == max(limits.MEMORY_FLOOR, free // 2) or abs(memory_limit() - free // 2) < 64 * MiB
    monkeypatch.setenv(limits.ENV_MAX_MEMORY, "300M")
    assert memory_limit() == 300 * MiB
    with pytest.raises(LimitExceeded, match=r"400 MiB of memory, more than LayerLab's limit of 300 MiB \(LAYERLAB_MAX"):
        limits.check_memory(400 * MiB, "this thing")
    limits.check_memory(200 * MiB, "this thing")  # under the limit: nothing happens
    monkeypatch.setenv(limits.ENV_MAX_MEMORY, "plenty")
    with pytest.raises(limits.SettingError, match="LAYERLAB_MAX_MEMORY.*not a size"):
        memory_limit()


def test_the_bomb_rule_needs_both_the_ratio_and_the_size():
    assert limits.is_bomb(300 * MiB, MiB)  # 300x and over the floor
    assert not limits.is_bomb(300 * MiB, 10 * MiB)  # 30x: real data can do that
    assert not limits.is_bomb(100 * MiB, 1024)  # 100,000x but small: a blank image set, not a threat
    with pytest.raises(LimitExceeded, match="bomb"):
        limits.check_inflation(4 * GiB, 4 * MiB, "x")


# ----------------------------------------------------------------------------- regular files only
def test_fifos_devices_and_folders_are_refused_without_opening_them(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    outcome = {}

    def attempt():
        try:
            limits.open_regular(fifo)
        except DataError as err:
            outcome["err"] = str(err)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "opening a FIFO blocked"
    assert "named pipe" in outcome["err"]
    for path, word in (("/dev/zero", "device"), (str(tmp_path), "folder"), (str(tmp_path / "nope"), "no such file")):
        with pytest.raises(DataError, match=word):
            limits.open_regular(path)
    (tmp_path / "ok.txt").write_bytes(b"hello")
    with limits.open_regular(tmp_path / "ok.txt") as f:
        assert f.read() == b"hello"


def test_read_regular_refuses_a_file_over_its_limit_before_reading(tmp_path):
    (tmp_path / "big").write_bytes(bytes(5000))
    assert len(limits.read_regular(tmp_path / "big", 5000)) == 5000
    with pytest.raises(LimitExceeded, match="4.9 KiB, more than the 4.0 KiB"):
        limits.read_regular(tmp_path / "big", 4096)


# ----------------------------------------------------------------------------- the safe zip reader
def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_read_member_returns_what_zipfile_reads(tmp_path):
    data = os.urandom(3 * MiB) + bytes(MiB)
    path = tmp_path / "a.zip"
    path.write_bytes(_zip({"a.bin": data, "b.txt": b"hi"}))
    with open_zip(path) as z:
        assert read_member(z, "a.bin") == data
        assert read_member(z, "b.txt") == b"hi"
        with pytest.raises(LimitExceeded, match="more than the 1.0 MiB LayerLab reads for it"):
            read_member(z, "a.bin", limit=MiB)
        with pytest.raises(ProjectFileError, match="no member"):
            read_member(z, "c")


def test_a_member_that_lies_about_its_size_is_stopped_at_the_declared_size(tmp_path):
    path = tmp_path / "lie.zip"
    path.write_bytes(hostile.raw_zip([("x", hostile.deflate_zeros(64 * MiB), 1000, 0)]))
    with open_zip(path, error=DataError) as z:
        with pytest.raises(DataError, match="corrupt"):
            read_member(z, "x", error=DataError)


def test_entry_counts_are_read_from_the_end_record(tmp_path):
    honest = _zip({f"m{i}": b"x" for i in range(12)})
    assert count_entries(io.BytesIO(honest)) == 12
    path = tmp_path / "many.zip"
    path.write_bytes(hostile.raw_zip([hostile.member("a", b"x")], declared_entries=50_000))
    with pytest.raises(LimitExceeded, match="50,000 entries"):
        open_zip(path)
    path.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ProjectFileError, match="corrupt"):
        open_zip(path)


# ----------------------------------------------------------------------------- the graph
def _wide_graph(units: int):
    from engine.templates import mlp

    g = mlp()
    first = next(n for n in g.nodes if n.type == "Linear")
    g.set_param(first.id, "units", units)
    return g


def test_a_model_too_big_is_refused_from_its_shapes_before_any_tensor_exists(monkeypatch):
    from engine.compile import compile_graph
    from engine.spec import InferContext

    monkeypatch.delenv(limits.ENV_MAX_MEMORY, raising=False)
    built = []
    monkeypatch.setattr(torch.nn.Linear, "reset_parameters", lambda self: built.append(self))
    ctx = InferContext((1_000_000,), 2, "classification")
    with pytest.raises(LimitExceeded, match=r"The model \(1,000,0\d\d,\d{3},\d{3} parameters, most of them in Linear 'fc1'\) would "
                                            r"need 3\.6 TiB of memory, more than LayerLab's limit of"):
        compile_graph(_wide_graph(1_000_000), ctx)
    assert built == []  # refused before a single layer was built
    # the same check lets a model through that fits the limit the user sets
    monkeypatch.setenv(limits.ENV_MAX_MEMORY, "16M")
    small = InferContext((1000,), 2, "classification")
    with pytest.raises(LimitExceeded, match="16.0 MiB"):
        compile_graph(_wide_graph(5000), small)  # 5 M parameters = 20 MB
    monkeypatch.setenv(limits.ENV_MAX_MEMORY, "64M")
    assert compile_graph(_wide_graph(5000), small).analysis.total_params > 5_000_000


def test_training_memory_counts_optimiser_state_and_batch_activations(monkeypatch):
    from engine.compile import check_training_memory
    from engine.spec import InferContext
    from engine.validate import analyze

    g = _wide_graph(5000)
    analysis = analyze(g, InferContext((1000,), 2, "classification"))
    monkeypatch.setenv(limits.ENV_MAX_MEMORY, "64M")
    with pytest.raises(LimitExceeded, match="batches of 32"):
        check_training_memory(g, analysis, 32)  # 4 copies of 20 MB of weights
    monkeypatch.setenv(limits.ENV_MAX_MEMORY, "200M")
    check_training_memory(g, analysis, 32)
    with pytest.raises(LimitExceeded, match="smaller batch size"):
        check_training_memory(g, analysis, 1_000_000)  # 5,000 activations x 4 bytes x 3 per sample
