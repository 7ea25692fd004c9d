"""Data sets and model inputs: everything pqc reads that is not a model.

Two jobs, both offline (nothing downloads at run time):

* `load_dataset(spec)` gives labelled images for calibration, evaluation and pruning, either from
  the Fashion-MNIST files of the Debian package ``dataset-fashion-mnist`` or from a user's
  ``.npz`` file. Fashion-MNIST images come back *normalized* with `FASHION_MNIST_MEAN` and
  `FASHION_MNIST_STD`, because the reference models were trained on normalized inputs; the integer
  program later quantizes these normalized values, not raw pixels.
* `load_inputs(path, input_names)` reads the arrays fed to a model by `pqc run` / `pqc verify`
  (and every data argument of a model with several inputs: one array per input name).

Every malformed or missing input raises `DataError` naming what was expected.
"""
from __future__ import annotations

import gzip
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DataError

FASHION_MNIST_MEAN = 0.2860
"""Mean of the Fashion-MNIST training pixels scaled to [0, 1]; subtracted before the models see them."""
FASHION_MNIST_STD = 0.3530
"""Standard deviation of the same pixels; normalized input = (pixel / 255 - mean) / std."""
FASHION_MNIST_ENV = "PQC_FASHION_MNIST_DIR"
"""Environment variable that overrides where the Fashion-MNIST idx files are read from."""
FASHION_MNIST_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_NAME = "fashion-mnist"
FASHION_MNIST_CLASSES = 10

# Split name -> file prefix of the idx files in the package.
_FASHION_MNIST_SPLITS = {"train": "train", "test": "t10k"}
# idx magic numbers: two zero bytes, type 0x08 (unsigned byte), number of dimensions.
_IDX_IMAGES_MAGIC = 0x00000803
_IDX_LABELS_MAGIC = 0x00000801
_IMAGE_SIDE = 28


@dataclass(frozen=True)
class Dataset:
    """Images ``x`` (float32, NCHW) and optional integer class labels ``y`` (int64, shape [N])."""

    x: np.ndarray
    y: np.ndarray | None
    name: str

    def __post_init__(self) -> None:
        if self.x.dtype != np.float32 or self.x.ndim != 4:
            raise DataError(
                f"{self.name}: images must be float32 NCHW, got {self.x.dtype} of shape {self.x.shape}"
            )
        if self.y is not None and (self.y.dtype != np.int64 or self.y.shape != (len(self.x),)):
            raise DataError(
                f"{self.name}: labels must be int64 of shape ({len(self.x)},), "
                f"got {self.y.dtype} of shape {self.y.shape}"
            )

    def __len__(self) -> int:
        return len(self.x)

    def take(self, n: int) -> "Dataset":
        """The first ``n`` samples (refused if the set is smaller: a silent shortfall skews results)."""
        if n <= 0:
            raise DataError(f"{self.name}: asked for {n} samples; the count must be positive")
        if n > len(self):
            raise DataError(f"{self.name}: asked for {n} samples but it holds only {len(self)}")
        y = None if self.y is None else self.y[:n]
        return Dataset(self.x[:n], y, f"{self.name}:{n}")


def load_dataset(spec: str) -> Dataset:
    """Load the data set named by ``spec``.

    ``spec`` is ``fashion-mnist[:train|:test][:N]`` (test split by default, ``N`` = the first N
    samples), or the path of an ``.npz`` file holding a float array ``x`` (NCHW) and optionally
    integer labels ``y``. Fashion-MNIST images are normalized: ``(pixel/255 - 0.2860) / 0.3530``.
    """
    parts = spec.split(":")
    if parts[0] == FASHION_MNIST_NAME:
        split, count = _parse_fashion_mnist_spec(spec, parts[1:])
        data = load_fashion_mnist(split)
        return data if count is None else data.take(count)
    return _load_npz_dataset(Path(spec))


def _parse_fashion_mnist_spec(spec: str, rest: list[str]) -> tuple[str, int | None]:
    """The split and sample count named after ``fashion-mnist:`` (``rest`` is the spec's remaining fields)."""
    split = "test"
    if rest and rest[0] in _FASHION_MNIST_SPLITS:
        split, rest = rest[0], rest[1:]
    if not rest:
        return split, None
    if len(rest) > 1 or not rest[0].isdecimal():
        raise DataError(f"bad data set spec {spec!r}: expected fashion-mnist[:train|:test][:N], N a positive integer")
    return split, int(rest[0])


def fashion_mnist_dir() -> Path:
    """Where the Fashion-MNIST idx files are read from: $PQC_FASHION_MNIST_DIR or the package's folder."""
    return Path(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DEFAULT_DIR)


def load_fashion_mnist(split: str = "test") -> Dataset:
    """The whole ``train`` (60,000) or ``test`` (10,000) split, normalized, shape [N, 1, 28, 28]."""
    if split not in _FASHION_MNIST_SPLITS:
        raise DataError(f"unknown Fashion-MNIST split {split!r}; expected one of {sorted(_FASHION_MNIST_SPLITS)}")
    root = fashion_mnist_dir()
    prefix = _FASHION_MNIST_SPLITS[split]
    images = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz", _IDX_IMAGES_MAGIC)
    labels = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz", _IDX_LABELS_MAGIC)
    if images.shape[1:] != (_IMAGE_SIDE, _IMAGE_SIDE) or len(images) != len(labels):
        raise DataError(
            f"Fashion-MNIST {split} files in {root} disagree: images {images.shape}, labels {labels.shape}"
        )
    if labels.max(initial=0) >= FASHION_MNIST_CLASSES:
        raise DataError(f"Fashion-MNIST {split} labels in {root} exceed {FASHION_MNIST_CLASSES - 1}")
    return Dataset(normalize_fashion_mnist(images)[:, None], labels.astype(np.int64), f"{FASHION_MNIST_NAME}:{split}")


