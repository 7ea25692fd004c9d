"""The rapq pass: annotations lowering accepts, what was trained is what runs, determinism,
accuracy, the uniform reference and option errors."""
from __future__ import annotations

import numpy as np
import pytest

from pqc.backends.simulator import quantize_input, simulate
from pqc.errors import PqcError
from pqc.frontend import load_onnx
from pqc.passes.canonicalize import canonicalize
from pqc.passes.lower import lower
from pqc.passes.quantize import QuantizeOptions, quantize
from pqc.passes.rapq import RapqOptions, fake_quant_logits, rapq, train
from pqc.pipeline import PassContext, Pipeline, parse_spec
from pqc.quant import ActQuant, WeightQuant, get_quant
from pqc.targets import get_target

from conftest import MODELS

FAST = {"wbits": 4, "abits": 4, "iters": 16, "calib_size": 32}


@pytest.fixture(scope="module")
def graph(small_cnn_onnx):
    return canonicalize(load_onnx(small_cnn_onnx))


def _inputs(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 1, 16, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def trained(graph):
    return train(graph, _inputs(32, 0), **FAST)


def _layers(g):
    return [n for n in g.nodes if n.op in ("Conv", "Gemm")]


def test_annotations_are_integer_powers_of_two_with_the_baseline_formats(graph, trained):
    g = trained.annotated()
    base = quantize(graph, _inputs(32, 0), method="lp", wbits=4, abits=4)
    for name in g.activations() + g.inputs:
        q, b = get_quant(g, name), get_quant(base, name)
        assert isinstance(q, ActQuant) and isinstance(q.exp, int)
        assert (q.bits, q.signed) == (b.bits, b.signed)  # bits and signs are the baseline's rules
    first, *middle, last = _layers(g)
    for layer in _layers(g):
        wq = get_quant(g, layer.inputs[1])
        assert isinstance(wq, WeightQuant) and wq.exps.dtype == np.int32 and wq.q.dtype == np.int32
        assert np.abs(wq.q).max() <= (1 << (wq.bits - 1)) - 1
    assert [get_quant(g, n.inputs[1]).bits for n in (first, *middle, last)] == [8] * 1 + [4] * len(middle) + [8]
    base_first = get_quant(base, first.inputs[1])  # the first layer is not reconstructed
    np.testing.assert_array_equal(get_quant(g, first.inputs[1]).q, base_first.q)
    logits = get_quant(g, g.outputs[0])
    e_x = get_quant(g, last.inputs[0]).exp
    assert logits.bits == 32 and logits.exp == e_x + get_quant(g, last.inputs[1]).exps.min()
    lower(g)  # lowering accepts it as is


def test_report_has_units_p_losses_and_floor_or_ceil_per_channel(trained):
    report = trained.report()
    units = report["units"]
    assert [len(u["layers"]) for u in units] == [1, 1, 1]  # stem, residual block, head
    assert units[1]["p"] == pytest.approx(1.1) and units[2]["p"] == 2.0
    assert all(len(u["weight_loss"]) == 2 for u in units[1:]) and units[0]["weight_loss"] == []
    for layer in report["layers"].values():
        assert len(layer["exps"]) == len(layer["floor_won"])
        assert 0.0 <= layer["clip_fraction"] <= 1.0


def test_fake_quant_forward_is_exactly_the_integer_program(trained):
    x = _inputs(200, 1)
    fake = fake_quant_logits(trained, x)
    program = lower(trained.annotated())
    ints = simulate(program, quantize_input(program, x))[program.outputs[0]]
    real = ints.astype(np.float64) * 2.0 ** program.values[program.outputs[0]].meta["exp"]
    np.testing.assert_array_equal(fake, real)  # same rounding rules, exact float64 sums
    assert np.all(fake.argmax(1) == real.argmax(1))


def test_deterministic_with_a_seed(graph, trained):
    again = train(graph, _inputs(32, 0), **FAST).annotated()
    first = trained.annotated()
    for name, value in first.values.items():
        a, b = value.meta.get("quant"), again.values[name].meta.get("quant")
        if isinstance(a, WeightQuant):
            np.testing.assert_array_equal(a.q, b.q)
            np.testing.assert_array_equal(a.exps, b.exps)
        else:
            assert a == b


def test_pass_in_a_pipeline_leaves_its_report(graph):
    ctx = PassContext(calib=_inputs(32, 0), seed=0)
    program = Pipeline.parse("rapq(wbits=4,abits=4,iters=8,calib_size=16),lower").run(graph, ctx)
    assert program.nodes[0].op == "QConv" and ctx.state["rapq"]["method"] == "rapq"


def test_uniform_reference_is_evaluable_but_never_an_integer_program(graph):
    model = train(graph, _inputs(32, 0), method="uniform", **FAST)
    assert np.isfinite(fake_quant_logits(model, _inputs(8, 1))).all()
    with pytest.raises(PqcError, match="float scales"):
        model.annotated()
    with pytest.raises(PqcError, match="uniform.*shift-only"):
        get_target("shift-accel").pipeline(RapqOptions(method="uniform", wbits=4))


def test_target_builds_typed_steps_for_rapq_and_for_the_baseline():
    steps = get_target("shift-accel").pipeline(RapqOptions(wbits=4, abits=4, mode="full", iters=10, calib_size=64))
    assert [s.name for s in steps] == ["canonicalize", "rapq", "lower"]
    assert steps[1].options == {"wbits": 4, "abits": 4, "weight_format": "int", "first_last_bits": 8,
                                "mode": "full", "iters": 10, "calib_size": 64}
    assert parse_spec(",".join(map(str, steps)))[1] == steps[1]  # the report's spec reads back the same
    baseline = get_target("shift-accel").pipeline(QuantizeOptions(wbits=4, abits=4))
    assert baseline[1].options == {"method": "lp", "wbits": 4, "abits": 4, "weight_format": "int",
                                   "first_last_bits": 8}


def test_one_default_for_every_quantizer_entry_point():
    """The CLI, the driver, the passes and the functions all take their defaults from BitWidths."""
    from pqc.pipeline import get_pass
    from pqc.quant import BitWidths

    for cls, name in ((QuantizeOptions, "quantize"), (RapqOptions, "rapq")):
        for field in ("wbits", "abits", "weight_format", "first_last_bits"):
            assert getattr(cls(), field) == getattr(BitWidths(), field) == get_pass(name).options[field]


@pytest.mark.parametrize("spec, message", [
    ("rapq(method=uniform)", "float scales"),
    ("rapq(weight_format=pot)", "weight_format"),
    ("rapq(mode=fast)", "unknown mode"),
    ("rapq(iters=-1)", "iters"),
])
def test_option_errors(graph, spec, message):
    with pytest.raises(PqcError, match=message):
        Pipeline.parse(spec).run(graph, PassContext(calib=_inputs(8, 0)))


@pytest.mark.slow
def test_resnet8_w4a4_reaches_an_accuracy_naive_does_not():
    from pqc.data import load_dataset

    try:
        calib, test = load_dataset("fashion-mnist:train:128").x, load_dataset("fashion-mnist:test:500")
    except PqcError:
        pytest.skip("dataset-fashion-mnist is not installed")
    graph = canonicalize(load_onnx(MODELS / "resnet8.onnx"))

    def accuracy(annotated) -> float:
        program = lower(annotated)
        logits = simulate(program, quantize_input(program, test.x))[program.outputs[0]]
        return float(np.mean(logits.argmax(1) == test.y))

    naive = accuracy(quantize(graph, calib, method="naive", wbits=4, abits=4))
    annotated, _ = rapq(graph, calib, wbits=4, abits=4, iters=24, calib_size=128)
    got = accuracy(annotated)
    assert got >= 0.90 > naive  # float: 0.93 on these 500 images; naive PoT about 0.77


def test_cli_refuses_uniform_for_shift_accel(tmp_path, capsys):
    from pqc.cli import main

    code = main(["compile", str(MODELS / "resnet8.onnx"), "-o", str(tmp_path / "b"), "--method", "uniform"])
    assert code == 2 and "accuracy reference only" in capsys.readouterr().err
