"""``main.py export`` and ``main.py import``: what a user types, what comes back (exit codes, one sentence)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import run_cli
from engine.project import load_project, save_project

ROOT = Path(__file__).resolve().parents[1]


def run_main(*args, cwd=None):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=600)


def one_line_error(capsys, code, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    for w in words:
        assert w.lower() in err[0].lower(), err[0]
    return err[0]


@pytest.fixture(scope="module")
def trained_bundle(exports, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "mlp.layerlab"
    project = exports.copy("model:mlp")
    project.checkpoints = {1: project.weights}
    save_project(path, project)
    return path


def test_export_a_package_and_import_it_back_as_a_user_would(trained_bundle, tmp_path):
    proc = run_main("export", trained_bundle, "--format", "python", "--out", tmp_path / "pkg.zip", "--epoch", "1")
    assert proc.returncode == 0, proc.stderr
    assert "Exported python to" in proc.stdout and "max abs difference 0" in proc.stdout
    proc = run_main("import", tmp_path / "pkg.zip", "--out", tmp_path / "back.layerlab")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("note: Importing a .py file runs it; only import files you trust.")
    assert "Saved" in proc.stdout
    back = load_project(tmp_path / "back.layerlab")
    assert [n.type for n in back.graph.nodes] == [n.type for n in load_project(trained_bundle).graph.nodes]


def test_export_onnx_prints_the_verification(trained_bundle, tmp_path, capsys):
    assert run_cli(["export", str(trained_bundle), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "Verified with onnxruntime on 8 real samples: max abs difference" in out
    assert (tmp_path / "m.onnx").exists() and not (tmp_path / "m.onnx.data").exists()


@pytest.mark.parametrize("fmt, name", [("onnx", "m.onnx"), ("pt2", "m.pt2"), ("safetensors", "m.safetensors")])
def test_an_export_gets_the_mode_a_plain_write_gives_and_keeps_a_replaced_files_mode(trained_bundle, tmp_path,
                                                                                    capsys, fmt, name):
    """Exports came out readable by their owner only (mkstemp's 0600), unlike every other file."""
    import os

    old = os.umask(0o022)
    try:
        assert run_cli(["export", str(trained_bundle), "--format", fmt, "--out", str(tmp_path / name)]) == 0
        assert (os.stat(tmp_path / name).st_mode & 0o777) == 0o644
        os.chmod(tmp_path / name, 0o640)
        assert run_cli(["export", str(trained_bundle), "--format", fmt, "--out", str(tmp_path / name)]) == 0
        assert (os.stat(tmp_path / name).st_mode & 0o777) == 0o640
    finally:
        os.umask(old)
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp file left beside it


def test_export_bad_input_is_one_sentence(trained_bundle, tmp_path, capsys):
    code = run_cli(["export", str(trained_bundle), "--format", "onnx", "--out", str(tmp_path / "x.onnx"),
                    "--epoch", "7"])
    one_line_error(capsys, code, "no weights for epoch 7", "kept: 1")
    code = run_cli(["export", "moons-mlp", "--format", "pt2", "--out", str(tmp_path / "x.pt2")])
    one_line_error(capsys, code, "no trained weights", "train it first")
    code = run_cli(["export", str(trained_bundle), "--format", "keras", "--out", str(tmp_path / "x")])
    one_line_error(capsys, code, "invalid choice: 'keras'")
    broken = load_project(trained_bundle)
    broken.graph.add_node("ReLU", name="dangling")
    save_project(tmp_path / "broken.layerlab", broken)
    code = run_cli(["export", str(tmp_path / "broken.layerlab"), "--format", "onnx", "--out", str(tmp_path / "b.onnx")])
    one_line_error(capsys, code, "1 error", "cannot be exported", "'dangling' has no input")
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "b.onnx").exists()


def test_import_bad_input_is_one_sentence(tmp_path, capsys):
    import os
    import pickle

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump(Payload(), f)
    code = run_cli(["import", str(tmp_path / "evil.pt"), "--out", str(tmp_path / "e.layerlab")])
    one_line_error(capsys, code, "would run code", "nothing in it was run")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "e.layerlab").exists()
    (tmp_path / "net.py").write_text("import torch\nclass Net(torch.nn.Module):\n    def forward(self, x):\n"
                                     "        return x\n")
    code = run_cli(["import", str(tmp_path / "net.py"), "--out", str(tmp_path / "n.txt")])
    one_line_error(capsys, code, "ending in .layerlab")
    code = run_cli(["import", str(tmp_path / "net.py"), "--out", str(tmp_path / "n.layerlab"), "--input-shape", "0,3"])
    one_line_error(capsys, code, "positive sizes")
    code = run_cli(["import", str(tmp_path / "net.py"), "--out", str(tmp_path / "n.layerlab")])
    one_line_error(capsys, code, "cannot tell the input shape", "--input-shape")


