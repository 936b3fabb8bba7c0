"""A headless run's outputs survive interruption and bad output folders (issue 13, the run side):
Ctrl-C keeps the epochs done so far, an unwritable or full folder is refused before training, a
kill during a save never leaves a mixed model/metrics pair, and files stay where they belong."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.atomic import write_folder_atomically
from engine.project import load_project, load_starter, save_project
from engine.run import OutputNotWritable, check_output_folder, metrics_csv_bytes

REPO = Path(__file__).resolve().parents[1]
MAIN = str(REPO / "main.py")


def test_ctrl_c_during_a_long_run_keeps_a_loadable_bundle_of_the_epochs_done(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, MAIN, "train", "--epochs", "100000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until a few epochs are done
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("epoch 5/"):
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Interrupted after" in stderr and "Traceback" not in stderr
    project = load_project(out / "model.layerlab")
    n = len(project.history)
    assert n >= 5 and project.run["outcome"] == "interrupted" and project.weights
    assert [r["epoch"] for r in project.history] == list(range(1, n + 1))
    assert (out / "metrics.csv").read_bytes() == metrics_csv_bytes(project.history)
    assert max(project.checkpoints) == n


def test_an_unwritable_output_folder_is_refused_before_training(tmp_path):
    proc = subprocess.run([sys.executable, MAIN, "train", "--epochs", "2", "--out", "/proc/layerlab-run"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot write" in proc.stderr
    assert "epoch 1/" not in proc.stdout  # refused before any training
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    with pytest.raises(OutputNotWritable, match="not a folder"):
        check_output_folder(a_file, 1000)


def test_a_full_disk_is_refused_before_training(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 3 << 20))
    with pytest.raises(OutputNotWritable, match=r"has 3\.0 MB free, but saving this run needs about 21\.0 MB"):
        check_output_folder(tmp_path / "out", 10 << 20)


_SAVER = textwrap.dedent("""
    import sys, itertools
    sys.path.insert(0, {repo!r})
    from engine.project import load_starter
    from engine.run import save_run_outputs
    project = load_starter()
    print("ready", flush=True)
    for i in itertools.count():
        rows = [{{"epoch": e, "train_loss": float(i)}} for e in range(1, 2 + i % 7)]
        project.history = rows
        save_run_outputs({out!r}, project, rows)
""")


def test_a_kill_during_a_save_never_leaves_a_mixed_pair(tmp_path):
    out = tmp_path / "run"
    rng = random.Random(0)
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER.format(repo=str(REPO), out=str(out))],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.kill()
        proc.wait()
        if (out / "model.layerlab").exists():
            project = load_project(out / "model.layerlab")
            assert (out / "metrics.csv").read_bytes() == metrics_csv_bytes(project.history)  # the same save
    # what the killed saves left beside the folder goes with the next save
    write_folder_atomically(out, lambda folder: (folder / "metrics.csv").write_text("epoch\n"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]


def test_a_save_keeps_other_files_and_their_modes(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "metrics.csv").write_text("old")
    os.chmod(out / "metrics.csv", 0o640)
    write_folder_atomically(out, lambda folder: (folder / "metrics.csv").write_text("new"))
    assert (out / "notes.txt").read_text() == "mine" and (out / "metrics.csv").read_text() == "new"
    assert (os.stat(out / "metrics.csv").st_mode & 0o777) == 0o640


def test_a_project_cannot_send_checkpoints_outside_the_output_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    project = load_starter()
    project.training = {**project.training, "version": 1, "checkpoint_every_epoch": True,
                        "checkpoint_dir": str(elsewhere), "epochs": 2}
    path = tmp_path / "p.json"
    save_project(path, project)
    proc = subprocess.run([sys.executable, MAIN, "train", str(path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert not elsewhere.exists()
    assert (tmp_path / "out" / "checkpoints" / "epoch_0002.json").exists()
    assert not list((tmp_path / "out").rglob("*.pt"))  # optimiser state is safetensors, not a pickle
    meta = json.loads((tmp_path / "out" / "checkpoints" / "epoch_0002.json").read_text())
    assert meta["optimizer_state"].endswith(".safetensors")


def test_stored_weights_of_another_type_are_refused(tmp_path):
    import torch

    from engine.run import WeightsMismatch, prepare_run

    project = load_starter()
    prepared = prepare_run(project)
    project.weights = {k: v.to(torch.float16) if v.is_floating_point() else v
                       for k, v in prepared.compiled.module.state_dict().items()}
    with pytest.raises(WeightsMismatch, match="is float16, but the graph needs float32"):
        prepare_run(project)
