"""engine.data: generators, bundled datasets, splits, normalisation, the public API."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.data import (DATASET_SOURCES, Dataset, Normalization, default_spec, list_builtin_datasets,
                         load_dataset, split_indices)
from engine.errors import DataError

GENERATORS = ["moons", "circles", "spirals", "xor", "blobs", "regression_1d", "sine"]
BUNDLED = ["iris", "wine", "breast_cancer", "digits", "fashion_mnist", "diabetes"]


# ------------------------------------------------------------------ API and catalogue

def test_sources_cover_everything_required():
    for s in GENERATORS + BUNDLED + ["csv", "image_folder", "idx", "npz"]:
        assert s in DATASET_SOURCES
    assert isinstance(DATASET_SOURCES, tuple)


def test_list_builtin_datasets_entries_are_complete_and_loadable():
    entries = list_builtin_datasets()
    assert {e["name"] for e in entries} == set(GENERATORS + BUNDLED)
    for e in entries:
        assert e["task"] in ("classification", "regression")
        assert e["description"].endswith(".") and len(e["description"]) > 10
        assert e["spec"]["source"] == e["name"]
        json.dumps(e)  # goes into project files and the CLI as JSON
    moons = next(e for e in entries if e["name"] == "moons")
    assert moons["params"] == {"n_samples": 1000, "noise": 0.2, "seed": 0}


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(DataError) as e:
        load_dataset({"source": "mnist_from_the_moon"})
    msg = str(e.value)
    assert "mnist_from_the_moon" in msg and "moons" in msg and "csv" in msg and "idx" in msg


def test_spec_must_be_a_dict_and_values_are_checked():
    with pytest.raises(DataError):
        load_dataset("moons")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="n_samples"):
        load_dataset({"source": "moons", "n_samples": "many"})
    with pytest.raises(DataError, match="noise"):
        load_dataset({"source": "moons", "noise": -1})
    with pytest.raises(DataError, match="val_fraction"):
        load_dataset({"source": "moons", "val_fraction": 0.6, "test_fraction": 0.5})


def test_loaded_spec_has_defaults_filled_and_is_json():
    ds = load_dataset({"source": "moons", "n_samples": 200})
    assert ds.spec["n_samples"] == 200 and ds.spec["noise"] == 0.2
    assert ds.spec["val_fraction"] == 0.2 and ds.spec["standardize"] is True
    json.dumps(ds.spec)
    assert default_spec("csv")["categorical"] == "onehot"


# ------------------------------------------------------------------ generators

@pytest.mark.parametrize("source", GENERATORS)
def test_generators_shapes_dtypes_and_determinism(source):
    spec = {"source": source, "n_samples": 300, "seed": 3}
    a, b = load_dataset(spec), load_dataset(spec)
    c = load_dataset({**spec, "seed": 4})
    assert a.n_train + a.n_val + a.n_test == 300
    assert a.x_train.dtype == torch.float32
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)
    if a.task == "classification":
        assert a.y_train.dtype == torch.int64 and a.y_train.shape == (a.n_train,)
        assert a.input_shape == (2,) and len(a.class_names) == a.n_outputs
        assert set(a.y_train.tolist()) == set(range(a.n_outputs))
    else:
        assert source in ("regression_1d", "sine")
        assert a.y_train.dtype == torch.float32 and a.y_train.shape == (a.n_train, 1)
        assert a.input_shape == (1,) and a.n_outputs == 1 and a.class_names == []


@pytest.mark.parametrize("source, n, noise, seed, extra", [
    ("moons", 1000, 0.2, 0, {}), ("moons", 37, 0.0, 5, {}), ("moons", 1001, 0.35, 123, {}),
    ("circles", 1000, 0.1, 0, {"factor": 0.5}), ("circles", 11, 0.0, 3, {"factor": 0.3}),
    ("circles", 999, 0.05, 42, {"factor": 0.8})])
def test_moons_and_circles_are_scikit_learns_points_exactly(source, n, noise, seed, extra):
    """They are generated without importing scikit-learn (it costs about a second when a lab
    opens), but a spec must keep giving the points it always gave."""
    from sklearn import datasets as skd

    from engine.data import generators

    x, y, _, _ = getattr(generators, source)({"n_samples": n, "noise": noise, "seed": seed, **extra})
    make = skd.make_moons if source == "moons" else skd.make_circles
    rx, ry = make(n_samples=n, noise=noise, random_state=seed, **extra)
    assert np.array_equal(y, ry) and np.array_equal(x, rx)


def test_noise_changes_the_data():
    quiet = load_dataset({"source": "sine", "noise": 0.0, "standardize": False})
    x, y = quiet.x_train[:, 0], quiet.y_train[:, 0]
    assert torch.allclose(y, torch.sin(x), atol=1e-5)
    noisy = load_dataset({"source": "sine", "noise": 0.5, "standardize": False})
    assert (noisy.y_train[:, 0] - torch.sin(noisy.x_train[:, 0])).std() > 0.3


@pytest.mark.parametrize("k", [2, 3, 5])
def test_spirals_and_blobs_class_count(k):
    for source in ("spirals", "blobs"):
        ds = load_dataset({"source": source, "n_classes": k, "n_samples": 500})
        assert ds.n_outputs == k
        counts = ds.summary()["class_counts"]["train"]
        assert len(counts) == k and min(counts.values()) > 0


def test_xor_labels_follow_quadrants_without_noise():
    ds = load_dataset({"source": "xor", "noise": 0.0, "standardize": False, "val_fraction": 0.0})
    x, y = ds.x_train, ds.y_train
    expected = ((x[:, 0] > 0) != (x[:, 1] > 0)).long()
    assert torch.equal(y, expected)


def test_xor_with_four_samples_is_its_truth_table():
    spec = {"source": "xor", "n_samples": 4, "noise": 0.0, "standardize": False, "val_fraction": 0.0,
            "test_fraction": 0.0}
    ds = load_dataset(spec)
    table = {(float(a), float(b)): int(c) for (a, b), c in zip(ds.x_train.tolist(), ds.y_train.tolist())}
    assert table == {(-1.0, -1.0): 0, (-1.0, 1.0): 1, (1.0, -1.0): 1, (1.0, 1.0): 0}
    six = load_dataset({**spec, "n_samples": 6})  # under 10: the corners again, in turn
    assert {tuple(r) for r in six.x_train.tolist()} == set(table) and six.n_train == 6
    # many samples: as before (uniform points), so saved projects keep their data
    assert load_dataset({**spec, "n_samples": 10}).x_train.abs().max() < 1.0
    with pytest.raises(DataError, match="'n_samples' must be at least 4, got 3"):
        load_dataset({**spec, "n_samples": 3})
    with pytest.raises(DataError, match="at least 10"):  # the other generators keep their minimum
        load_dataset({"source": "moons", "n_samples": 4})


# ------------------------------------------------------------------ bundled

def test_digits_are_1x8x8_images_with_10_classes():
    ds = load_dataset({"source": "digits"})
    assert ds.input_shape == (1, 8, 8) and ds.x_train.shape[1:] == (1, 8, 8)
    assert ds.n_outputs == 10 and ds.class_names == [str(i) for i in range(10)]
    assert ds.is_image and ds.feature_names == []
    assert len(ds.normalization.mean) == 1  # one channel
    raw = load_dataset({"source": "digits", "standardize": False})
    assert raw.x_train.min() >= 0 and raw.x_train.max() <= 1  # pixels scaled to [0, 1]


def test_fashion_mnist_ships_10000_real_28x28_images_in_10_named_classes():
    import gzip
    from importlib import resources

    ds = load_dataset({"source": "fashion_mnist", "standardize": False, "val_fraction": 0.1,
                       "test_fraction": 0.2})
    assert ds.input_shape == (1, 28, 28) and ds.is_image and ds.feature_names == []
    assert (ds.n_train, ds.n_val, ds.n_test) == (7000, 1000, 2000)
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot" and ds.n_outputs == 10
    assert ds.x_train.dtype == torch.float32 and ds.x_train.min() == 0 and ds.x_train.max() == 1
    # stratified: every class keeps its tenth of each split (the t10k set has 1,000 per class)
    assert torch.bincount(ds.y_test, minlength=10).tolist() == [200] * 10
    # the pixels are the file's bytes / 255, read here without the engine's IDX reader
    folder = resources.files("resources").joinpath("datasets", "fashion-mnist")
    raw = gzip.decompress(folder.joinpath("t10k-images-idx3-ubyte.gz").read_bytes())
    labels = np.frombuffer(gzip.decompress(folder.joinpath("t10k-labels-idx1-ubyte.gz").read_bytes()),
                           np.uint8, offset=8)
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(10000, 28 * 28)
    all_x = torch.cat([ds.x_train, ds.x_val, ds.x_test]).reshape(10000, -1).numpy()
    all_y = torch.cat([ds.y_train, ds.y_val, ds.y_test]).numpy()
    assert np.abs(all_x * 255 - np.round(all_x * 255)).max() < 1e-4  # exact multiples of 1/255
    ours = sorted((int(c), row.tobytes()) for c, row in zip(all_y, np.round(all_x * 255).astype(np.uint8)))
    theirs = sorted((int(c), row.tobytes()) for c, row in zip(labels, images))
    assert ours == theirs  # the same 10,000 (label, image) pairs, shuffled into the splits
    assert folder.joinpath("LICENSE.txt").read_text(encoding="utf-8").startswith("The MIT License")


def test_diabetes_is_regression_in_real_units():
    ds = load_dataset({"source": "diabetes"})
    assert ds.task == "regression" and ds.n_outputs == 1
    assert ds.y_train.dtype == torch.float32 and ds.y_train.shape == (ds.n_train, 1)
    assert ds.y_train.min() >= 25 and ds.y_train.max() <= 346  # raw targets, not rescaled
    assert "age" in ds.feature_names and ds.input_shape == (10,)
    ages = ds.normalization.invert(ds.x_train)[:, ds.feature_names.index("age")]
    assert 15 < ages.mean() < 70  # scaled=False: age in years


@pytest.mark.parametrize("name,n,k,f", [("iris", 150, 3, 4), ("wine", 178, 3, 13),
                                         ("breast_cancer", 569, 2, 30)])
def test_bundled_classification(name, n, k, f):
    ds = load_dataset({"source": name, "test_fraction": 0.1})
    assert ds.n_train + ds.n_val + ds.n_test == n
    assert ds.n_outputs == k and ds.input_shape == (f,) and len(ds.feature_names) == f


# ------------------------------------------------------------------ splits

def test_split_fractions_and_disjointness():
    tr, va, te = split_indices(1000, 0.2, 0.1, seed=0)
    assert (len(tr), len(va), len(te)) == (700, 200, 100)
    assert len(set(tr) | set(va) | set(te)) == 1000
    again = split_indices(1000, 0.2, 0.1, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))
    assert not np.array_equal(tr, split_indices(1000, 0.2, 0.1, seed=1)[0])


def test_stratified_split_keeps_class_balance():
    labels = np.array([0] * 900 + [1] * 100)
    tr, va, te = split_indices(1000, 0.2, 0.1, seed=5, labels=labels)
    assert (len(tr), len(va), len(te)) == (700, 200, 100)
    assert (labels[va] == 1).sum() == 20 and (labels[te] == 1).sum() == 10
    assert (labels[tr] == 1).sum() == 70
    assert len(set(tr) | set(va) | set(te)) == 1000


def test_stratification_in_load_dataset_and_can_be_turned_off():
    ds = load_dataset({"source": "iris", "val_fraction": 0.2, "split_seed": 7})
    assert set(ds.summary()["class_counts"]["val"].values()) == {10}
    seeds = [load_dataset({"source": "iris", "stratify": False, "split_seed": s}) for s in range(6)]
    val_counts = {tuple(d.summary()["class_counts"]["val"].values()) for d in seeds}
    assert val_counts != {(10, 10, 10)}  # unstratified splits wander


def test_small_fractions_still_get_a_row_and_train_is_never_empty():
    tr, va, te = split_indices(3, 0.01, 0.01, seed=0)
    assert len(tr) >= 1 and len(va) == 1 and len(te) == 1
    tr, va, te = split_indices(2, 0.5, 0.4, seed=0)
    assert len(tr) == 1 and len(va) + len(te) == 1


def test_empty_test_split_has_right_shape():
    ds = load_dataset({"source": "digits", "test_fraction": 0.0})
    assert ds.x_test.shape == (0, 1, 8, 8) and ds.y_test.shape == (0,)
    assert ds.x_test.dtype == torch.float32 and ds.y_test.dtype == torch.int64
    reg = load_dataset({"source": "sine"})
    assert reg.y_test.shape == (0, 1)


def test_split_seed_changes_split_but_not_data():
    a = load_dataset({"source": "moons", "split_seed": 0, "standardize": False})
    b = load_dataset({"source": "moons", "split_seed": 1, "standardize": False})
    all_a = torch.cat([a.x_train, a.x_val]).sort(dim=0).values
    all_b = torch.cat([b.x_train, b.x_val]).sort(dim=0).values
    assert torch.equal(all_a, all_b) and not torch.equal(a.x_val, b.x_val)


# ------------------------------------------------------------------ normalisation

def test_normalisation_fitted_on_train_only():
    ds = load_dataset({"source": "wine", "val_fraction": 0.3, "test_fraction": 0.2})
    assert torch.allclose(ds.x_train.mean(0), torch.zeros(13), atol=1e-5)
    assert torch.allclose(ds.x_train.std(0, unbiased=False), torch.ones(13), atol=1e-4)
    raw = load_dataset({"source": "wine", "val_fraction": 0.3, "test_fraction": 0.2, "standardize": False})
    # same split: val transformed with the TRAIN statistics, not its own
    mean = torch.tensor(ds.normalization.mean, dtype=torch.float32)
    std = torch.tensor(ds.normalization.std, dtype=torch.float32)
    assert torch.allclose(mean, raw.x_train.double().mean(0).float(), rtol=1e-5)
    assert torch.allclose(ds.x_val, (raw.x_val - mean) / std, atol=1e-4)
    assert torch.allclose(ds.x_test, (raw.x_test - mean) / std, atol=1e-4)
    assert not torch.allclose(ds.x_val.mean(0), torch.zeros(13), atol=1e-3)


def test_saved_normalisation_is_applied_not_refitted():
    first = load_dataset({"source": "iris"})
    saved = Normalization.from_dict(json.loads(json.dumps(first.normalization.to_dict())))
    other = load_dataset({"source": "iris", "split_seed": 9}, normalization=saved)
    assert other.normalization.to_dict() == first.normalization.to_dict()
    assert not torch.allclose(other.x_train.mean(0), torch.zeros(4), atol=1e-4)
    also = load_dataset({"source": "iris", "split_seed": 9}, normalization=first.normalization.to_dict())
    assert torch.equal(also.x_train, other.x_train)


def test_saved_normalisation_of_wrong_width_is_a_clear_error():
    with pytest.raises(DataError, match="normalisation"):
        load_dataset({"source": "iris"}, normalization=Normalization([0.0] * 13, [1.0] * 13))
    with pytest.raises(DataError):
        Normalization.from_dict({"mean": [1.0]})


def test_zero_std_does_not_divide_by_zero():
    norm = Normalization.fit(np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]]))
    assert norm.std[1] == 0.0
    out = norm.apply(torch.tensor([[3.0, 5.0], [3.0, 7.0]]))
    assert torch.isfinite(out).all()
    assert torch.allclose(out[:, 1], torch.tensor([0.0, 2.0]))
    assert torch.allclose(norm.invert(out), torch.tensor([[3.0, 5.0], [3.0, 7.0]]))


def test_per_channel_normalisation_broadcasts_over_images():
    x = np.zeros((4, 3, 2, 2))
    x[:, 1] = 10.0
    x[:, 2] = np.arange(16).reshape(4, 2, 2)
    norm = Normalization.fit(x)
    assert norm.mean == pytest.approx([0.0, 10.0, 7.5])
    out = norm.apply(torch.tensor(x, dtype=torch.float32))
    assert out.shape == (4, 3, 2, 2)
    assert torch.allclose(out[:, 2].mean(), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(out[:, 2].std(unbiased=False), torch.tensor(1.0), atol=1e-5)


def test_standardize_false_gives_no_normalization():
    ds = load_dataset({"source": "moons", "standardize": False})
    assert ds.normalization is None


# ------------------------------------------------------------------ Dataset object

def test_to_returns_a_new_dataset_and_summary_is_json():
    ds = load_dataset({"source": "iris", "test_fraction": 0.2})
    moved = ds.to("cpu")
    assert isinstance(moved, Dataset) and moved is not ds
    assert moved.x_train.device.type == "cpu" and moved.class_names == ds.class_names
    s = ds.summary()
    json.dumps(s)
    assert s["counts"] == {"train": ds.n_train, "val": ds.n_val, "test": ds.n_test}
    assert sum(s["class_counts"]["train"].values()) == ds.n_train
    assert s["n_features"] == 4
    x, y = ds.split("val")
    assert x is ds.x_val and y is ds.y_val
    with pytest.raises(DataError):
        ds.split("holdout")


def test_regression_summary_has_target_stats():
    s = load_dataset({"source": "regression_1d"}).summary()
    assert "class_counts" not in s and len(s["target_stats"]["mean"]) == 1
