"""Small real datasets that work offline: those that ship inside scikit-learn, and the
Fashion-MNIST test set that ships inside LayerLab (resources/datasets/fashion-mnist)."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Callable

import numpy as np

from engine.errors import DataError


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


FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot"]
_FASHION_DIR = ("datasets", "fashion-mnist")
_FASHION_IMAGES, _FASHION_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def _fashion_mnist():
    # read_idx checks each file's byte count against its header before it allocates the array
    from engine.data.idx import read_idx

    folder = resources.files("resources").joinpath(*_FASHION_DIR)
    with resources.as_file(folder.joinpath(_FASHION_IMAGES)) as images_path, \
            resources.as_file(folder.joinpath(_FASHION_LABELS)) as labels_path:
        images = read_idx(str(images_path))
        labels = read_idx(str(labels_path))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],) \
            or images.dtype != np.uint8 or labels.max(initial=0) >= len(FASHION_MNIST_CLASSES):
        raise DataError("The bundled Fashion-MNIST files are damaged (unexpected shapes or labels); "
                        "reinstall LayerLab.")
    x = images.reshape(-1, 1, 28, 28).astype(np.float32)
    x *= np.float32(1 / 255)  # pixels -> [0, 1], in place: no second 31 MB copy
    return x, labels.astype(np.int64), list(FASHION_MNIST_CLASSES), []


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
    BundledInfo("fashion_mnist", "classification",
                "10,000 Fashion-MNIST test images (Zalando, MIT licence) as 1x28x28 grey images, 10 classes.",
                _fashion_mnist),
    BundledInfo("diabetes", "regression",
                "442 diabetes patients, 10 baseline measurements, disease progression after a year.",
                _diabetes),
)}


def load_bundled(name: str):
    """``(x, y, class_names, feature_names)`` of a bundled dataset."""
    x, y, class_names, feature_names = BUNDLED[name].load()
    return np.asarray(x, dtype=np.float32), np.asarray(y), class_names, feature_names
