"""pqc.data (data set specs, idx and npz loading, model inputs) and the reference models' code.

Fashion-MNIST tests run on tiny idx files written to a temp folder (via $PQC_FASHION_MNIST_DIR),
so they need neither the Debian package nor its load time; one test reads the real files when
they are installed.
"""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from pqc.data import (
    FASHION_MNIST_ENV,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    Dataset,
    fashion_mnist_dir,
    load_dataset,
    load_inputs,
    split_train_val,
)
from pqc.errors import DataError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SIZES = {"train": 6, "t10k": 4}


def write_idx(path: Path, data: np.ndarray, magic: int | None = None) -> None:
    """Write ``data`` (uint8) as a gzipped idx file, the format of the Fashion-MNIST package."""
    magic = (0x08 << 8 | data.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in data.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + data.astype(np.uint8).tobytes())


@pytest.fixture
def fmnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A fake Fashion-MNIST folder (6 train, 4 test images); returns the raw pixels and labels."""
    rng = np.random.default_rng(0)
    raw = {}
    for prefix, n in SIZES.items():
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[0] = 0
        images[1] = 255
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
        raw[prefix] = (images, labels)
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    return raw


@pytest.mark.parametrize(
    "spec, prefix, n",
    [
        ("fashion-mnist", "t10k", 4),
        ("fashion-mnist:test", "t10k", 4),
        ("fashion-mnist:train", "train", 6),
        ("fashion-mnist:train:3", "train", 3),
        ("fashion-mnist:test:4", "t10k", 4),
        ("fashion-mnist:2", "t10k", 2),
    ],
)
def test_fashion_mnist_specs(fmnist, spec: str, prefix: str, n: int) -> None:
    data = load_dataset(spec)
    images, labels = fmnist[prefix]
    assert data.x.shape == (n, 1, 28, 28) and data.x.dtype == np.float32
    assert data.y.dtype == np.int64 and data.y.tolist() == labels[:n].tolist()
    np.testing.assert_allclose(data.x[:, 0], (images[:n] / 255.0 - 0.2860) / 0.3530, rtol=1e-6, atol=1e-6)


def test_normalization_constants(fmnist) -> None:
    assert (FASHION_MNIST_MEAN, FASHION_MNIST_STD) == (0.2860, 0.3530)
    x = load_dataset("fashion-mnist").x
    np.testing.assert_allclose(x[0], -0.2860 / 0.3530, rtol=1e-6)  # the fixture's image 0 is black
    np.testing.assert_allclose(x[1], (1 - 0.2860) / 0.3530, rtol=1e-6)  # and image 1 white


@pytest.mark.parametrize(
    "spec",
    ["fashion-mnist:val", "fashion-mnist:train:0", "fashion-mnist:train:x", "fashion-mnist:train:2:3",
     "fashion-mnist:-1", "fashion-mnist:train:7"],
)
def test_bad_fashion_mnist_specs(fmnist, spec: str) -> None:
    with pytest.raises(DataError):
        load_dataset(spec)


def test_missing_fashion_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    assert fashion_mnist_dir() == tmp_path
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist:train")


@pytest.mark.parametrize("damage", ["magic", "truncated", "not-gzip", "count-mismatch"])
def test_corrupt_idx_files(fmnist, tmp_path: Path, damage: str) -> None:
    images = fmnist["t10k"][0]
    target = tmp_path / "t10k-images-idx3-ubyte.gz"
    if damage == "magic":
        write_idx(target, images, magic=0x0801)
    elif damage == "truncated":
        write_idx(target, images)
        target.write_bytes(gzip.compress(gzip.decompress(target.read_bytes())[:-10]))
    elif damage == "not-gzip":
        target.write_bytes(b"not a gzip file")
    else:
        write_idx(target, images[:3])
    with pytest.raises(DataError, match="t10k|test"):
        load_dataset("fashion-mnist")


def test_real_fashion_mnist_test_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FASHION_MNIST_ENV, raising=False)
    if not (fashion_mnist_dir() / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("dataset-fashion-mnist is not installed")
    data = load_dataset("fashion-mnist")
    assert data.x.shape == (10000, 1, 28, 28) and np.bincount(data.y).tolist() == [1000] * 10
    assert abs(float(data.x.mean())) < 0.05 and abs(float(data.x.std()) - 1) < 0.05


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_dataset(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(5, 3, 8, 8))
    data = load_dataset(str(save_npz(tmp_path / "d.npz", x=x, y=np.arange(5, dtype=np.int32))))
    assert data.x.dtype == np.float32 and data.x.shape == x.shape
    assert data.y.dtype == np.int64 and data.y.tolist() == list(range(5))
    assert load_dataset(str(save_npz(tmp_path / "u.npz", x=x))).y is None


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"images": np.zeros((2, 1, 4, 4))}, "named 'x'"),
        ({"x": np.zeros((2, 1, 4, 4), dtype=np.uint8)}, "floating-point"),
        ({"x": np.zeros((2, 16))}, "NCHW"),
        ({"x": np.zeros((2, 1, 4, 4)), "y": np.zeros(3, dtype=np.int64)}, "labels"),
        ({"x": np.zeros((2, 1, 4, 4)), "y": np.zeros(2)}, "labels"),
        ({"x": np.full((2, 1, 4, 4), np.nan)}, "NaN"),
    ],
)
def test_bad_npz_dataset(tmp_path: Path, arrays: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        load_dataset(str(save_npz(tmp_path / "d.npz", **arrays)))


def test_unreadable_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((1, 1, 2, 2)))
    for path in (text, npy, tmp_path / "missing.npz"):
        with pytest.raises(DataError, match=r"expected .*\.npz"):
            load_dataset(str(path))
        with pytest.raises(DataError, match="expected model inputs"):
            load_inputs(path, ["input"])


def test_load_inputs(tmp_path: Path) -> None:
    x = np.ones((2, 1, 4, 4))
    single = load_inputs(save_npz(tmp_path / "a.npz", x=x, y=np.zeros(2, dtype=np.int64)), ["input"])
    assert list(single) == ["input"] and single["input"].dtype == np.float32
    named = load_inputs(save_npz(tmp_path / "b.npz", a=x, b=2 * x), ["a", "b"])
    assert named["b"].dtype == np.float32 and float(named["b"].max()) == 2.0


@pytest.mark.parametrize(
    "arrays, names, match",
    [
        ({"inp": np.ones((1, 2))}, ["input"], r"\['input'\] or a single array 'x'"),
        ({"x": np.ones((1, 2))}, ["a", "b"], r"expected arrays named \['a', 'b'\]$"),
        ({"a": np.ones((1, 2))}, ["a", "b"], "holds arrays"),
        ({"x": np.ones((1, 2), dtype=np.int32)}, ["input"], "floating-point.*int32"),
        ({"x": np.array(1.0)}, ["input"], "batch dimension"),
        ({"x": np.array([np.inf])}, ["input"], "infinite"),
    ],
)
def test_bad_inputs(tmp_path: Path, arrays: dict, names: list[str], match: str) -> None:
    with pytest.raises(DataError, match=match):
        load_inputs(save_npz(tmp_path / "i.npz", **arrays), names)


def test_split_train_val() -> None:
    data = Dataset(np.arange(20, dtype=np.float32).reshape(20, 1, 1, 1), np.arange(20), "d")
    train, val = split_train_val(data, 5, seed=3)
    assert len(train) == 15 and len(val) == 5
    assert sorted(train.y.tolist() + val.y.tolist()) == list(range(20))
    assert np.array_equal(train.x[:, 0, 0, 0], train.y)  # images stay paired with labels
    assert split_train_val(data, 5, seed=3)[1].y.tolist() == val.y.tolist()
    assert split_train_val(data, 5, seed=4)[1].y.tolist() != val.y.tolist()
    for n_val in (0, 20):
        with pytest.raises(DataError):
            split_train_val(data, n_val)


# --- reference models (examples/) -------------------------------------------------------------


@pytest.fixture(scope="module")
def examples():
    """The example scripts' modules; they import each other as top-level modules."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import reference_models
        import train_reference

        yield reference_models, train_reference
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.mark.parametrize(
    "name, params, ops",
    [("resnet8", 78_000, {"Add", "GlobalAveragePool"}), ("mobilenetv2", 50_000, {"Clip", "Add"}),
     ("vgg", 73_000, {"MaxPool", "Flatten"})],
)
def test_reference_model_exports(examples, tmp_path: Path, name: str, params: int, ops: set[str]) -> None:
    reference_models, train_reference = examples
    torch.manual_seed(0)
    model = reference_models.build(name)
    assert abs(sum(p.numel() for p in model.parameters()) - params) < 0.05 * params
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    path = tmp_path / f"{name}.onnx"
    train_reference.export_onnx(model, path, np.random.default_rng(0).normal(size=(4, 1, 28, 28)).astype(np.float32))
    proto = onnx.load(str(path))
    types = [n.op_type for n in proto.graph.node]
    assert types.count("BatchNormalization") == types.count("Conv") > 0
    assert ops <= set(types) and proto.opset_import[0].version == 13
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == ["logits"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


def test_unknown_reference_model(examples) -> None:
    with pytest.raises(ValueError, match="resnet8"):
        examples[0].build("alexnet")


def test_train_reference_end_to_end(examples, fmnist, tmp_path: Path) -> None:
    """One epoch on the fake data set: the script writes ONNX + JSON and is deterministic."""
    train_reference = examples[1]
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert train_reference.main(["--model", "vgg", "--epochs", "1", "--out", str(out), "--seed", "1"]) == 0
    record = json.loads((outs[0] / "vgg.json").read_text())
    assert record["epochs"] == 1 and record["train_samples"] == 6 and record["test_samples"] == 4
    assert record["ort_max_abs_diff"] < 1e-4 and len(record["history"]) == 1
    assert (outs[0] / "vgg.onnx").read_bytes() == (outs[1] / "vgg.onnx").read_bytes()


def test_a_single_input_models_npz_may_name_its_array_after_the_input(tmp_path):
    from pqc.data_checks import checked_inputs
    from pqc.errors import PqcError
    from pqc.ir import Graph, Value

    g = Graph("one")
    g.add_value(Value("image", (1, 1, 4, 4), "float32"))
    g.inputs.append("image")
    x = np.random.default_rng(0).normal(size=(3, 1, 4, 4)).astype(np.float32)
    for name in ("image", "x"):
        np.savez(tmp_path / f"{name}.npz", **{name: x})
        assert np.array_equal(checked_inputs(g, str(tmp_path / f"{name}.npz"), "calibration data"), x)
    np.savez(tmp_path / "other.npz", pixels=x)
    with pytest.raises(PqcError, match="no array 'image' for the model's input 'image'"):
        checked_inputs(g, str(tmp_path / "other.npz"), "calibration data")
