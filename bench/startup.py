"""Start-up time: process start -> the editor's first painted frame -> ready to train.

    python bench/startup.py [--runs 5] [--platform offscreen|xcb]

Each run starts ``python main.py`` (the default starter project) with LAYERLAB_STARTUP_PROBE set:
the app records, on the system-wide monotonic clock, when its canvas was first painted
("window") and when the training process had said it was ready ("ready"), writes them and quits.
The same run measures ``python -c "import torch"`` as the peer: the window must not wait for it.
Medians of the runs; the last line is one JSON object.  Target: window_ms <= 1500.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_start(platform: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.json"
        env = {**os.environ, "LAYERLAB_STARTUP_PROBE": str(probe), "QT_QPA_PLATFORM": platform,
               "LAYERLAB_CONFIG_DIR": str(Path(tmp) / "config"), "LAYERLAB_RECOVERY_DIR": str(Path(tmp) / "rec")}
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, str(ROOT / "main.py")], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=180)
        if proc.returncode != 0 or not probe.exists():
            raise SystemExit(f"the app did not report its start-up (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        times = json.loads(probe.read_text())
        return (times["window_painted"] - t0) * 1e3, (times["ready_to_train"] - t0) * 1e3


def import_torch_ms() -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import torch"], check=True, timeout=120)
    return (time.monotonic() - t0) * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--platform", default="offscreen", help="Qt platform: offscreen, or xcb under a display")
    args = ap.parse_args(argv)
    one_start(args.platform)  # warm the OS file cache, as a second start in a lab session would be
    import_torch_ms()
    windows, readies, torches = [], [], []
    for i in range(args.runs):  # interleaved, so drift on a shared machine hits both alike
        w, r = one_start(args.platform)
        windows.append(w)
        readies.append(r)
        torches.append(import_torch_ms())
        print(f"run {i + 1}: window {w:.0f} ms, ready to train {r:.0f} ms, python -c 'import torch' {torches[-1]:.0f} ms")
    summary = {"window_ms": round(statistics.median(windows)), "ready_ms": round(statistics.median(readies)),
               "import_torch_ms": round(statistics.median(torches)), "runs": args.runs, "platform": args.platform}
    print(f"median: window {summary['window_ms']} ms (target <= 1500), ready to train {summary['ready_ms']} ms, "
          f"import torch alone {summary['import_torch_ms']} ms")
    print(json.dumps(summary))
    return 0 if summary["window_ms"] <= 1500 else 1


if __name__ == "__main__":
    sys.exit(main())
