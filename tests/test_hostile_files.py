"""Hostile files through the CLI, under an address-space limit: every one gives exit 2 and one
sentence, and none makes LayerLab allocate what the file claims.

The files are built here at test time (tests/hostile.py): decompression bombs of every container
kind (project bundles, npz, gzip IDX), headers that declare absurd sizes or lie about them, a PNG
whose tiny header declares 10^10 pixels, device files and FIFOs, malformed and garbage fields.
Each bomb inflates to ~4 GiB, more than the limit: a reader that followed the file instead of
checking it first would die of MemoryError (exit 1, an internal error) and fail the test.

Most cases run in one subprocess (tests/cli_batch.py: ``main.main(argv)`` per case, torch imported
once); a few run as their own ``python main.py ...`` process, the way a user runs them.
"""
from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests import hostile
from tests.hostile import BOMB_BYTES, GiB, MiB

ROOT = Path(__file__).resolve().parents[1]
#: the address-space limit of the subprocesses: what a small training run maps (~0.7 GiB here, with
#: torch; checked below) plus a margin of more than MIN_MARGIN, and far below a bomb's 4 GiB
AS_LIMIT = int(2.5 * GiB)
MIN_MARGIN = 768 * MiB


def limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))


def _write(path: Path, data) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, (dict, list)):
        data = json.dumps(data).encode()
    path.write_bytes(data)
    return str(path)


def _zip_member_bomb(name: str, prefix: bytes = b"") -> tuple[str, bytes, int, int]:
    return (name, hostile.deflate_zeros(BOMB_BYTES, prefix), BOMB_BYTES, 0)


