"""Small real datasets that ship inside scikit-learn, so they work offline."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def _iris():
    from sklearn import datasets as skd  # lazy: sklearn adds ~2 s to engine import
    b = skd.load_iris()
    return b.data, b.target, list(b.target_names), list(b.feature_names)


def _wine():
    from sklearn import datasets as skd  # lazy: sklearn adds ~2 s to engine import
    b = skd.load_wine()
    return b.data, b.target, list(b.target_names), list(b.feature_names)


def _breast_cancer():
    from sklearn import datasets as skd  # lazy: sklearn adds ~2 s to engine import
    b = skd.load_breast_cancer()
    return b.data, b.target, list(b.target_names), list(b.feature_names)


def _digits():
    from sklearn import datasets as skd  # lazy: sklearn adds ~2 s to engine import
    b = skd.load_digits()
    # served as 1x8x8 images scaled to [0, 1] (pixels are 0..16) so conv nets apply directly
    x = (b.data / 16.0).reshape(-1, 1, 8, 8)
    return x, b.target, [str(c) for c in b.target_names], []


def _diabetes():
    from sklearn import datasets as skd  # lazy: sklearn adds ~2 s to engine import
    # scaled=False: keep age in years etc. so explanations read in real units;
    # our own standardisation (fitted on train only) does the scaling.
    b = skd.load_diabetes(scaled=False)
    return b.data, b.target.reshape(-1, 1), None, list(b.feature_names)


@dataclass(frozen=True)
class BundledInfo:
    name: str
    task: str
    description: str
    load: Callable


BUNDLED: dict[str, BundledInfo] = {b.name: b for b in (
    BundledInfo("iris", "classification", "150 iris flowers, 4 measurements, 3 species.", _iris),
    BundledInfo("wine", "classification", "178 wines, 13 chemical measurements, 3 cultivars.", _wine),
    BundledInfo("breast_cancer", "classification",
                "569 tumour biopsies, 30 cell measurements, malignant or benign.", _breast_cancer),
    BundledInfo("digits", "classification",
                "1797 handwritten digits as 1x8x8 grey images, 10 classes.", _digits),
    BundledInfo("diabetes", "regression",
                "442 diabetes patients, 10 baseline measurements, disease progression after a year.",
                _diabetes),
)}


def load_bundled(name: str):
    """``(x, y, class_names, feature_names)`` of a bundled dataset."""
    x, y, class_names, feature_names = BUNDLED[name].load()
    return np.asarray(x, dtype=np.float32), np.asarray(y), class_names, feature_names
