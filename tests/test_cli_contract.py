"""The CLI's error contract: bad input exits 2 with one sentence naming the file and the field;
an internal error exits 1 with one line and its traceback in a log file, never on the terminal;
a mistyped command or a missing project never opens the app; no display, no Qt abort."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import main
from engine.cli import run_cli
from engine.commands import COMMAND_NAMES
from tests import hostile

ROOT = Path(__file__).resolve().parents[1]


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("word, expected", [
    ("trian", "'trian' is neither a command nor a project file; did you mean 'train'?"),
    ("evalute", "'evalute' is neither a command nor a project file; did you mean 'evaluate'?"),
    ("missing.layerlab", "'missing.layerlab' is not a project file (no such file)."),
    ("--frobnicate", "'--frobnicate' is neither a command nor a project file."),
])
def test_a_mistyped_command_or_missing_project_lists_the_commands_and_opens_nothing(capsys, monkeypatch, word,
                                                                                     expected):
    import builtins

    real_import = builtins.__import__

    def no_gui(name, *a, **k):
        assert not name.startswith(("gui", "PySide6")), f"{word!r} started the app"
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_gui)
    assert main.main([word]) == 2
    line = one_line(capsys)
    assert expected in line and "The commands are: " + ", ".join(COMMAND_NAMES) in line


def test_a_folder_named_as_a_project_says_so(capsys, tmp_path):
    assert main.main([str(tmp_path / "sub") + "/"]) == 2
    assert "is not a project file" in one_line(capsys)


def test_the_parser_suggests_the_closest_command(capsys):
    assert run_cli(["trian", "x"]) == 2
    assert "did you mean 'train'?" in one_line(capsys)


@pytest.mark.parametrize("env, problem", [
    ({}, True),
    ({"DISPLAY": ":0"}, False),
    ({"WAYLAND_DISPLAY": "wayland-0"}, False),
    ({"QT_QPA_PLATFORM": "offscreen"}, False),
    ({"QT_QPA_PLATFORM": "minimal:enable_fonts"}, False),
    ({"QT_QPA_PLATFORM": "xcb"}, True),
    ({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":1"}, False),
    ({"QT_QPA_PLATFORM": "wayland", "DISPLAY": ":1"}, True),
])
def test_the_display_rule(env, problem):
    found = main.display_problem(env, "linux")
    assert (found is not None) == problem
    if found:
        assert "needs a display" in found and ", ".join(COMMAND_NAMES) in found
    assert main.display_problem({}, "win32") is None and main.display_problem({}, "darwin") is None


def test_without_a_display_the_app_says_so_instead_of_aborting():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, str(ROOT / "main.py")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr  # not 134 (Qt's abort and core dump)
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "needs a display" in proc.stderr and "headless commands" in proc.stderr


def test_bad_settings_in_a_project_name_the_file_and_the_field(capsys, tmp_path):
    doc = hostile.starter_doc()
    doc["training"]["optimizer"] = "adamax"
    path = tmp_path / "bad-settings.json"
    path.write_text(json.dumps(doc))
    assert run_cli(["train", str(path), "--out", str(tmp_path / "o")]) == 2
    line = one_line(capsys)
    assert line.startswith(f"error: {path}: ") and "'optimizer'" in line and "adamax" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flags, words", [
    (["--seed", str(10**23)], ["--seed", "between 0 and 9,223,372,036,854,775,807", "of 24 digits"]),
    (["--seed", "-1"], ["--seed", "between 0"]),
    (["--batch-size", str(10**30)], ["--batch-size", "between 1 and 16,777,216"]),
    (["--epochs", "9" * 400], ["--epochs", "between 1 and 1,000,000", "of 400 digits"]),
    (["--epochs", "9" * 5000], ["--epochs", "expected a whole number"]),
    (["--lr", "1e400"], ["--lr", "positive number"]),
])
def test_numeric_flags_are_range_checked_before_use(capsys, tmp_path, flags, words):
    assert run_cli(["train", *flags, "--out", str(tmp_path / "o")]) == 2
    line = one_line(capsys)
    for w in words:
        assert w in line, line
    assert len(line) < 300 and not (tmp_path / "o").exists()


def test_a_bad_memory_setting_is_bad_input(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLAB_MAX_MEMORY", "a lot")
    assert run_cli(["train", "--epochs", "1", "--out", str(tmp_path / "o")]) == 2
    assert "LAYERLAB_MAX_MEMORY is 'a lot', which is not a size" in one_line(capsys)


def test_an_internal_error_is_one_line_and_a_log_file(capsys, tmp_path, monkeypatch):
    import engine.commands.labs as labs

    def broken(args):
        raise ZeroDivisionError("a bug deep inside")

    monkeypatch.setattr(labs, "run", broken)
    monkeypatch.setenv("LAYERLAB_LOG_DIR", str(tmp_path / "logs"))
    assert run_cli(["labs"]) == 1
    line = one_line(capsys)
    assert "internal error (ZeroDivisionError)" in line and "bug in LayerLab" in line
    logs = list((tmp_path / "logs").glob("layerlab-crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in line
    text = logs[0].read_text()
    assert "Traceback" in text and "a bug deep inside" in text and "command: layerlab labs" in text
    assert oct(logs[0].stat().st_mode & 0o777) == "0o600"


def test_crash_logs_go_to_the_users_state_folder_by_default(monkeypatch, tmp_path):
    from engine.cli_support import log_dir

    monkeypatch.delenv("LAYERLAB_LOG_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    if sys.platform.startswith("linux"):
        assert log_dir() == tmp_path / "state" / "layerlab" / "logs"
    monkeypatch.setenv("LAYERLAB_LOG_DIR", str(tmp_path / "mine"))
    assert log_dir() == tmp_path / "mine"


def test_a_missing_data_file_in_a_project_names_both_files(capsys, tmp_path):
    doc = hostile.project_with_data({"source": "csv", "path": "gone.csv", "target": "y"})
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    assert run_cli(["train", str(path), "--out", str(tmp_path / "o")]) == 2
    line = one_line(capsys)
    assert str(path) in line and str(tmp_path / "gone.csv") in line and "no such file" in line