def build_cases(d: Path) -> list[dict]:
    """(id, argv, words the sentence must contain, env) for every hostile file."""
    good_doc = json.dumps(hostile.starter_doc()).encode()
    out = str(d / "out")
    cases = []

    def train(case_id, path, *words, env=None, extra=()):
        cases.append({"id": case_id, "argv": ["train", path, "--epochs", "1", "--out", out, *extra],
                      "words": list(words), "env": env or {}})

    def train_data(case_id, data_spec, *words, env=None, files=None):
        for rel, content in (files or {}).items():
            _write(d / case_id / rel, content)
        train(case_id, _write(d / case_id / "project.json", hostile.project_with_data(data_spec)), *words, env=env)

    # ---- project bundles
    train("bundle-json-bomb", _write(d / "b1.layerlab", hostile.raw_zip([_zip_member_bomb("project.json")])),
          "bomb")
    train("bundle-weights-bomb", _write(d / "b2.layerlab", hostile.raw_zip([
        hostile.member("project.json", good_doc),
        _zip_member_bomb("weights.safetensors")])), "bomb")
    train("bundle-timeline-bomb", _write(d / "b3.layerlab", hostile.raw_zip([
        hostile.member("project.json", good_doc),
        _zip_member_bomb("timeline.safetensors")])), "bomb")
    # declares 1 KiB, inflates to 4 GiB: the reader must stop at what was declared
    lying = hostile.deflate_zeros(BOMB_BYTES, b"{")
    train("bundle-lying-size", _write(d / "b4.layerlab", hostile.raw_zip([("project.json", lying, 1024, 0)])),
          "corrupt")
    # declares 3 GiB of weights at a plausible ratio (2x: 1.5 GiB compressed) in a 70 KB file
    train("bundle-declared-huge", _write(d / "b5.layerlab", hostile.raw_zip([
        hostile.member("project.json", good_doc),
        ("weights.safetensors", bytes(64 * 1024), 3 * GiB, 0, 3 * GiB // 2)])), "memory")
    train("bundle-many-entries", _write(d / "b6.layerlab", hostile.raw_zip(
        [hostile.member("project.json", good_doc)], declared_entries=70_000)), "entries")

    # ---- npz
    shape = (BOMB_BYTES // 4096, 1024)
    train_data("npz-bomb", {"source": "npz", "path": "d.npz"}, "bomb", files={"d.npz": hostile.raw_zip([
        ("x.npy", hostile.deflate_zeros(BOMB_BYTES, hostile.npy_header(shape)), BOMB_BYTES, 0)])})
    header = hostile.npy_header((1_000_000, 1_000_000))
    train_data("npz-header-lies", {"source": "npz", "path": "d.npz"}, "lies", files={"d.npz": hostile.raw_zip([
        ("x.npy", hostile.deflated(header + bytes(4096)), len(header) + 4096, 0)])})
    # an honest 100 MiB array (not a bomb: under the bomb floor) against LAYERLAB_MAX_MEMORY=64M
    mid = (100 * MiB // 4 // 256, 256)
    train_data("npz-over-memory-limit", {"source": "npz", "path": "d.npz"}, "memory", "64.0 MiB",
               env={"LAYERLAB_MAX_MEMORY": "64M"}, files={"d.npz": hostile.raw_zip([
                   ("x.npy", hostile.deflate_zeros(100 * MiB, hostile.npy_header(mid)), 100 * MiB, 0)])})
    obj = hostile.npy_header((2,), "|O")
    train_data("npz-object-array", {"source": "npz", "path": "d.npz"}, "python objects", files={
        "d.npz": hostile.raw_zip([hostile.member("x.npy", obj + bytes(16))])})

    # ---- IDX
    dims = (BOMB_BYTES // (512 * 512), 512, 512)
    labels = hostile.idx_header((10,)) + bytes(range(10))
    train_data("idx-gzip-bomb", {"source": "idx", "images": "i.gz", "labels": "l"}, "bomb",
               files={"i.gz": hostile.gzip_of_zeros(BOMB_BYTES, hostile.idx_header(dims)), "l": labels})
    small = hostile.idx_header((10, 4, 4))
    train_data("idx-gzip-inflates-past-header", {"source": "idx", "images": "i.gz", "labels": "l"},
               "more bytes than its header",
               files={"i.gz": hostile.gzip_of_zeros(BOMB_BYTES // 16, small), "l": labels})
    train_data("idx-header-huge", {"source": "idx", "images": "i", "labels": "l"}, "truncated",
               files={"i": hostile.idx_header((60000, 4096, 4096)) + bytes(100), "l": labels})
    train_data("idx-255-dims", {"source": "idx", "images": "i", "labels": "l"}, "truncated",
               files={"i": bytes([0, 0, 8, 255]) + struct.pack(">255I", *([65535] * 255)), "l": labels})

    # ---- image folders
    png = hostile.png_header_only(100_000, 100_000)
    small_png = hostile.png_header_only(8, 8)
    train_data("png-huge-header", {"source": "image_folder", "path": "imgs", "size": [8, 8]}, "pixels",
               files={"imgs/a/1.png": png, "imgs/b/1.png": small_png})
    train_data("image-folder-4096", {"source": "image_folder", "path": "imgs", "size": [4096, 4096]}, "memory",
               files={**{f"imgs/a/{i}.png": small_png for i in range(10)},
                      **{f"imgs/b/{i}.png": small_png for i in range(10)}})

    # ---- CSV
    train_data("csv-over-size-limit", {"source": "csv", "path": "t.csv", "target": "y"}, "more than",
               env={"LAYERLAB_MAX_MEMORY": "64M"}, files={"t.csv": b"x,y\n" + b"1,2\n" * (1 << 20)})
    train_data("csv-too-many-columns", {"source": "csv", "path": "t.csv"}, "columns",
               files={"t.csv": b",".join([b"1"] * 200_001) + b"\n"})
    train_data("csv-huge-cell", {"source": "csv", "path": "t.csv"}, "field", files={
        "t.csv": b"x,y\n" + b"1," + b"9" * 500_000 + b"\n2,3\n"})
    secret = "root:x:0:0:SECRET-LINE-CONTENT-THAT-MUST-NOT-BE-ECHOED-BACK-IN-FULL:/root:/bin/bash"
    train_data("csv-content-not-echoed", {"source": "csv", "path": "passwd", "target": "nope"}, "no column",
               files={"passwd": (secret + "\n" + secret + "\n").encode()})

    # ---- device files, FIFOs, folders
    fifo = d / "fifo.layerlab"
    os.mkfifo(fifo)
    train("project-is-fifo", str(fifo), "named pipe")
    train("project-is-dev-zero", "/dev/zero", "device")
    train_data("csv-is-dev-zero", {"source": "csv", "path": "/dev/zero"}, "device")
    train_data("idx-is-dev-urandom", {"source": "idx", "images": "/dev/urandom", "labels": "/dev/zero"}, "device")
    data_fifo = d / "fifo.csv"
    os.mkfifo(data_fifo)
    train_data("csv-is-fifo", {"source": "csv", "path": str(data_fifo)}, "named pipe")
    train_data("npz-is-folder", {"source": "npz", "path": "."}, "folder")

    # ---- malformed fields and lying metadata
    def mutated(case_id, *words, **changes):
        doc = hostile.starter_doc()
        for key, value in changes.items():
            if "." in key:
                outer, inner = key.split(".")
                doc[outer] = {**doc[outer], inner: value}
            else:
                doc[key] = value
        train(case_id, _write(d / f"{case_id}.json", doc), *words)

    mutated("history-garbage", "history", history="garbage")
    mutated("history-rows-garbage", "history", history=[{"epoch": {"nested": 1}}])
    mutated("normalization-garbage", "normalization", normalization={"mean": "x"})
    mutated("normalization-negative-std", "normalization", normalization={"mean": [0, 0], "std": [-1, 1]})
    mutated("run-garbage", "run", run=[1, 2], version=2)
    mutated("data-unknown-key", "n_sampels", **{"data.n_sampels": 100})
    mutated("data-unknown-source", "source", data={"source": "../../etc/passwd"})
    mutated("unknown-field", "checkpoint", checkpoint_dir="/tmp")
    mutated("seed-1e23", "seed", **{"training.seed": 10**23})
    mutated("seed-400-digits", "seed", **{"training.seed": int("9" * 400)})
    mutated("batch-1e30", "batch_size", **{"training.batch_size": 10**30})
    mutated("threads-3000", "num_threads", **{"training.num_threads": 3000})
    mutated("lr-negative", "lr", **{"training.lr": -1})
    mutated("name-not-text", "name", name=["x"])
    deep = b'{"format": "layerlab.project", "version": 2, "graph": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    train("json-deeply-nested", _write(d / "deep.json", deep), "deep")
    train("json-5000-digits", _write(d / "digits.json", b'{"format": "layerlab.project", "version": 2, "x": '
                                     + b"9" * 5000 + b"}"), "digits")
    doc = hostile.starter_doc()
    for node in doc["graph"]["nodes"]:
        if node["type"] == "Linear" and node["params"].get("units") != "auto":
            node["params"]["units"] = 1_000_000
    train("graph-linear-1e6-x-1e6", _write(d / "wide.json", doc), "memory", "parameters")
    cases.append({"id": "device-cuda-without-gpu", "argv": ["train", "--device", "cuda", "--epochs", "1",
                                                            "--out", out], "words": ["cuda"], "env": {}})
    return cases


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    cases = build_cases(d)
    control = {"id": "control-small-run", "argv": ["train", "--epochs", "1", "--out", str(d / "ok")],
               "words": [], "env": {}}
    cases_path, results_path = d / "cases.json", d / "results.json"
    cases = [control] + cases  # first: what ordinary work needs under the limit
    cases_path.write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAYERLAB_LOG_DIR": str(d / "logs")}
    env.pop("LAYERLAB_MAX_MEMORY", None)
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "cli_batch.py"), str(cases_path), str(results_path)],
                          preexec_fn=limit_address_space, capture_output=True, text=True, env=env, timeout=600)
    done = json.loads(results_path.read_text())["results"] if results_path.exists() else []
    assert proc.returncode == 0 and len(done) == len(cases), (
        f"the batch died (status {proc.returncode}) at case "
        f"{cases[len(done)]['id'] if len(done) < len(cases) else '?'}: {proc.stderr[-2000:]}")
    return {c["id"]: (c, r) for c, r in zip(cases, done)}, done[0]["vm_peak_after"], d


def _case_ids():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return [c["id"] for c in build_cases(Path(d))]


def assert_one_sentence(result: dict, words, what: str) -> str:
    assert result["rc"] == 2, f"{what}: exit {result['rc']}: {result['stderr'][-1500:]}"
    lines = result["stderr"].strip().splitlines()
    assert len(lines) == 1, f"{what}: expected one stderr line, got {result['stderr']!r}"
    line = lines[0]
    assert "Traceback" not in line and line.startswith("error: ")
    for w in words:
        assert w.lower() in line.lower(), f"{what}: {w!r} not in {line!r}"
    return line


@pytest.mark.parametrize("case_id", _case_ids())
def test_hostile_file_gives_exit_2_and_one_sentence(batch, case_id):
    cases, _baseline, _d = batch
    case, result = cases[case_id]
    if case_id == "device-cuda-without-gpu":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a CUDA GPU, so --device cuda is valid here")
    line = assert_one_sentence(result, case["words"], case_id)
    assert "SECRET-LINE-CONTENT-THAT-MUST-NOT-BE-ECHOED" not in line  # a few characters at most
    assert len(line) < 700


def test_the_limit_leaves_a_real_margin_and_a_normal_run_fits_under_it(batch):
    cases, normal_peak, d = batch
    # a small training run (torch, the engine, a model, a bundle saved) peaks well below the limit
    assert 256 * MiB < normal_peak < AS_LIMIT - MIN_MARGIN, f"a small run maps {normal_peak / GiB:.2f} GiB"
    assert AS_LIMIT < hostile.BOMB_BYTES
    _case, result = cases["control-small-run"]
    assert result["rc"] == 0, result["stderr"]
    assert (d / "ok" / "model.layerlab").is_file()
    assert not (d / "out").exists()  # no hostile case wrote an output folder


def test_a_bundle_bomb_and_a_fifo_as_their_own_processes(batch):
    """The same refusals when each is a real ``python main.py`` process under the limit."""
    _cases, _baseline, d = batch
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAYERLAB_LOG_DIR": str(d / "logs")}
    for argv, word in ((["train", str(d / "b1.layerlab")], "bomb"), (["train", "--data", str(d / "fifo.csv")], "pipe")):
        proc = subprocess.run([sys.executable, str(ROOT / "main.py"), *argv, "--out", str(d / "out")],
                              preexec_fn=limit_address_space, capture_output=True, text=True, env=env, timeout=120)
        assert_one_sentence({"rc": proc.returncode, "stderr": proc.stderr}, [word], " ".join(argv))


def test_a_bomb_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    """In-process: the zip member is never opened, so nothing is inflated at all."""
    import zipfile

    from engine.errors import LimitExceeded
    from engine.project import load_project

    path = tmp_path / "bomb.layerlab"
    path.write_bytes(hostile.raw_zip([_zip_member_bomb("project.json")]))
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: opened.append(a) or real_open(self, *a, **k))
    with pytest.raises(LimitExceeded, match="bomb"):
        load_project(path)
    assert opened == []


def test_npz_header_is_read_but_its_data_is_not(tmp_path):
    """An npz whose .npy header declares 4 TB in a tiny member: refused from the header (in-process,
    where a 4 TB allocation would only give a vaguer out-of-memory sentence)."""
    from engine.data import load_dataset
    from engine.errors import DataError

    header = hostile.npy_header((1_000_000, 1_000_000))
    path = tmp_path / "big.npz"
    path.write_bytes(hostile.raw_zip([hostile.member("x.npy", header + bytes(64)),
                                      hostile.member("y.npy", hostile.npy_header((2,), "<i8") + bytes(16))]))
    with pytest.raises(DataError, match="declares 1000000 x 1000000 values of float32"):
        load_dataset({"source": "npz", "path": str(path)})
