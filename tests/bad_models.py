"""Tiny ONNX models that are each wrong in one way pqc must report as an input error."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from onnx_builder import make_model


def _save(path: Path, nodes, inits, in_shape, out_shape, **save_kw) -> Path:
    model = make_model(nodes, [("x", in_shape)], [("y", out_shape)], inits)
    model.ir_version = 8
    onnx.save(model, str(path), **save_kw)
    return path


def bad_group(folder: Path) -> Path:
    """Conv with group=3 over 4 channels."""
    w = {"w": np.ones((6, 1, 3, 3), np.float32)}
    return _save(folder / "group.onnx", [helper.make_node("Conv", ["x", "w"], ["y"], group=3)], w,
                 [1, 4, 8, 8], [1, 6, 6, 6])


def bad_ceil_pool(folder: Path) -> Path:
    """ceil_mode MaxPool whose last window starts in the padding: ONNX says 4 outputs, torch 3."""
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)
    return _save(folder / "ceil.onnx", [node], {}, [1, 1, 5, 5], [1, 1, 4, 4])


def missing_external_data(folder: Path) -> Path:
    """A Conv whose weights live in an external file that is gone."""
    w = {"w": np.ones((4, 1, 3, 3), np.float32)}
    path = _save(folder / "ext.onnx", [helper.make_node("Conv", ["x", "w"], ["y"])], w, [1, 1, 8, 8], [1, 4, 6, 6],
                 save_as_external_data=True, all_tensors_to_one_file=True, location="ext.bin", size_threshold=0)
    os.remove(folder / "ext.bin")
    return path


def huge_bias(folder: Path) -> Path:
    """A Conv with a bias of 1e30 (dynamic batch, 16x16 input like SmallCNN)."""
    wb = {"w": np.ones((4, 1, 3, 3), np.float32), "b": np.array([1e30, 0, 0, 0], np.float32)}
    return _save(folder / "huge.onnx", [helper.make_node("Conv", ["x", "w", "b"], ["y"])], wb,
                 ["N", 1, 16, 16], ["N", 4, 14, 14])
