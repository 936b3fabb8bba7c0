"""``layerlab explain``: an attribution map for one sample of a trained project, or (``--method
permutation``) the permutation importance of a tabular model's features.

    python main.py explain run/model.layerlab --sample 3 --method ig --out ig.npy
    python main.py explain run/model.layerlab --sample 3 --method gradcam --layer conv1 --out cam.png
    python main.py explain run/model.layerlab --method permutation --out importance.csv --json
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from engine.cli_support import EXIT_OK, BadInput, non_negative_int

HELP = "explain a trained project's prediction for one sample (attribution map), or its features (permutation)"
SPLITS = ("test", "val", "train")
#: the short names the issue's command line uses, then the engine's own names of the other methods
CLI_METHODS = ("saliency", "ig", "smoothgrad", "gradcam", "occlusion", "gradshap", "kernelshap", "lime",
               "permutation", "input_x_gradient", "guided_gradcam", "integrated_gradients", "gradient_shap",
               "kernel_shap")
PERMUTATION_OPTIONS = {"n_repeats": int, "seed": int}
MAP_SUFFIXES = (".npy", ".png", ".json")
IMPORTANCE_SUFFIXES = (".json", ".csv", ".npy")
PNG_SIDE = 224  # small images are enlarged (without smoothing) to about this many pixels


def add_arguments(p) -> None:
    p.add_argument("project", help="a trained .layerlab bundle (python main.py train writes one)")
    p.add_argument("--sample", type=non_negative_int, help="the sample's index in the split (0-based)")
    p.add_argument("--split", choices=SPLITS, default="test",
                   help="where the sample comes from (default: test, or validation when there is no test split)")
    p.add_argument("--method", required=True, choices=CLI_METHODS, metavar="METHOD",
                   help="saliency | ig | smoothgrad | gradcam | occlusion | gradshap | kernelshap | lime | "
                        "permutation (also input_x_gradient, guided_gradcam)")
    p.add_argument("--target", help="the class (index or name) or output to explain (default: the prediction)")
    p.add_argument("--layer", help="Grad-CAM's graph node (default: the last one with feature maps)")
    p.add_argument("--epoch", type=non_negative_int, help="the weights the timeline kept for this epoch")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="a method option, e.g. n_steps=100 or baseline=mean (repeatable)")
    p.add_argument("--opacity", type=float, default=0.6, help="PNG: how strongly the map covers the image (0..1)")
    p.add_argument("--out", required=True, help="attribution: .npy (raw, the input's shape), .png (overlay) or "
                                                ".json; permutation: .json, .csv or .npy")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def parse_options(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise BadInput(f"--option {pair!r}: write it as NAME=VALUE, e.g. --option n_steps=100.")
        out[name.strip()] = value.strip()
    return out


def check_out(path: str, allowed: tuple[str, ...], what: str) -> Path:
    out = Path(path)
    if out.suffix.lower() not in allowed:
        raise BadInput(f"--out {path}: {what} is written as {', '.join(allowed)}; choose one of those endings.")
    if not out.parent.exists():
        raise BadInput(f"--out {path}: the folder {out.parent} does not exist.")
    if out.is_dir():
        raise BadInput(f"--out {path}: is a folder; give a file name.")
    return out


def run(args) -> int:
    from engine.explain.attribution import get_method

    options = parse_options(args.option)
    if not 0.0 <= args.opacity <= 1.0:
        raise BadInput(f"--opacity must lie in 0..1, got {args.opacity}.")
    if args.method == "permutation":
        for flag, value in (("--sample", args.sample), ("--target", args.target), ("--layer", args.layer)):
            if value is not None:
                raise BadInput(f"{flag} is not used by permutation importance, which scores the whole split; "
                               "leave it out.")
        out = check_out(args.out, IMPORTANCE_SUFFIXES, "permutation importance")
        return _permutation(args, out, options)
    method = get_method(args.method)
    if args.sample is None:
        raise BadInput("Say which sample to explain with --sample I (0-based, in the test split, or the "
                       "validation split when the data has no test split).")
    if args.layer is not None and not method.needs_layer:
        raise BadInput(f"--layer is for Grad-CAM and Guided Grad-CAM; {method.title} does not use a layer.")
    out = check_out(args.out, MAP_SUFFIXES, "an attribution map")
    return _attribution(args, method, out, options)


def _ready(args):
    from engine.commands.evaluate import ready_project

    return ready_project(args.project, args.epoch)


def _permutation(args, out: Path, options: dict) -> int:
    from engine.explain import permutation_importance

    kwargs = {}
    for name, value in options.items():
        if name not in PERMUTATION_OPTIONS:
            raise BadInput(f"Permutation importance has no option '{name}'; its options are: "
                           f"{', '.join(PERMUTATION_OPTIONS)}.")
        try:
            kwargs[name] = PERMUTATION_OPTIONS[name](value)
        except ValueError:
            raise BadInput(f"--option {name}={value}: expected a whole number.") from None
    _, ready = _ready(args)
    result = permutation_importance(ready, split=args.split, **kwargs)
    if result.note:
        sys.stderr.write(result.note + "\n")
    features = result.features()
    if out.suffix.lower() == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["feature", "importance", "std"])
        w.writerows([f["name"], f"{f['importance']:.6g}", f"{f['std']:.6g}"] for f in features)
        data = buf.getvalue().encode("utf-8")
    elif out.suffix.lower() == ".npy":
        data = _npy(result.importance)  # in input order, as the model sees the columns
    else:
        data = (json.dumps(result.to_json(), indent=1) + "\n").encode("utf-8")
    _write(out, data)
    if args.json:
        print(json.dumps({"features": features, "split_used": result.split_used, "scoring": result.scoring,
                          "baseline_score": result.baseline_score, "out": str(out)}))
    else:
        width = max(7, *(len(f["name"]) for f in features))
        sys.stdout.write(f"Permutation importance on the {result.split_used} split ({result.scoring} lost when a "
                         f"column is shuffled; unshuffled {result.scoring} {result.baseline_score:.4f}):\n")
        for f in features:
            sys.stdout.write(f"  {f['name']:<{width}}  {f['importance']:+.4f} ± {f['std']:.4f}\n")
        sys.stderr.write(f"Saved {out}\n")
    return EXIT_OK


def _target(text: str | None, class_names: list[str]):
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    if text in class_names:
        return class_names.index(text)
    known = ", ".join(class_names) if class_names else "this model's outputs are numbered 0, 1, ..."
    raise BadInput(f"--target {text!r} is neither a class index nor a class name ({known}).")


def _attribution(args, method, out: Path, options: dict) -> int:
    import numpy as np
    import torch

    from engine.explain import attribute
    from engine.explain.base import class_probabilities
    from engine.explain.evaluation import SPLIT_TITLES, choose_split

    _, ready = _ready(args)
    ds = ready.dataset
    used, note = choose_split(ds, args.split)
    x_split, y_split = ds.split(used)
    n = int(x_split.shape[0])
    if args.sample >= n:
        raise BadInput(f"--sample {args.sample} is out of range: the {SPLIT_TITLES[used]} split has {n} samples "
                       f"(0..{n - 1}).")
    if out.suffix.lower() == ".png" and len(ds.input_shape) != 3:
        raise BadInput(f"--out {out}: a .png overlay is for images, and this data has shape {tuple(ds.input_shape)}; "
                       "write .npy or .json instead.")
    x = x_split[args.sample]
    target = _target(args.target, list(ds.class_names))
    result = attribute(ready, x, target, method.name, layer=args.layer, progress=_progress_line(), **options)
    if sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 40 + "\r")

    if out.suffix.lower() == ".npy":
        data = _npy(result.values)
    elif out.suffix.lower() == ".png":
        data = _png(_display_image(ds, x), result.values, args.opacity)
    else:
        data = (json.dumps(result.to_json()) + "\n").encode("utf-8")
    _write(out, data)
    if note:  # only once it worked: a refusal stays one line
        sys.stderr.write(note + "\n")

    with torch.no_grad():
        out_row = ready.module(x.unsqueeze(0).to(ready.device)).float().cpu()
    names = list(ds.class_names)
    summary = {"method": result.method, "sample": args.sample, "split_used": used, "target": result.target,
               "shape": list(result.values.shape), "sum": float(np.sum(result.values)), "layer": result.layer,
               "delta": result.delta, "relative_delta": result.relative_delta, "out": str(out)}
    if ds.task == "classification":
        probs = class_probabilities(out_row)[0]
        predicted = int(probs.argmax())
        truth = int(y_split[args.sample])
        summary.update(target_name=names[result.target] if result.target < len(names) else None,
                       true=truth, true_name=names[truth], predicted=predicted, predicted_name=names[predicted],
                       probability=float(probs[result.target]) if result.target < len(probs) else None)
    if len(ds.input_shape) == 1:
        summary["features"] = result.by_feature()
    if args.json:
        print(json.dumps(summary))
    else:
        line = f"{method.title} of {SPLIT_TITLES[used]} sample {args.sample}"
        if ds.task == "classification":
            line += (f" (true: {summary['true_name']}, predicted: {summary['predicted_name']}; explained: "
                     f"{summary['target_name']}, p = {summary['probability']:.3f})")
        if result.delta is not None:
            line += f"; completeness delta {result.delta:+.4g} ({100 * result.relative_delta:.2f} %)"
        sys.stdout.write(line + "\n")
        for f in summary.get("features", []):
            sys.stdout.write(f"  {f['name']}: {f['value']:+.4g}\n")
        sys.stderr.write(f"Saved {out}\n")
    return EXIT_OK


def _display_image(ds, x):
    """The sample as the person knows it: back in the data's own units when it was standardised."""
    if ds.normalization is not None:
        x = ds.normalization.invert(x.unsqueeze(0))[0]
    return x.detach().cpu().numpy()


def _png(image, values, opacity: float) -> bytes:
    from PIL import Image

    from engine.explain import render_overlay

    h, w = image.shape[-2:]
    scale = max(1, PNG_SIDE // max(h, w))
    in_unit_range = float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    rgb = render_overlay(image, values, opacity, value_range=(0.0, 1.0) if in_unit_range else None, scale=scale)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _npy(array) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    from engine.project import atomic_write_bytes

    atomic_write_bytes(path, data)


def _progress_line():
    if not sys.stderr.isatty():
        return None

    def show(fraction: float) -> None:
        sys.stderr.write(f"\rexplaining {100 * fraction:5.1f} %")
        sys.stderr.flush()

    return show