def normalize_fashion_mnist(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 model input ``(pixels/255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD``."""
    return ((pixels.astype(np.float32) / 255.0 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD).astype(np.float32)


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read a gzipped idx file of unsigned bytes, checking its magic number and declared size."""
    if not path.is_file():
        raise DataError(
            f"Fashion-MNIST file {path} not found: install it with `apt-get install dataset-fashion-mnist` "
            f"or point ${FASHION_MNIST_ENV} at a folder holding the idx .gz files"
        )
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path} as gzip: {exc}") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(f"{path} is not an idx file of {ndim}-D unsigned bytes (magic {magic:#010x})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - header != int(np.prod(dims)):
        raise DataError(f"{path} declares shape {dims} but holds {len(raw) - header} data bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _load_npz_dataset(path: Path) -> Dataset:
    arrays = _open_npz(path, f"a data set (.npz with a float array 'x' NCHW and optional labels 'y', "
                             f"or {FASHION_MNIST_NAME}[:train|:test][:N])")
    if "x" not in arrays:
        raise DataError(f"{path} holds arrays {sorted(arrays)}; a data set needs images named 'x'")
    x = _as_float32(arrays["x"], f"{path}: 'x'")
    if x.ndim != 4:
        raise DataError(f"{path}: 'x' must be NCHW (4-D), got shape {x.shape}")
    y = None
    if "y" in arrays:
        y = arrays["y"]
        if y.dtype.kind not in "iu" or y.shape != (len(x),):
            raise DataError(
                f"{path}: labels 'y' must be integers of shape ({len(x)},), got {y.dtype} of shape {y.shape}"
            )
        y = y.astype(np.int64)
    return Dataset(x, y, path.name)


def load_inputs(path: str | os.PathLike, input_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Arrays to feed a model, keyed by its input names, each float32.

    The ``.npz`` holds either an array per input name or, for a single-input model, one array
    ``x``. Other arrays (labels ``y``, say) are ignored.
    """
    path = Path(path)
    names = list(input_names)
    expected = f"arrays named {names}" + (" or a single array 'x'" if len(names) == 1 else "")
    arrays = _open_npz(path, f"model inputs (.npz with {expected})")
    if all(name in arrays for name in names):
        chosen = {name: arrays[name] for name in names}
    elif len(names) == 1 and "x" in arrays:
        chosen = {names[0]: arrays["x"]}
    else:
        missing = next(name for name in names if name not in arrays)
        raise DataError(f"{path}: no array {missing!r} for the model's input {missing!r}; it holds arrays "
                        f"{sorted(arrays)}; expected {expected}")
    return {name: _as_float32(a, f"{path}: input {name!r}") for name, a in chosen.items()}


def load_labels(path: str | os.PathLike, samples: int) -> np.ndarray:
    """The integer labels ``y`` of an .npz of model inputs (`load_inputs`), one per sample."""
    path = Path(path)
    arrays = _open_npz(path, "labelled model inputs (.npz with the input arrays and labels 'y')")
    y = arrays.get("y")
    if y is None:
        raise DataError(f"{path}: needs labels (an array 'y')")
    if y.dtype.kind not in "iu" or y.shape != (samples,):
        raise DataError(f"{path}: labels 'y' must be integers of shape ({samples},), got {y.dtype} of shape {y.shape}")
    return y.astype(np.int64)


def _open_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    """All arrays of an .npz file, loaded eagerly, or a DataError that says ``what`` was expected."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected {what}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{path} holds a single .npy array, not an .npz archive; expected {what}")
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}); expected {what}") from None


def _as_float32(a: np.ndarray, what: str) -> np.ndarray:
    """Floating arrays become float32; integer or other dtypes are refused (their scale is unknown)."""
    if a.dtype.kind != "f":
        raise DataError(f"{what} must be a floating-point array (normalized as the model expects), got {a.dtype}")
    if a.ndim == 0:
        raise DataError(f"{what} must have a batch dimension, got a scalar")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{what} holds NaN or infinite values")
    return np.ascontiguousarray(a, dtype=np.float32)


def split_train_val(data: Dataset, n_val: int, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split ``data`` into disjoint (train, validation) sets, ``n_val`` samples held out at random.

    Deterministic given ``seed``, so pruning and fine-tuning can report held-out numbers that never
    touch the test split.
    """
    if not 0 < n_val < len(data):
        raise DataError(f"{data.name}: cannot hold out {n_val} of {len(data)} samples")
    order = np.random.default_rng(seed).permutation(len(data))
    parts = []
    for idx, suffix in ((order[n_val:], "train"), (order[:n_val], "val")):
        idx = np.sort(idx)
        y = None if data.y is None else data.y[idx]
        parts.append(Dataset(data.x[idx], y, f"{data.name}[{suffix}]"))
    return parts[0], parts[1]


def load_training_data(spec: str) -> Dataset:
    """`pqc.data.load_dataset`, except that a bare ``fashion-mnist`` or ``fashion-mnist:N`` names
    the *training* split (load_dataset defaults to test, which pruning must never train on)."""
    parts = spec.split(":")
    if parts[0] == "fashion-mnist" and (len(parts) == 1 or parts[1] not in ("train", "test")):
        spec = ":".join([parts[0], "train", *parts[1:]])
    return load_dataset(spec)
