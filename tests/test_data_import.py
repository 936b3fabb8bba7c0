"""engine.data importers: CSV, IDX (MNIST format), .npz and image folders."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from engine.data import load_dataset, read_idx
from engine.data.csv_import import detect_header
from engine.errors import DataError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def csv_spec(path, **kw):
    return {"source": "csv", "path": str(path), "val_fraction": 0.0, "standardize": False, **kw}


# ------------------------------------------------------------------ CSV

def test_csv_with_header_and_string_target(tmp_path):
    p = write(tmp_path / "flowers.csv",
              "length,width,species\n1.0,2.0,setosa\n1.5,2.5,virginica\n1.2,2.1,setosa\n"
              "3.0,1.0,versicolor\n2.0,2.2,virginica\n")
    ds = load_dataset(csv_spec(p, target="species"))
    assert ds.task == "classification"
    assert ds.class_names == ["setosa", "versicolor", "virginica"]  # sorted
    assert ds.feature_names == ["length", "width"] and ds.input_shape == (2,)
    rows = {tuple(x.tolist()): int(y) for x, y in zip(ds.x_train, ds.y_train)}
    assert rows[(3.0, 1.0)] == 1 and rows[(1.5, 2.5)] == 2 and rows[(1.0, 2.0)] == 0
    assert ds.name == "flowers.csv"


def test_csv_without_header_names_columns_and_takes_target_by_index(tmp_path):
    p = write(tmp_path / "raw.csv", "1,2,0.5\n3,4,1.5\n5,6,2.25\n7,8,3.125\n")
    ds = load_dataset(csv_spec(p, target=0))
    assert ds.feature_names == ["col1", "col2"]
    assert ds.task == "classification"  # integer target
    ds2 = load_dataset(csv_spec(p))  # default target: last column, float -> regression
    assert ds2.task == "regression" and ds2.feature_names == ["col0", "col1"]
    assert sorted(ds2.y_train[:, 0].tolist()) == [0.5, 1.5, 2.25, 3.125]
    assert load_dataset(csv_spec(p, target="col2")).task == "regression"


def test_header_detection_both_ways():
    assert detect_header([["age", "bmi", "y"], ["31", "22.5", "1"], ["40", "30.1", "0"]])
    assert not detect_header([["31", "22.5", "1"], ["40", "30.1", "0"], ["50", "27", "1"]])
    # a text feature column does not fool it: the numeric columns decide
    assert detect_header([["colour", "size"], ["red", "1"], ["blue", "2"]])
    assert not detect_header([["red", "1"], ["blue", "2"], ["red", "3"]])
    # only text columns: a header row does not repeat among the values below it
    assert detect_header([["colour", "label"], ["red", "a"], ["red", "b"]])
    assert not detect_header([["red", "a"], ["blue", "b"], ["red", "a"]])


def test_header_override(tmp_path):
    p = write(tmp_path / "h.csv", "10,20,1\n1,2,0\n3,4,1\n5,6,0\n")
    assert load_dataset(csv_spec(p, header=True)).feature_names == ["10", "20"]
    with pytest.raises(DataError, match="header"):
        load_dataset(csv_spec(p, header="maybe"))


def test_csv_semicolon_delimiter_is_sniffed(tmp_path):
    p = write(tmp_path / "eu.csv", "a;b;y\n1.5;2;x\n3;4;z\n5;6.5;x\n7;8;z\n")
    ds = load_dataset(csv_spec(p, target="y"))
    assert ds.feature_names == ["a", "b"] and ds.class_names == ["x", "z"]


def test_decimal_comma_files_are_read_as_numbers(tmp_path):
    """1,5 means 1.5 in a ;-delimited European file: numbers, not 18 one-hot categories."""
    rows = ["a;b;y"] + [f"{i},5;{10 - i},25;{'x' if i % 2 else 'z'}" for i in range(8)]
    p = write(tmp_path / "eu.csv", "\n".join(rows) + "\n")
    ds = load_dataset(csv_spec(p, target="y", standardize=False, val_fraction=0.0))
    assert ds.feature_names == ["a", "b"]
    got = sorted(map(tuple, ds.x_train.tolist()))
    assert got == sorted((i + 0.5, 10 - i + 0.25) for i in range(8))
    # said explicitly, and refused where the choice makes no sense
    same = load_dataset(csv_spec(p, target="y", standardize=False, val_fraction=0.0, decimal=","))
    assert sorted(map(tuple, same.x_train.tolist())) == got
    with pytest.raises(DataError, match="decimal"):
        load_dataset(csv_spec(p, target="y", decimal=";"))


def test_a_comma_delimited_file_keeps_its_commas_as_delimiters(tmp_path):
    p = write(tmp_path / "us.csv", "a,b,y\n1,5,x\n2,6,z\n3,7,x\n4,8,z\n")
    ds = load_dataset(csv_spec(p, target="y", standardize=False, val_fraction=0.0))
    assert ds.feature_names == ["a", "b"] and sorted(ds.x_train[:, 0].tolist()) == [1, 2, 3, 4]


def test_categorical_column_is_one_hot_encoded(tmp_path):
    p = write(tmp_path / "c.csv",
              "size,colour,y\n1,red,0\n2,blue,1\n3,green,0\n4,red,1\n5,blue,0\n")
    ds = load_dataset(csv_spec(p, target="y"))
    assert ds.feature_names == ["size", "colour=blue", "colour=green", "colour=red"]
    by_size = {int(x[0]): x[1:].tolist() for x in ds.x_train}
    assert by_size[1] == [0, 0, 1] and by_size[2] == [1, 0, 0] and by_size[3] == [0, 1, 0]


def test_categorical_reject_mode_names_the_column(tmp_path):
    p = write(tmp_path / "c.csv", "size,colour,y\n1,red,0\n2,blue,1\n3,green,0\n")
    with pytest.raises(DataError) as e:
        load_dataset(csv_spec(p, target="y", categorical="reject"))
    assert "'colour'" in str(e.value) and "'red'" in str(e.value) and "row 2" in str(e.value)


def test_text_typo_in_a_numeric_column_is_pointed_at(tmp_path):
    p = write(tmp_path / "t.csv", "age,y\n31,0\n40,1\nforty,0\n22,1\n35,0\n")
    with pytest.raises(DataError) as e:
        load_dataset(csv_spec(p, target="y"))
    assert "'age'" in str(e.value) and "'forty' at row 4" in str(e.value)


def test_missing_values_are_reported_by_row_and_column(tmp_path):
    lines = ["age,bmi,y"] + [f"{20 + i},{20.5 + i},{i % 2}" for i in range(30)]
    lines[13] = "NA,22.0,1"       # file row 14
    lines[19] = "33,,0"           # file row 20
    lines[21] = "?,nan,1"         # file row 22, two cells
    lines[24] = "40,21,"          # file row 25, target missing
    p = write(tmp_path / "data.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        load_dataset(csv_spec(p, target="y"))
    msg = str(e.value)
    assert "data.csv: missing values at row 14 column 'age', row 20 column 'bmi'" in msg
    assert "row 22 column 'age', row 22 column 'bmi', row 25 column 'y'" in msg
    assert "fill or drop" in msg


def test_missing_values_beyond_five_are_counted(tmp_path):
    lines = ["a,y"] + ["," + str(i % 2) for i in range(8)] + ["1,0", "2,1"]
    p = write(tmp_path / "m.csv", "\n".join(lines))
    with pytest.raises(DataError, match=r"\(and 3 more\)"):
        load_dataset(csv_spec(p, target="y"))


def test_unknown_target_names_available_columns(tmp_path):
    p = write(tmp_path / "d.csv", "age,bmi,outcome\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError) as e:
        load_dataset(csv_spec(p, target="label"))
    assert "'label'" in str(e.value) and "age, bmi, outcome" in str(e.value)
    # case-insensitive match is accepted
    assert load_dataset(csv_spec(p, target="Outcome")).class_names == ["0", "1"]


def test_target_task_inference_and_override(tmp_path):
    many = "\n".join(["x,y"] + [f"{i},{i * 0.37:.3f}" for i in range(60)])
    p = write(tmp_path / "r.csv", many)
    assert load_dataset(csv_spec(p, target="y")).task == "regression"
    ints = write(tmp_path / "i.csv", "x,y\n0.1,3\n0.2,1\n0.3,3\n0.4,2\n")
    ds = load_dataset(csv_spec(ints, target="y"))
    assert ds.task == "classification" and ds.class_names == ["1", "2", "3"]
    assert load_dataset(csv_spec(ints, target="y", task="regression")).task == "regression"
    text = write(tmp_path / "s.csv", "x,y\n1,a\n2,b\n")
    with pytest.raises(DataError, match="regression"):
        load_dataset(csv_spec(text, target="y", task="regression"))


def test_single_class_target_is_rejected(tmp_path):
    p = write(tmp_path / "one.csv", "x,y\n1,a\n2,a\n3,a\n")
    with pytest.raises(DataError, match="only one value"):
        load_dataset(csv_spec(p, target="y"))


def test_ragged_rows_and_missing_file_are_clear(tmp_path):
    p = write(tmp_path / "r.csv", "a,b,y\n1,2,0\n3,4\n5,6,1\n")
    with pytest.raises(DataError, match="row 3 has 2 fields"):
        load_dataset(csv_spec(p))
    with pytest.raises(DataError, match="not found"):
        load_dataset(csv_spec(tmp_path / "nope.csv"))
    (tmp_path / "bin.csv").write_bytes(b"\x00\x01\x02abc")
    with pytest.raises(DataError, match="binary"):
        load_dataset(csv_spec(tmp_path / "bin.csv"))


def test_ignore_columns_and_relative_path(tmp_path):
    write(tmp_path / "ids.csv", "id,x,y\nA7,1,0\nB2,2,1\nC9,3,0\nD4,4,1\n")
    ds = load_dataset({"source": "csv", "path": "ids.csv", "target": "y", "ignore": ["id"],
                       "val_fraction": 0.0}, base_dir=str(tmp_path))
    assert ds.feature_names == ["x"]


def test_csv_standardisation_and_split(tmp_path):
    rows = "\n".join(["a,b,y"] + [f"{i},{100 + 3 * i},{i % 2}" for i in range(100)])
    p = write(tmp_path / "s.csv", rows)
    ds = load_dataset({"source": "csv", "path": p, "target": "y", "test_fraction": 0.1})
    assert (ds.n_train, ds.n_val, ds.n_test) == (70, 20, 10)
    assert torch.allclose(ds.x_train.mean(0), torch.zeros(2), atol=1e-5)


# ------------------------------------------------------------------ IDX

def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    head = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(dtype).tobytes()


@pytest.fixture
def mnist_like(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 6, 5), dtype=np.uint8)
    labels = np.arange(40) % 4
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return tmp_path, images, labels


def test_idx_round_trip_raw_and_gz(mnist_like, tmp_path):
    root, images, labels = mnist_like
    assert np.array_equal(read_idx(str(root / "train-images-idx3-ubyte")), images)
    assert np.array_equal(read_idx(str(root / "train-labels-idx1-ubyte.gz")), labels)
    floats = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    (tmp_path / "f.idx").write_bytes(idx_bytes(floats, 0x0D))
    assert np.array_equal(read_idx(str(tmp_path / "f.idx")), floats)
    ints = np.array([-5, 70000, 3])
    (tmp_path / "i.idx").write_bytes(idx_bytes(ints, 0x0C))
    assert read_idx(str(tmp_path / "i.idx")).tolist() == [-5, 70000, 3]


def test_idx_dataset(mnist_like):
    root, images, labels = mnist_like
    ds = load_dataset({"source": "idx", "images": "train-images-idx3-ubyte",
                       "labels": "train-labels-idx1-ubyte.gz", "standardize": False,
                       "val_fraction": 0.25}, base_dir=str(root))
    assert ds.input_shape == (1, 6, 5) and ds.n_outputs == 4 and ds.n_train == 30
    assert ds.class_names == ["0", "1", "2", "3"]
    assert 0 <= ds.x_train.min() and ds.x_train.max() <= 1
    # each training image is one of the originals, with its own label
    originals = {images[i].tobytes(): labels[i] for i in range(40)}
    for x, y in zip(ds.x_train, ds.y_train):
        key = np.round(x[0].numpy() * 255).astype(np.uint8).tobytes()
        assert originals[key] == int(y)


def test_idx_separate_test_files_become_the_test_split(mnist_like):
    root, images, labels = mnist_like
    (root / "t10k-images").write_bytes(idx_bytes(images[:8]))
    (root / "t10k-labels").write_bytes(idx_bytes(labels[:8]))
    ds = load_dataset({"source": "idx", "images": "train-images-idx3-ubyte",
                       "labels": "train-labels-idx1-ubyte.gz", "test_images": "t10k-images",
                       "test_labels": "t10k-labels", "max_samples": 20}, base_dir=str(root))
    assert ds.n_test == 8 and ds.n_train + ds.n_val == 20
    assert ds.y_test.tolist() == labels[:8].tolist()


def test_idx_truncated_and_corrupt_files(tmp_path):
    good = idx_bytes(np.zeros((10, 4, 4), dtype=np.uint8))
    (tmp_path / "cut").write_bytes(good[:-7])
    with pytest.raises(DataError, match="truncated") as e:
        read_idx(str(tmp_path / "cut"))
    assert "10 x 4 x 4" in str(e.value)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-10])
    with pytest.raises(DataError, match="gzip"):
        read_idx(str(tmp_path / "cut.gz"))
    (tmp_path / "magic").write_bytes(b"\x01\x02\x08\x03" + good[4:])
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(str(tmp_path / "magic"))
    (tmp_path / "extra").write_bytes(good + b"\x00\x00")
    with pytest.raises(DataError, match="more than its header"):
        read_idx(str(tmp_path / "extra"))
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        read_idx(str(tmp_path / "tiny"))


def test_idx_count_mismatch_and_swapped_files(mnist_like):
    root, images, labels = mnist_like
    (root / "few-labels").write_bytes(idx_bytes(labels[:5]))
    with pytest.raises(DataError, match="40 images but .* 5"):
        load_dataset({"source": "idx", "images": str(root / "train-images-idx3-ubyte"),
                      "labels": str(root / "few-labels")})
    with pytest.raises(DataError, match="swapped"):
        load_dataset({"source": "idx", "images": str(root / "few-labels"),
                      "labels": str(root / "train-images-idx3-ubyte")})


# ------------------------------------------------------------------ npz

def test_npz_classification_regression_and_auto(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3))
    np.savez(tmp_path / "c.npz", x=x, y=np.arange(50) % 3)
    ds = load_dataset({"source": "npz", "path": str(tmp_path / "c.npz")})
    assert ds.task == "classification" and ds.n_outputs == 3 and ds.input_shape == (3,)
    np.savez(tmp_path / "r.npz", inputs=x, targets=x[:, :2] * 2)
    ds = load_dataset({"source": "npz", "path": str(tmp_path / "r.npz"), "x_key": "inputs",
                       "y_key": "targets", "standardize": False, "val_fraction": 0.0})
    assert ds.task == "regression" and ds.n_outputs == 2 and ds.y_train.shape == (50, 2)
    assert torch.allclose(ds.y_train, ds.x_train[:, :2] * 2, atol=1e-5)
    np.savez(tmp_path / "s.npz", x=x, y=np.array(["cat", "dog"] * 25))
    assert load_dataset({"source": "npz", "path": str(tmp_path / "s.npz")}).class_names == ["cat", "dog"]


def test_npz_images_are_channels_first_and_scaled(tmp_path):
    x = np.full((12, 5, 5, 3), 255, dtype=np.uint8)  # channels-last
    np.savez(tmp_path / "img.npz", x=x, y=np.arange(12) % 2)
    ds = load_dataset({"source": "npz", "path": str(tmp_path / "img.npz"), "standardize": False})
    assert ds.input_shape == (3, 5, 5) and ds.x_train.max() == 1.0


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "k.npz", data=np.zeros((4, 2)), labels=np.zeros(4))
    with pytest.raises(DataError) as e:
        load_dataset({"source": "npz", "path": str(tmp_path / "k.npz")})
    assert "'x'" in str(e.value) and "data, labels" in str(e.value)
    np.savez(tmp_path / "o.npz", x=np.zeros((2, 2)), y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="Python objects"):
        load_dataset({"source": "npz", "path": str(tmp_path / "o.npz")})
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(DataError, match="npz"):
        load_dataset({"source": "npz", "path": str(tmp_path / "junk.npz")})
    np.savez(tmp_path / "n.npz", x=np.array([[1.0], [np.nan], [2.0]]), y=np.array([0, 1, 0]))
    with pytest.raises(DataError, match="NaN"):
        load_dataset({"source": "npz", "path": str(tmp_path / "n.npz")})


# ------------------------------------------------------------------ image folder

def make_image_folder(root, size=(10, 12)):
    Image = pytest.importorskip("PIL.Image")
    colours = {"red": (255, 0, 0), "blue": (0, 0, 255)}
    for cls, rgb in colours.items():
        (root / cls).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", size, rgb).save(root / cls / f"{i}.png")
        Image.new("RGB", size, rgb).save(root / cls / "extra.jpg", quality=95)
    (root / "notes.txt").write_text("not a class")
    return colours


def test_image_folder_rgb(tmp_path):
    make_image_folder(tmp_path / "imgs")
    ds = load_dataset({"source": "image_folder", "path": str(tmp_path / "imgs"), "size": [8, 6],
                       "standardize": False, "val_fraction": 0.0})
    assert ds.class_names == ["blue", "red"] and ds.input_shape == (3, 8, 6)
    assert ds.n_train == 12 and ds.is_image
    for x, y in zip(ds.x_train, ds.y_train):
        # channels-first, scaled to [0, 1]: blue images have channel 2 on, red channel 0
        on = 2 if ds.class_names[int(y)] == "blue" else 0
        assert x[on].mean() > 0.95 and x[(on + 1) % 3].mean() < 0.05


def test_image_folder_grayscale_and_per_channel_normalisation(tmp_path):
    make_image_folder(tmp_path / "imgs")
    ds = load_dataset({"source": "image_folder", "path": str(tmp_path / "imgs"), "size": [4, 4],
                       "grayscale": True})
    assert ds.input_shape == (1, 4, 4) and len(ds.normalization.mean) == 1
    assert 0.0 < ds.normalization.mean[0] < 1.0  # fitted on [0, 1] pixels


def test_image_folder_errors(tmp_path):
    pytest.importorskip("PIL")
    with pytest.raises(DataError, match="folder not found"):
        load_dataset({"source": "image_folder", "path": str(tmp_path / "missing")})
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(DataError, match="one subfolder per class"):
        load_dataset({"source": "image_folder", "path": str(tmp_path / "one")})
    make_image_folder(tmp_path / "bad")
    (tmp_path / "bad" / "red" / "broken.png").write_bytes(b"not really a png")
    with pytest.raises(DataError, match="broken.png"):
        load_dataset({"source": "image_folder", "path": str(tmp_path / "bad")})
    with pytest.raises(DataError, match="size"):
        load_dataset({"source": "image_folder", "path": str(tmp_path / "bad"), "size": [0, 3]})


def test_quoted_fields_bom_crlf_and_id_columns(tmp_path):
    rows = ['"name","score","grade"'] + [f'"Smith, {i}",{i * 0.5},{"AB"[i % 2]}' for i in range(12)]
    p = tmp_path / "q.csv"
    p.write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n\r\n").encode("utf-8"))
    ds = load_dataset(csv_spec(p, target="grade", ignore=["name"]))
    assert ds.feature_names == ["score"] and ds.class_names == ["A", "B"] and ds.n_train == 12
    with pytest.raises(DataError, match="'name'.*ignore"):
        load_dataset(csv_spec(p, target="grade"))


def test_image_folder_max_per_class_and_empty_class(tmp_path):
    make_image_folder(tmp_path / "imgs")
    ds = load_dataset({"source": "image_folder", "path": str(tmp_path / "imgs"), "size": 4,
                       "max_per_class": 2, "val_fraction": 0.0})
    assert ds.n_train == 4 and ds.input_shape == (3, 4, 4)
    (tmp_path / "imgs" / "green").mkdir()
    with pytest.raises(DataError, match="'green'"):
        load_dataset({"source": "image_folder", "path": str(tmp_path / "imgs")})
