"""Seeded random mutation of valid projects, bundles and CSV files: the engine's doors either accept
them or refuse them with one LayerLabError sentence, and the CLI exits 0 or 2, never with a
traceback.

A seeded ``random.Random`` mutator (not Hypothesis, which is not in the venv) keeps CI
deterministic: the same cases every run, a failure names its case number.  Thousands of cases run
in-process through the loaders (``load_project``, ``load_dataset``, ``prepare_run``); a few hundred
go through the real CLI, batched into a handful of subprocesses (tests/cli_batch.py).

The CLI cases keep training's numeric settings valid: a run that diverges on a valid but extreme
setting (weight decay 1e308) is a training failure (exit 1) by design, not bad input.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import torch

from engine.errors import LayerLabError
from tests import hostile

ROOT = Path(__file__).resolve().parents[1]
SEED = 13

ODD_VALUES = [None, True, False, 0, 1, -1, 2, 3, 7, 64, 10**3, 10**9, 10**23, int("9" * 400), 2**63, -(2**63),
              0.5, -0.0, 1e-300, 1e308, float("nan"), float("inf"), float("-inf"), "", "x", "auto", "moons",
              "csv", "npz", "idx", "image_folder", "classification", "regression", "../../etc/passwd", "/dev/zero",
              "data.csv", "A" * 3000, "\x00", "é", [], [1, 2], ["a"], {}, {"a": 1}, [[[[[]]]]], {"source": "moons"},
              {"mean": [0], "std": [1]}, [{"epoch": 1}]]
KEY_NAMES = ["source", "path", "target", "task", "n_samples", "noise", "seed", "val_fraction", "test_fraction",
             "split_seed", "stratify", "standardize", "units", "bias", "loss", "type", "id", "src", "dst", "nodes",
             "edges", "params", "name", "batch_size", "epochs", "num_threads", "optimizer", "checkpoint_dir",
             "amp", "device", "history", "normalization", "run", "mean", "std", "x", "", "__proto__"]
RISKY_TRAINING = {"lr", "weight_decay", "momentum", "gamma", "grad_clip", "progress_interval_s",
                  "snapshot_interval_s", "step_size", "plateau_patience", "schedule", "amp", "optimizer"}


class Mutator:
    """1-3 random edits of a JSON document: replace a value (odd values, nudged numbers, edited
    text), delete or add a key, drop or duplicate a list item, wrap a value in a list."""

    def __init__(self, rng: random.Random, safe_training: bool = False):
        self.rng, self.safe_training = rng, safe_training

    def _paths(self, doc, prefix=()):
        yield prefix, doc
        if isinstance(doc, dict):
            for k, v in doc.items():
                yield from self._paths(v, prefix + (k,))
        elif isinstance(doc, list):
            for i, v in enumerate(doc):
                yield from self._paths(v, prefix + (i,))

    def _value_like(self, value):
        r = self.rng
        if isinstance(value, bool) or r.random() < 0.5:
            return copy.deepcopy(r.choice(ODD_VALUES))
        if isinstance(value, int):
            return r.choice([value + r.randint(-3, 3), value * 10 ** r.randint(1, 30), -value, float(value)])
        if isinstance(value, float):
            return r.choice([value * 10 ** r.randint(-20, 20), -value, int(value) if math.isfinite(value) else 0])
        if isinstance(value, str):
            if not value:
                return "?"
            i = r.randrange(len(value))
            return r.choice([value[:i], value + value, value[:i] + chr(r.randint(0, 0x2FF)) + value[i + 1:],
                             value.upper(), value * 50])
        return copy.deepcopy(r.choice(ODD_VALUES))

    def mutate(self, doc):
        doc = copy.deepcopy(doc)
        for _ in range(self.rng.randint(1, 3)):
            paths = [p for p, _ in self._paths(doc)]
            path = self.rng.choice(paths)
            if self.safe_training and path[:1] == ("training",) and (len(path) < 2 or path[1] in RISKY_TRAINING):
                continue
            if not path:
                continue
            parent = doc
            for k in path[:-1]:
                parent = parent[k]
            key, value = path[-1], parent[path[-1]]
            op = self.rng.random()
            if op < 0.6:
                parent[key] = self._value_like(value)
            elif op < 0.7 and isinstance(parent, dict):
                del parent[key]
            elif op < 0.8 and isinstance(value, dict):
                name = self.rng.choice(KEY_NAMES)
                if not (self.safe_training and path == ("training",) and name in RISKY_TRAINING):
                    value[name] = copy.deepcopy(self.rng.choice(ODD_VALUES))
            elif op < 0.9 and isinstance(value, list) and value:
                i = self.rng.randrange(len(value))
                if self.rng.random() < 0.5:
                    del value[i]
                else:
                    value.append(copy.deepcopy(value[i]))
            else:
                parent[key] = [value]
        return doc


def base_project() -> dict:
    doc = hostile.starter_doc()
    doc["data"] = {"source": "moons", "n_samples": 100, "noise": 0.2, "seed": 0}
    doc["training"] = {**doc["training"], "epochs": 1}
    return doc


CSV_TEXT = ("age,height,colour,score,label\n" + "".join(
    f"{20 + i % 30},{1.5 + (i % 7) / 10:.2f},{['red', 'green', 'blue'][i % 3]},{(i * 37) % 11},{'yes' if i % 2 else 'no'}\n"
    for i in range(40)))


def mutate_text(rng: random.Random, text: str) -> str:
    """1-4 character-level edits of CSV text: delete, insert odd characters, duplicate lines, swap
    delimiters, add quotes, a long cell, a blank line, NUL bytes."""
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        i = rng.randrange(max(len(text), 1))
        if op == 0:
            text = text[:i] + text[i + rng.randint(1, 20):]
        elif op == 1:
            text = text[:i] + rng.choice(['"', ",", ";", "\t", "\n", "\r", "x", "-", ".", "1e999", "nan", "é",
                                          "\x00", "?", "NA", "1,5"]) + text[i:]
        elif op == 2:
            lines = text.split("\n")
            j = rng.randrange(len(lines))
            lines.insert(j, lines[j])
            text = "\n".join(lines)
        elif op == 3:
            text = text.replace(",", rng.choice([";", "\t", "|", " "]))
        elif op == 4:
            text = text[:i] + '"' + text[i:i + 30] + text[i + 30:]
        elif op == 5:
            text = text[:i] + "9" * rng.choice([50, 5000]) + text[i:]
        elif op == 6:
            lines = text.split("\n")
            text = "\n".join(lines[: rng.randint(0, len(lines))])
        else:
            text = text.replace("\n", "\n\n", rng.randint(1, 3))
    return text


def mutate_spec(rng: random.Random, spec: dict) -> dict:
    spec = dict(spec)
    for _ in range(rng.randint(0, 2)):
        key = rng.choice(["target", "task", "header", "delimiter", "decimal", "categorical", "ignore",
                          "max_categories", "val_fraction", "stratify", "name"])
        spec[key] = rng.choice([None, "label", "score", "colour", "age", 0, -1, 4, 99, ["score", "age"], "auto",
                                "classification", "regression", True, False, ",", ";", ".", "reject", "onehot",
                                2, 10**9, 0.5, 0.99, "x" * 40, [], {}])
    return spec


def _check_refusal(err: LayerLabError, case: str) -> None:
    text = str(err)
    assert text and "\n" not in text and len(text) < 1000, f"{case}: {text[:300]!r}… ({len(text)} characters)"


def test_mutated_projects_and_bundles_in_process(tmp_path):
    """~1,300 mutated project documents and ~300 byte-mutated bundles: load, data, graph, settings."""
    from engine.data import load_dataset
    from engine.project import load_project, project_bytes
    from engine.run import prepare_run

    torch.set_num_threads(1)
    rng = random.Random(SEED)
    mutator = Mutator(rng)
    base = base_project()
    (tmp_path / "data.csv").write_text(CSV_TEXT)
    csv_base = {**base, "data": {"source": "csv", "path": "data.csv", "target": "label"}}
    good = load_project(_write_json(tmp_path / "good.json", base))
    good_bundle = project_bytes(good)
    outcomes = {"accepted": 0, "refused": 0}
    for i in range(1600):
        case = f"project case {i}"
        path = tmp_path / f"p{i % 8}.layerlab"
        if i % 16 == 15:  # a bundle with a few bytes changed, cut short, or grown
            raw = bytearray(good_bundle)
            for _ in range(rng.randint(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            if rng.random() < 0.3:
                raw = raw[: rng.randrange(len(raw))]
            path.write_bytes(bytes(raw))
        else:
            doc = mutator.mutate(csv_base if i % 5 == 0 else base)
            path = tmp_path / f"p{i % 8}.json"
            try:
                path.write_text(json.dumps(doc))
            except (ValueError, RecursionError):  # a value json itself cannot write
                continue
        try:
            project = load_project(path)
            dataset = load_dataset(project.data, project.normalization, base_dir=str(tmp_path))
            prepare_run(project, dataset, overrides={"epochs": 1})
            outcomes["accepted"] += 1
        except LayerLabError as err:
            _check_refusal(err, case)
            outcomes["refused"] += 1
    assert outcomes["accepted"] > 50 and outcomes["refused"] > 500, outcomes  # the mutations reach both sides


def test_mutated_csv_files_and_specs_in_process(tmp_path):
    """~1,500 mutated CSV files, each loaded with a mutated data spec."""
    from engine.data import load_dataset

    rng = random.Random(SEED + 1)
    outcomes = {"accepted": 0, "refused": 0}
    path = tmp_path / "t.csv"
    for i in range(1500):
        text = mutate_text(rng, CSV_TEXT)
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        spec = mutate_spec(rng, {"source": "csv", "path": str(path), "target": "label"})
        try:
            ds = load_dataset(spec)
            assert ds.task in ("classification", "regression") and ds.task_rule
            outcomes["accepted"] += 1
        except LayerLabError as err:
            _check_refusal(err, f"csv case {i}: {spec}")
            outcomes["refused"] += 1
    assert outcomes["accepted"] > 100 and outcomes["refused"] > 100, outcomes


def _write_json(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _cli_cases(d: Path, n_projects: int, n_csv: int) -> list[dict]:
    rng = random.Random(SEED + 2)
    mutator = Mutator(rng, safe_training=True)
    base = base_project()
    cases = []
    for i in range(n_projects):
        try:
            path = _write_json(d / f"p{i}.json", mutator.mutate(base))
        except (ValueError, RecursionError):
            continue
        cases.append({"argv": ["train", str(path), "--epochs", "1", "--lr", "0.01", "--out", str(d / f"o{i}")]})
    for i in range(n_csv):
        path = d / f"t{i}.csv"
        path.write_bytes(mutate_text(rng, CSV_TEXT).encode("utf-8", "surrogatepass"))
        target = rng.choice(["label", "score", "age", "colour", "nope", "0", ""])
        cases.append({"argv": ["train", "--data", str(path), "--target", target, "--epochs", "1", "--lr", "0.01",
                               "--out", str(d / f"c{i}")]})
    return cases


def test_mutated_projects_and_csvs_through_the_cli(tmp_path):
    """~220 mutated projects and CSVs as ``python main.py train ...``, in two subprocesses."""
    cases = _cli_cases(tmp_path, 160, 60)
    rng = random.Random(SEED + 3)
    rng.shuffle(cases)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAYERLAB_LOG_DIR": str(tmp_path / "logs"),
           "OMP_NUM_THREADS": "1"}
    env.pop("LAYERLAB_MAX_MEMORY", None)
    results = []
    for k in range(2):
        batch = cases[k::2]
        cases_path, results_path = tmp_path / f"cases{k}.json", tmp_path / f"results{k}.json"
        cases_path.write_text(json.dumps(batch))
        proc = subprocess.run([sys.executable, str(ROOT / "tests" / "cli_batch.py"), str(cases_path),
                               str(results_path)], capture_output=True, text=True, env=env, timeout=600)
        done = json.loads(results_path.read_text())["results"] if results_path.exists() else []
        assert proc.returncode == 0 and len(done) == len(batch), (
            f"batch {k} died at {batch[len(done)]['argv'] if len(done) < len(batch) else '?'}: {proc.stderr[-2000:]}")
        results += list(zip(batch, done))
    statuses = {}
    for case, result in results:
        rc, err = result["rc"], result["stderr"]
        where = " ".join(case["argv"])
        assert rc in (0, 2), f"{where}: exit {rc}: {err[-1500:]}"
        assert "Traceback" not in err, f"{where}: {err[-1500:]}"
        if rc == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), f"{where}: {err!r}"
        else:
            assert (Path(case["argv"][case["argv"].index("--out") + 1]) / "model.layerlab").is_file(), where
        statuses[rc] = statuses.get(rc, 0) + 1
    assert statuses.get(0, 0) > 15 and statuses.get(2, 0) > 80, statuses
    assert not (tmp_path / "logs").exists()  # no internal error was logged
