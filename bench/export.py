"""Export times per format for every starter, and the exported train.py's speed against LayerLab's.

    python bench/export.py [--epochs N] [--repeats N] [--starters a,b]

Export: each starter (seeded fresh weights) is exported once to every format, timed end to end
(writing and verifying the file), in this process.

Throughput: the same starter is trained for --epochs epochs by LayerLab (``main.py train``) and by
its exported package (``python -I train.py``), each in its own process, alternating, --repeats
times.  A run's speed is the median of its epochs' ``samples_per_s`` after the first (the warm-up
epoch), both read from the metrics.csv each writes (the same columns, the same definition:
training samples over the epoch's training time, evaluation excluded).  Each picks its own CPU
threads (train.py: max(1, cores // processes), or 1 for a model under 20 MFLOP per batch, the
rule LayerLab's trainer follows).  The ratio is train.py / LayerLab (target >= 0.8).

The machine is shared: only ratios measured in the same run mean something.  The last line of
output is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FORMATS = ("onnx", "pt2", "safetensors", "torchscript", "python")
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "safetensors": ".safetensors", "torchscript": ".pt", "python": ""}


def starters() -> list[str]:
    return sorted(p.stem for p in (ROOT / "resources" / "starters").glob("*.json"))


def seeded(name: str):
    from engine.project import load_starter
    from engine.run import prepare_run

    project = load_starter(name)
    prepared = prepare_run(project)
    project.weights = {k: v.detach().clone() for k, v in prepared.compiled.module.state_dict().items()}
    return project, prepared.dataset


def time_exports(name: str, folder: Path) -> tuple[dict, Path]:
    from engine.export import export_project

    project, dataset = seeded(name)
    out, package = {}, folder / f"{name}_package"
    for fmt in FORMATS:
        path = package if fmt == "python" else folder / f"{name}{SUFFIX[fmt]}"
        t0 = time.perf_counter()
        export_project(project, fmt, path, dataset=dataset)
        out[fmt] = time.perf_counter() - t0
    return out, package


def _speed(metrics: Path) -> float:
    with open(metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    speeds = [float(r["samples_per_s"]) for r in rows[1:]] or [float(rows[0]["samples_per_s"])]
    return statistics.median(speeds)


def _env() -> dict:
    """The package runs as it would elsewhere: nothing of LayerLab on its path."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run_layerlab(name: str, epochs: int, out: Path) -> float:
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "train", name, "--epochs", str(epochs),
                           "--device", "cpu", "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=1800)
    if proc.returncode:
        raise SystemExit(f"main.py train {name} failed: {proc.stderr[-500:]}")
    return _speed(out / "metrics.csv")


def run_train_py(package: Path, epochs: int, out: Path) -> float:
    argv = [sys.executable, "-I", str(package / "train.py"), "--epochs", str(epochs), "--device", "cpu",
            "--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=package, env=_env(), timeout=1800)
    if proc.returncode:
        raise SystemExit(f"train.py of {package.name} failed: {proc.stderr[-500:]}")
    return _speed(out / "metrics.csv")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--starters", help="comma-separated starter names (default: all)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    names = args.starters.split(",") if args.starters else starters()
    tmp = Path(tempfile.mkdtemp(prefix="layerlab-bench-export-"))
    export_s, packages = {}, {}
    print(f"{'starter':<18}" + "".join(f"{f:>13}" for f in FORMATS) + "   (export + verify, seconds)")
    for name in names:
        export_s[name], packages[name] = time_exports(name, tmp)
        print(f"{name:<18}" + "".join(f"{export_s[name][f]:>13.2f}" for f in FORMATS), flush=True)

    print(f"\nthroughput, samples/s (median of epochs 2..{args.epochs}, median of {args.repeats} runs; "
          f"cores: {os.cpu_count()})")
    print(f"{'starter':<18}{'LayerLab':>12}{'train.py':>12}{'ratio':>8}")
    throughput = {}
    for name in names:
        runs = {"layerlab": [], "train_py": []}
        for r in range(args.repeats):
            for who in (("layerlab", "train_py") if r % 2 == 0 else ("train_py", "layerlab")):  # alternate
                out = tmp / f"{name}_{who}_{r}"
                runs[who].append(run_layerlab(name, args.epochs, out) if who == "layerlab"
                                 else run_train_py(packages[name], args.epochs, out))
        med = {k: statistics.median(v) for k, v in runs.items()}
        throughput[name] = {**{k: round(v, 1) for k, v in med.items()},
                            "ratio": round(med["train_py"] / med["layerlab"], 3)}
        t = throughput[name]
        print(f"{name:<18}{t['layerlab']:>12,.0f}{t['train_py']:>12,.0f}{t['ratio']:>8.2f}", flush=True)
    ratios = [t["ratio"] for t in throughput.values()]
    summary = {"bench": "export", "epochs": args.epochs, "repeats": args.repeats, "cpu_count": os.cpu_count(),
               "export_s": {n: {f: round(s, 3) for f, s in d.items()} for n, d in export_s.items()},
               "throughput": throughput, "min_ratio": min(ratios), "median_ratio": statistics.median(ratios),
               "target_ratio": 0.8}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
