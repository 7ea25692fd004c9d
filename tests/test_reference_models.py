"""The committed reference models: they import, run in the float executor exactly as in
onnxruntime, survive an ONNX -> IR -> ONNX round trip, and compile to verified C."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from pqc.executor import FloatExecutor
from pqc.exporter import to_onnx
from pqc.frontend import load_onnx

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"
NAMES = ("resnet8", "mobilenetv2", "vgg")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    from pqc.data import load_dataset

    return load_dataset("fashion-mnist:test:64").x


@pytest.mark.parametrize("name", NAMES)
def test_executor_matches_onnxruntime(name: str, images: np.ndarray) -> None:
    path = MODELS / f"{name}.onnx"
    graph = load_onnx(path)
    assert graph.dynamic_batch and any(n.op == "BatchNormalization" for n in graph.nodes)
    ours = FloatExecutor(graph).run(images)[graph.outputs[0]]
    theirs = ort.InferenceSession(str(path)).run(None, {graph.inputs[0]: images})[0]
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_through_ir_keeps_results(name: str, images: np.ndarray) -> None:
    path = MODELS / f"{name}.onnx"
    graph = load_onnx(path)
    exported = to_onnx(graph)
    again = load_onnx(exported)
    assert [n.op for n in again.nodes] == [n.op for n in graph.nodes]
    a = ort.InferenceSession(str(path)).run(None, {"input": images})[0]
    b = ort.InferenceSession(exported.SerializeToString()).run(None, {"input": images})[0]
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_recorded_accuracy_is_at_least_90_percent(name: str) -> None:
    record = json.loads((MODELS / f"{name}.json").read_text())
    assert record["test_samples"] == 10000 and record["test_accuracy"] >= 0.90


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (make sysdeps)")
@pytest.mark.parametrize("name", NAMES)
def test_reference_model_compiles_to_verified_c(name: str, tmp_path: Path, images: np.ndarray) -> None:
    """W8A8 end to end: every verification check that has its tool passes, and the integer
    program's argmax agrees with the float model's on nearly all test images."""
    from pqc.driver import compile_model

    build = compile_model(MODELS / f"{name}.onnx", tmp_path, calib=images[:32], verify=True)
    checks = build.report["verification"]["checks"]
    assert all(c["status"] != "failed" for c in checks)
    assert any(c["name"].startswith("rv32i") and c["status"] == "passed" for c in checks) or \
        shutil.which("riscv64-unknown-elf-gcc") is None
    from pqc.driver import run_program

    ints = run_program(build, images)[build.program.outputs[0]]
    floats = FloatExecutor(build.float_graph).run(images)[build.float_graph.outputs[0]]
    assert np.mean(ints.argmax(1) == floats.argmax(1)) >= 0.95
