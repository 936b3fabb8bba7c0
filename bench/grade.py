"""Grading speed: a class of 30 submissions of the 28×28 CNN lab, without --reproduce.

    python bench/grade.py [--students 30] [--repeats 3]

The lab is the bundled 'mlp-vs-cnn' with its data swapped for 28×28 images of the same size as
the Fashion-MNIST set it will use (10,000 images: the bundled 8×8 digits, upscaled bilinearly
and repeated; test split 20% = 2,000 images), so a submission costs what it will cost once
fashion_mnist is merged.  Every student hands in the reference CNN, trained once and then
perturbed a little per student (so no two weights are the same, as in a real class).

Measured: ``grade_class`` over the 30 files in one process (--jobs 1, one thread) and over two
worker processes (--jobs 2); per submission, the grader's own time per row.  The peer, measured
in the same run, is the floor no grader can go under: one bare forward pass of the same model
over the same test split.  The per-submission time is printed as a ratio to it (the rest is
reading the zip, compiling the graph, the validation split for the history check, scikit-learn).
The peer is timed inside every repeat, next to the grading it is compared with; the medians of the
repeats are reported.  The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

N_IMAGES = 10_000
TARGET_S = 30.0


def images_28(folder: Path) -> Path:
    """10,000 grey 28×28 images (digits upscaled) as an .npz the lab's data spec can name."""
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.data / 16.0).reshape(-1, 1, 8, 8).astype(np.float32))
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False).numpy()
    reps = -(-N_IMAGES // len(x))
    x, y = np.concatenate([x] * reps)[:N_IMAGES], np.concatenate([d.target] * reps)[:N_IMAGES]
    path = folder / "images28.npz"
    np.savez(path, x=x, y=y.astype(np.int64))
    return path


def bench_lab(npz: Path):
    from engine.labs.format import lab_from_dict, load_bundled_lab

    doc = load_bundled_lab("mlp-vs-cnn").to_dict()
    doc["data"] = {"source": "npz", "path": str(npz), "val_fraction": 0.15, "test_fraction": 0.2, "split_seed": 7}
    return lab_from_dict(doc)


def hand_in(lab, folder: Path, students: int) -> list[Path]:
    import json as _json

    from engine.graph import Graph
    from engine.labs.check import LabChecker
    from engine.labs.progress import new_project_from_lab
    from engine.labs.submission import make_submission
    from engine.run import execute, prepare_run

    reference = Path(ROOT / "tests" / "labs" / "mlp-vs-cnn" / "solution.json")
    project = new_project_from_lab(lab)
    project.graph = Graph.from_dict(_json.loads(reference.read_text())["graph"])
    checker = LabChecker(lab)
    prepared = prepare_run(project, dataset=checker.dataset, overrides={"epochs": 2, "device": "cpu"},
                           use_project_weights=False)
    trainer, _ = execute(prepared)
    base = {k: v.detach().clone() for k, v in prepared.compiled.module.state_dict().items()}
    project.history = [dict(r) for r in trainer.history]
    project.run = {"outcome": "completed", "weights_epoch": len(trainer.history)}
    paths = []
    g = torch.Generator().manual_seed(0)
    for i in range(students):
        project.weights = {k: v + 1e-4 * torch.randn(v.shape, generator=g) for k, v in base.items()}
        path = folder / f"student{i:02d}.layerlab-submission"
        path.write_bytes(make_submission(project, {"name": f"Student {i}", "id": f"s{i:02d}"}, lab))
        paths.append(path)
    return paths, base, checker


def forward_pass(lab, weights, checker):
    """The peer: one bare forward pass of the model over the lab's test split (a callable to time)."""
    from engine.graph import Graph
    from engine.model_at import ready_model
    from engine.run import context_for

    graph = Graph.from_dict(json.loads((ROOT / "tests" / "labs" / "mlp-vs-cnn" / "solution.json").read_text())["graph"])
    ds = checker.dataset
    module = ready_model(graph, context_for(ds), weights).module

    def run() -> float:
        t = time.perf_counter()
        with torch.no_grad():
            module(ds.x_test)
        return time.perf_counter() - t

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from engine.labs.grade import grade_class

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lab = bench_lab(images_28(folder))
        paths, weights, checker = hand_in(lab, folder, args.students)
        n_test = checker.dataset.n_test
        grade_class(lab, paths[:2])  # warm-up: imports, the dataset, first compile
        forward = forward_pass(lab, weights, checker)
        forward()
        one, two, per, floors = [], [], [], []
        for _ in range(args.repeats):
            floors.append(statistics.median(forward() for _ in range(3)))  # the peer, in the same repeat
            t = time.perf_counter()
            rows = grade_class(lab, paths, jobs=1)
            one.append(time.perf_counter() - t)
            per.append(statistics.median(r.seconds for r in rows))
            assert all(r.graded for r in rows), [r.message for r in rows if not r.graded]
            floors.append(statistics.median(forward() for _ in range(3)))
            t = time.perf_counter()
            rows2 = grade_class(lab, paths, jobs=2)
            two.append(time.perf_counter() - t)
            assert [r.total for r in rows2] == [r.total for r in rows]
        t = time.perf_counter()
        grade_class(lab, paths[:2], jobs=2)  # two files, two workers: almost all of it is starting them
        pool_start = time.perf_counter() - t
        floor = statistics.median(floors)
    result = {
        "students": args.students, "test_images": n_test, "image": "1x28x28",
        "class_s_jobs1": round(statistics.median(one), 2), "class_s_jobs2": round(statistics.median(two), 2),
        "per_submission_s": round(statistics.median(per), 4), "bare_forward_s": round(floor, 4),
        "per_submission_vs_forward": round(statistics.median(per) / floor, 1),
        "jobs2_vs_jobs1": round(statistics.median(two) / statistics.median(one), 2),
        "pool_start_s": round(pool_start, 2),
        "target_s": TARGET_S, "within_target": statistics.median(one) <= TARGET_S,
    }
    print(f"{args.students} submissions of the 28x28 CNN lab ({n_test} test images), median of {args.repeats}:")
    print(f"  class, --jobs 1:  {result['class_s_jobs1']:7.2f} s   (target <= {TARGET_S:g} s)")
    print(f"  class, --jobs 2:  {result['class_s_jobs2']:7.2f} s   ({result['jobs2_vs_jobs1']:.2f}x the one-process time,"
          " worker start-up included)")
    print(f"  two files on two fresh workers: {pool_start:.2f} s (what starting the processes costs)")
    print(f"  per submission:   {result['per_submission_s']:7.4f} s   ({result['per_submission_vs_forward']:.1f}x one bare "
          f"forward pass over the test split, {floor:.4f} s)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
