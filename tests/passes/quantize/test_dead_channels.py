"""Dead channels (BN variance 0 over ~1e-9 weights, real bias) and the per-layer bits override."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import SmallCNN, export_legacy
from pqc.backends.simulator import quantize_input, simulate
from pqc.cli import main
from pqc.driver import compile_model
from pqc.errors import ModelError, PqcError
from pqc.executor import FloatExecutor
from pqc.frontend import load_onnx
from pqc.passes import canonicalize, quantize
from pqc.passes.lower import lower
from pqc.passes.quantize import QuantizeOptions
from pqc.passes.quantize.dead import DEAD_RATIO, dead_rows
from pqc.quant import get_quant

DEAD, BIAS = 3, 0.7


def _with_dead_channel(path, layer: int):
    """SmallCNN whose conv<layer> channel `DEAD` is dead: weights ~1e-9, BN variance 0, BN bias `BIAS`."""
    torch.manual_seed(0)
    model = SmallCNN()
    export_legacy(model, path)  # sets the BN statistics
    conv, bn = getattr(model, f"conv{layer}"), getattr(model, f"bn{layer}")
    with torch.no_grad():
        conv.weight[DEAD].normal_(0, 1e-9)
        bn.running_var[DEAD] = 0.0
        bn.running_mean[DEAD] = 0.0 if conv.bias is None else conv.bias[DEAD]
        bn.bias[DEAD] = BIAS
    _export(model, path)
    return path


def _export(model, path):
    torch.onnx.export(model, (torch.randn(1, 1, 16, 16),), str(path), dynamo=False, opset_version=13,
                      input_names=["input"], output_names=["logits"], do_constant_folding=False,
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})


@pytest.fixture(scope="module")
def dead_onnx(tmp_path_factory):
    return _with_dead_channel(tmp_path_factory.mktemp("dead") / "dead.onnx", 1)


@pytest.fixture(scope="module")
def calib():
    return np.random.default_rng(0).normal(size=(32, 1, 16, 16)).astype(np.float32)


def _conv1(graph):
    return next(n for n in graph.nodes if n.op in ("Conv", "QConv"))


def test_dead_rows_rule():
    rows = np.array([[1.0, -0.5], [0.0, 0.0], [DEAD_RATIO, 0.0], [2 * DEAD_RATIO, 0.0]])
    np.testing.assert_array_equal(dead_rows(rows), [1, 2])
    np.testing.assert_array_equal(dead_rows(np.zeros((2, 3))), [0, 1])


def test_dead_channel_used_to_overflow_the_bias(dead_onnx, calib):
    """Without the rule (the channel's own fine exponent) the integer bias leaves int32."""
    g = quantize(canonicalize(load_onnx(dead_onnx)), calib)
    conv = _conv1(g)
    wq = get_quant(g, conv.inputs[1])
    rows = g.const(conv.inputs[1]).reshape(8, -1)
    own = np.floor(np.log2(np.abs(rows[DEAD]).max() / 127))
    e_x = get_quant(g, conv.inputs[0]).exp
    assert abs(BIAS / 2.0 ** (e_x + own)) > 2 ** 31
    assert list(wq.dead) == [DEAD] and not wq.q[DEAD].any()


@pytest.mark.parametrize("wbits", [8, 4])
def test_dead_channel_outputs_its_bias(dead_onnx, calib, wbits):
    g = quantize(canonicalize(load_onnx(dead_onnx)), calib, wbits=wbits, first_last_bits=wbits)
    program = lower(g)
    conv = _conv1(g)
    out = conv.outputs[0]
    got = simulate(program, quantize_input(program, calib), capture=True)[out][:, DEAD]
    ref = FloatExecutor(g).run(calib, capture=[out])[out][:, DEAD]
    step = 2.0 ** program.values[out].meta["exp"]
    np.testing.assert_allclose(ref, BIAS, atol=1e-4)  # the float channel is the constant act(bias)
    assert np.all(np.abs(got * step - ref) <= step)


def test_dead_channel_compiles_verifies_and_is_reported(dead_onnx, calib, tmp_path):
    build = compile_model(dead_onnx, tmp_path / "b", calib=calib, verify=True)
    layers = {l["name"]: l for l in json.loads((tmp_path / "b" / "report.json").read_text())["layers"]}
    conv1 = _conv1(build.program).name
    assert layers[conv1]["dead_channels"] == [DEAD]
    assert all(l["dead_channels"] == [] for name, l in layers.items() if name != conv1 and "wbits" in l)
    assert build.report["verification"]["ok"]
    assert f"- {conv1}: {DEAD}" in (tmp_path / "b" / "report.md").read_text()


# ----------------------------------------------------------------------------- layer_bits and hints
@pytest.fixture(scope="module")
def big_bias(tmp_path_factory, calib):
    """SmallCNN with a large but finite real bias on conv1: fits int32 only with fewer weight bits."""
    torch.manual_seed(0)
    model = SmallCNN()
    path = tmp_path_factory.mktemp("bias") / "bias.onnx"
    export_legacy(model, path)
    with torch.no_grad():
        model.bn1.bias[0] = 1e6
    _export(model, path)
    return canonicalize(load_onnx(path))


def test_range_error_names_the_fix_and_layer_bits_applies_it(big_bias, calib):
    conv1 = _conv1(big_bias).name
    with pytest.raises(ModelError, match=rf"{conv1}.*beyond int32.*--layer-bits {conv1}=B"):
        lower(quantize(big_bias, calib))
    g = quantize(big_bias, calib, QuantizeOptions(layer_bits={conv1: 3}))
    assert get_quant(g, _conv1(g).inputs[1]).bits == 3
    assert all(get_quant(g, n.inputs[1]).bits == 8 for n in g.nodes if n.op in ("Conv", "Gemm") and n.name != conv1)
    lower(g)


def test_layer_bits_refuses_unknown_layers_and_bad_bits(big_bias, calib):
    with pytest.raises(PqcError, match="layer_bits names no layer 'nope'"):
        quantize(big_bias, calib, layer_bits={"nope": 4})
    with pytest.raises(PqcError, match=r"layer_bits\['x'\] must be an integer in 2..8"):
        QuantizeOptions(layer_bits={"x": 9})


def test_cli_layer_bits(small_cnn_onnx, calib, tmp_path, capsys):
    np.savez(tmp_path / "calib.npz", x=calib)
    args = ["compile", str(small_cnn_onnx), "--calib", str(tmp_path / "calib.npz"), "--no-verify", "-q"]
    assert main(args + ["-o", str(tmp_path / "a"), "--layer-bits", "nope=4"]) == 2
    assert "layer_bits names no layer 'nope'" in capsys.readouterr().err
    assert main(args + ["-o", str(tmp_path / "b"), "--layer-bits", "conv1"]) == 2
    assert "expected LAYER=BITS" in capsys.readouterr().err
    name = _conv1(canonicalize(load_onnx(small_cnn_onnx))).name
    assert main(args + ["-o", str(tmp_path / "c"), "--layer-bits", f"{name}=4"]) == 0
    layers = json.loads((tmp_path / "c" / "report.json").read_text())["layers"]
    assert next(l for l in layers if l["name"] == name)["wbits"] == 4


def test_rapq_keeps_dead_channels(tmp_path, calib):
    """conv2: a layer RAPQ reconstructs (it keeps the first as the baseline made it)."""
    from pqc.passes.rapq import rapq

    g, _ = rapq(canonicalize(load_onnx(_with_dead_channel(tmp_path / "d.onnx", 2))), calib, iters=2, wbits=4)
    wq = get_quant(g, [n for n in g.nodes if n.op == "Conv"][1].inputs[1])
    assert list(wq.dead) == [DEAD] and not wq.q[DEAD].any()
    lower(g)
