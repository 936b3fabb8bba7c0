"""Run many command lines through ``main.main`` in ONE process, as the CLI would run each of them.

    python tests/cli_batch.py CASES.json RESULTS.json

CASES.json is a list of ``{"argv": [...], "env": {...}}``; RESULTS.json gets, per case, the exit
status ``rc`` (or ``"exception"`` when something escaped ``main.main``, its traceback then in
``stderr``), the case's ``stderr`` and the tail of its ``stdout``.  The process imports torch once
for hundreds of cases (a process per case would cost seconds each); tests start it under an
address-space limit, so an allocation that is not bounded fails the case instead of succeeding.
It also reports its peak virtual size after each case, so a test can show the limit leaves a
real margin over ordinary work.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _vm_peak() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_case(case: dict) -> dict:
    import main

    env = case.get("env") or {}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main.main(list(case["argv"]))
            except SystemExit as e:  # argparse --help
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - anything escaping main.main is what the tests look for
        err.write(traceback.format_exc())
        rc = "exception"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"rc": rc, "stderr": err.getvalue()[-4000:], "stdout": out.getvalue()[-1000:]}


def main_batch(cases_path: str, results_path: str) -> None:
    """Run the cases in order; ``vm_peak_after`` is the process's peak virtual size after each one
    (run a normal case first to learn what ordinary work needs under the same limit)."""
    cases = json.loads(Path(cases_path).read_text())
    results = []
    for case in cases:
        results.append({**run_case(case), "vm_peak_after": _vm_peak()})
        Path(results_path).write_text(json.dumps({"results": results}))


if __name__ == "__main__":
    main_batch(sys.argv[1], sys.argv[2])
