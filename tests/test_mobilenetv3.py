"""The committed MobileNetV3-style reference model (examples/models/mobilenetv3.onnx): its export
carries squeeze-excite products and hard-swish in three forms, and it compiles at W8A8 to
verified multiplier-free C whose top-1 stays near float's."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from pqc.frontend import load_onnx

MODEL = Path(__file__).resolve().parents[1] / "examples" / "models" / "mobilenetv3.onnx"
SUBSET = 200       # first test images for the accuracy check
MARGIN = 0.02      # integer top-1 within 2 points (4 images) of float on the subset
HARD_SWISHES = 8   # stem, two per hard-swish block, last 1x1 (TinyMobileNetV3)
SE_GATES = 4       # blocks with squeeze-excite


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def test_export_holds_every_hard_swish_form_and_the_squeeze_excite_products() -> None:
    graph = onnx.load(str(MODEL)).graph
    ops = Counter(n.op_type for n in graph.node)
    producer = _producers(graph)

    def made_by(name: str) -> str:
        return producer[name].op_type if name in producer else "input"

    assert ops["HardSwish"] == 3  # nn.Hardswish at opset 14
    # x * HardSigmoid(x): the gate reads the very value it multiplies
    gate_form = [n for n in graph.node if n.op_type == "Mul" and any(
        made_by(a) == "HardSigmoid" and producer[a].input[0] == b for a, b in (n.input, n.input[::-1]))]
    assert len(gate_form) == 2
    # (x * Clip(x + 3, 0, 6)) / 6
    clip_form = [n for n in graph.node if n.op_type == "Div" and made_by(n.input[0]) == "Mul"
                 and "Clip" in {made_by(i) for i in producer[n.input[0]].input}]
    assert len(clip_form) == 3
    # squeeze-excite: feature map times HardSigmoid(Conv(Relu(Conv(GlobalAveragePool(map)))))
    se = [n for n in graph.node if n.op_type == "Mul" and any(
        made_by(a) == "HardSigmoid" and made_by(producer[a].input[0]) == "Conv" for a in n.input)]
    assert len(se) == SE_GATES
    ir_ops = Counter(n.op for n in load_onnx(MODEL).nodes)
    assert ir_ops["HardSwish"] == HARD_SWISHES and ir_ops["Mul"] == SE_GATES


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (make sysdeps)")
def test_w8a8_compiles_to_verified_multiplier_free_c_near_float(tmp_path: Path) -> None:
    from pqc.data import load_dataset
    from pqc.driver import compile_model, run_program
    from pqc.executor import FloatExecutor

    test = load_dataset(f"fashion-mnist:test:{SUBSET}")
    calib = load_dataset("fashion-mnist:train:64").x
    build = compile_model(MODEL, tmp_path, calib=calib, verify=True)
    assert any(n.op == "QMul" for n in build.program.nodes)
    checks = {c["name"].split()[0]: c["status"] for c in build.report["verification"]["checks"]}
    assert "failed" not in checks.values()
    for tool, needed in (("clang", "clang"), ("sanitizers", "gcc"), ("rv32i", "riscv64-unknown-elf-gcc")):
        assert checks[tool] == "passed" or shutil.which(needed) is None, (tool, checks)
    ints = run_program(build, test.x)[build.program.outputs[0]]
    floats = FloatExecutor(build.float_graph).run(test.x)[build.float_graph.outputs[0]]
    int_top1, float_top1 = np.mean(ints.argmax(1) == test.y), np.mean(floats.argmax(1) == test.y)
    assert float_top1 >= 0.80
    assert abs(int_top1 - float_top1) <= MARGIN, (int_top1, float_top1)