def test_export_refuses_an_out_that_is_its_own_project_or_named_for_another_format(trained_bundle, tmp_path,
                                                                                   capsys):
    """`--out` equal to the input turned the trained bundle into an ONNX file; an ONNX model in
    x.pt2 was written and "verified" as if all were well."""
    import shutil

    bundle = tmp_path / "own.layerlab"
    shutil.copyfile(trained_bundle, bundle)
    before = bundle.read_bytes()
    code = run_cli(["export", str(bundle), "--format", "onnx", "--out", str(bundle)])
    one_line_error(capsys, code, "is the project being exported")
    assert bundle.read_bytes() == before
    code = run_cli(["export", str(bundle), "--format", "onnx", "--out", str(tmp_path / "m.pt2")])
    one_line_error(capsys, code, "end in .onnx", "name it m.onnx")
    code = run_cli(["export", str(bundle), "--format", "safetensors", "--out", str(tmp_path / "w.txt")])
    one_line_error(capsys, code, "end in .safetensors")
    (tmp_path / "adir.onnx").mkdir()
    code = run_cli(["export", str(bundle), "--format", "onnx", "--out", str(tmp_path / "adir.onnx")])
    one_line_error(capsys, code, "is a folder")
    code = run_cli(["export", str(bundle), "--format", "onnx", "--out", str(tmp_path / "no" / "m.onnx")])
    one_line_error(capsys, code, "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.onnx", "own.layerlab"]


def test_a_package_that_cannot_be_written_whole_leaves_nothing_behind(trained_bundle, tmp_path, capsys,
                                                                      monkeypatch):
    """A full disk mid-copy left a package folder with half a train.py."""
    import errno
    import shutil

    real, copied = shutil.copyfile, []

    def disk_full_after_three(src, dst, *a, **k):
        if len(copied) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(src))
        copied.append(dst)
        return real(src, dst, *a, **k)

    monkeypatch.setattr(shutil, "copyfile", disk_full_after_three)
    code = run_cli(["export", str(trained_bundle), "--format", "python", "--out", str(tmp_path / "pkg")])
    line = one_line_error(capsys, code, "cannot write the package", "no space left on device")
    assert "layerlab-package-" not in line  # not the staging copy's name
    assert len(copied) == 3 and list(tmp_path.iterdir()) == []


