"""Reconstruction units found on the IR, and the BN-derived loss exponent p."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pqc.frontend import load_onnx
from pqc.passes.canonicalize import canonicalize
from pqc.passes.rapq.units import P_WITHOUT_BN, find_units, loss_exponent

from conftest import MODELS


def _units(model: str):
    return find_units(canonicalize(load_onnx(MODELS / f"{model}.onnx")))


def test_resnet8_units_are_stem_residual_blocks_and_head():
    units = _units("resnet8")
    assert [[n.op for n in u.nodes] for u in units] == [
        ["Conv"],
        ["Conv", "Conv", "Add"],
        ["Conv", "Conv", "Conv", "Add"],
        ["Conv", "Conv", "Conv", "Add"],
        ["GlobalAveragePool", "Flatten", "Gemm"],
    ]
    for prev, unit in zip(units, units[1:]):  # chained: each unit reads the previous one's output
        assert unit.input == prev.output
    # the gamma is the main branch's last BN (body.2), not the shortcut's
    block = units[2]
    body2 = next(n for n in block.nodes if "body.2" in n.name)
    np.testing.assert_array_equal(block.gamma, body2.meta["bn_scale"])
    assert units[-1].gamma is None


def test_mobilenetv2_inverted_residuals_are_units_with_or_without_shortcut():
    units = _units("mobilenetv2")
    shapes = [([n.op for n in u.nodes], [n.attrs.get("group", 1) > 1 for n in u.layers]) for u in units]
    assert shapes[0] == (["Conv"], [False])  # the stem stays alone (not reconstructed)
    assert shapes[1] == (["Conv", "Conv", "Add"], [True, False])  # expansion 1: depthwise + project
    assert shapes[2] == (["Conv", "Conv", "Conv"], [False, True, False])  # stride 2, no shortcut
    assert shapes[3] == (["Conv", "Conv", "Conv", "Add"], [False, True, False])  # with shortcut
    assert shapes[-1][0][-1] == "Gemm"
    assert all(len(u.layers) == 1 for u in units[-2:])  # the final 1x1 conv and the classifier


@pytest.mark.parametrize("mode, c", [("quick", 0.1), ("full", 0.9)])
def test_loss_exponent_formula(mode, c):
    gamma = np.array([0.5, 1.0, 1.5, 2.0])  # sum 5, C = 4: z = 1
    assert loss_exponent(gamma, mode) == round(1 + c / (1 + math.exp(-1.0)), 1)
    assert loss_exponent(gamma, "full") == 1.7 and loss_exponent(gamma, "quick") == 1.1
    assert loss_exponent(np.full(8, -10.0), "full") == 1.0  # a vanishing sigmoid gives p = 1
    assert loss_exponent(None, mode) == P_WITHOUT_BN == 2.0