def test_import_into_a_json_project_refuses_to_drop_the_weights(trained_bundle, tmp_path, capsys):
    assert run_cli(["export", str(trained_bundle), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    code = run_cli(["import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "m.json")])
    one_line_error(capsys, code, "holds no weights", "m.layerlab")
    assert not (tmp_path / "m.json").exists()
    assert run_cli(["import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "m.layerlab")]) == 0
    assert load_project(tmp_path / "m.layerlab").weights


def test_import_refuses_options_the_file_kind_does_not_read(trained_bundle, tmp_path, capsys):
    """`import m.onnx --weights other.pt --class Net` imported the ONNX file's own weights, without a word."""
    assert run_cli(["export", str(trained_bundle), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    assert run_cli(["export", str(trained_bundle), "--format", "safetensors",
                    "--out", str(tmp_path / "m.safetensors")]) == 0
    capsys.readouterr()
    code = run_cli(["import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "a.layerlab"),
                    "--weights", str(tmp_path / "other.pt"), "--class", "Net"])
    one_line_error(capsys, code, "--class and --weights cannot be used to import m.onnx", "own graph")
    code = run_cli(["import", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "b.layerlab"),
                    "--input-shape", "1,28,28"])
    one_line_error(capsys, code, "--input-shape cannot be used", "leave them out")
    assert not (tmp_path / "a.layerlab").exists() and not (tmp_path / "b.layerlab").exists()
    # the options a kind reads still pass, and a missing file is still said as such
    code = run_cli(["import", str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "c.layerlab"), "--class", "N"])
    one_line_error(capsys, code, "no such file")


def test_a_file_the_system_refuses_is_one_sentence_not_an_internal_error(tmp_path, capsys):
    """A read-only or missing folder gave "internal error (OSError); this is a bug in LayerLab"."""
    (tmp_path / "afile").write_text("x")
    code = run_cli(["lab", "start", "xor-hidden-layer", str(tmp_path / "afile" / "work.json")])
    line = one_line_error(capsys, code, "cannot use", "afile")  # a file where its folder should be
    assert "internal error" not in line and "bug" not in line


def test_a_closed_pipe_does_not_stop_a_run_from_being_saved(tmp_path):
    """`main.py train ... | head -1` failed the run at its next progress line ("Broken pipe") and saved nothing."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "train", "moons-mlp", "--epochs", "8",
                             "--out", str(tmp_path / "run")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as head does after its line
    _out, err = proc.communicate(timeout=600)
    assert first.startswith("epoch 1/8")
    assert proc.returncode == 0, err
    assert "Broken pipe" not in err and "Traceback" not in err
    assert load_project(tmp_path / "run" / "model.layerlab").weights


def test_an_export_the_disk_cannot_hold_is_refused_before_any_work(trained_bundle, tmp_path, capsys,
                                                                   monkeypatch):
    """On a full disk --format pt2 aborted inside torch's C++ (exit 134) and ONNX fell back to its legacy
    exporter before failing."""
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 30, (1 << 30) - 65536, 65536))
    for fmt, name in (("pt2", "m.pt2"), ("onnx", "m.onnx"), ("python", "pkg")):
        code = run_cli(["export", str(trained_bundle), "--format", fmt, "--out", str(tmp_path / name)])
        one_line_error(capsys, code, "0.1 MB free", "needs about")
    assert list(tmp_path.iterdir()) == []


def test_a_re_export_into_an_earlier_package_leaves_nothing_stale_and_says_what_it_replaced(trained_bundle, tmp_path,
                                                                                           capsys):
    """Re-exporting kept the folder's metrics.csv from a run of train.py, and `main.py import` then attached
    that history to the new weights; an edited model.py was overwritten, notes.txt kept, without a word."""
    from engine.importers import import_model

    pkg = tmp_path / "pkg"
    args = ["export", str(trained_bundle), "--format", "python", "--out", str(pkg)]
    assert run_cli(args) == 0
    fresh_model_py = (pkg / "model.py").read_text()
    # as a user leaves it: train.py's results (runs/ by default, metrics.csv beside the weights with
    # --out .), an edit to model.py and a file of their own
    (pkg / "runs").mkdir()
    (pkg / "runs" / "weights.safetensors").write_bytes((pkg / "weights.safetensors").read_bytes())
    (pkg / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n2,0.25\n")
    (pkg / "model.py").write_text(fresh_model_py + "\n# tried a wider layer\n")
    (pkg / "notes.txt").write_text("mine")
    assert len(import_model(pkg).project.history) == 2  # what an import attached to the next export
    capsys.readouterr()
    assert run_cli(args) == 0
    out = capsys.readouterr().out
    assert not (pkg / "metrics.csv").exists() and not (pkg / "runs").exists()
    assert (pkg / "model.py").read_text() == fresh_model_py and (pkg / "notes.txt").read_text() == "mine"
    assert import_model(pkg).project.history == []
    assert f"Replaced the earlier package in {pkg}: " in out and "model.py, " in out
    assert "model.py had changed since that export" in out
    assert "Removed metrics.csv and runs/: train.py's results for the earlier weights" in out
    assert "Kept notes.txt: not part of a package." in out
    # a folder that is not an earlier package is still refused, untouched
    other = tmp_path / "other"
    other.mkdir()
    (other / "metrics.csv").write_text("x")
    code = run_cli(["export", str(trained_bundle), "--format", "python", "--out", str(other)])
    one_line_error(capsys, code, "is not an empty folder or an earlier layerlab package")
    assert [p.name for p in other.iterdir()] == ["metrics.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "pkg"]  # nothing left aside


def test_a_package_named_for_another_format_or_a_folder_that_takes_no_files_is_refused(trained_bundle, tmp_path,
                                                                                      capsys):
    """`--format python --out x.onnx` made a folder named x.onnx; `--out /proc/m.onnx` said the disk had
    0.0 MB free, as if freeing space would help."""
    for name in ("x.onnx", "x.pt2", "x.PT", "x.safetensors"):
        code = run_cli(["export", str(trained_bundle), "--format", "python", "--out", str(tmp_path / name)])
        one_line_error(capsys, code, "a pytorch package is a folder or a .zip", "name it x or x.zip")
    assert list(tmp_path.iterdir()) == []
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc here: no folder refuses files whatever the permissions say")
    for fmt, out in (("onnx", "/proc/m.onnx"), ("pt2", "/proc/m.pt2"), ("python", "/proc/pkg")):
        code = run_cli(["export", str(trained_bundle), "--format", fmt, "--out", out])
        line = one_line_error(capsys, code, f"--out {out}: cannot write in /proc")
        assert "MB free" not in line


@pytest.mark.parametrize("fmt, name", [("onnx", "m.onnx"), ("torchscript", "m.pt"), ("python", "pkg.zip")])
def test_an_export_over_an_existing_file_says_it_replaced_it(trained_bundle, tmp_path, capsys, fmt, name):
    """The CLI overwrote an existing export silently; it still overwrites (as cp and torch.save do), and says so."""
    args = ["export", str(trained_bundle), "--format", fmt, "--out", str(tmp_path / name)]
    assert run_cli(args) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"Exported {fmt} to {tmp_path / name} in ") and "replaced" not in first
    assert run_cli(args) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"Exported {fmt} to {tmp_path / name} in ")
    assert first.endswith(f" s (replaced the existing {name}).")
