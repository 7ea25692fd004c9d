"""The budgeted kernel choice: the knapsack against brute force, and ``--flash-budget`` at the CLI."""
from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pqc.backends.kernel_select import BUCKETS, min_cost_choice, selected_flash
from pqc.cli import main

option = st.tuples(st.integers(0, 3000), st.floats(0, 1e6, allow_nan=False))
instance = st.tuples(st.lists(st.lists(option, min_size=1, max_size=3), min_size=1, max_size=4),
                     st.integers(0, 12000))


def _best(options, budget):
    """The least cost sum over every choice whose bytes fit ``budget`` (None: none fits)."""
    fits = [sum(c) for choice in itertools.product(*options) if sum(b for b, _ in choice) <= budget
            for c in [[cost for _, cost in choice]]]
    return min(fits) if fits else None


@settings(max_examples=60, deadline=None)
@given(instance)
def test_knapsack_fits_the_budget_and_is_within_its_rounding_of_the_optimum(case):
    options, budget = case
    chosen = min_cost_choice(options, budget)
    q = max(1, -(-budget // BUCKETS))
    if chosen is None:
        # none fits even with every option's bytes rounded up to buckets
        assert _best([[(-(-b // q) * q, c) for b, c in layer] for layer in options], budget) is None
        return
    assert sum(options[i][j][0] for i, j in enumerate(chosen)) <= budget
    cost = sum(options[i][j][1] for i, j in enumerate(chosen))
    slack = _best(options, budget - len(options) * (q - 1))
    assert slack is None or cost <= slack + 1e-6 * max(1.0, slack)
    if q == 1:
        assert cost == pytest.approx(_best(options, budget))


def test_flash_budget_too_small_is_refused_naming_the_least_that_fits(small_cnn_onnx, tmp_path, capsys):
    calib = tmp_path / "x.npz"
    np.savez(calib, x=np.random.default_rng(0).normal(0, 1, (4, 1, 16, 16)).astype(np.float32))
    code = main(["compile", str(small_cnn_onnx), "-o", str(tmp_path / "b"), "--calib", str(calib),
                 "--no-verify", "-q", "--flash-budget", "1K"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "--flash-budget 1,024 B: the smallest this model's layers fit in is" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("value", ["lots", "-3K", "1.5.2M"])
def test_bad_flash_budget_values_exit_2(value, small_cnn_onnx, tmp_path, capsys):
    assert main(["compile", str(small_cnn_onnx), "-o", str(tmp_path / "b"), "--flash-budget", value]) == 2
    assert "--flash-budget" in capsys.readouterr().err


def test_flash_budget_is_met_on_the_measured_build_by_tightening_the_choice(small_cnn_onnx, monkeypatch):
    """The selection bounds estimated flash; `lay_out` measures the build and shrinks the
    selection's budget by the overshoot until the measured flash fits (here the "build" is the
    estimate plus 3,000 B of code the estimate misses)."""
    import pqc.backends.kernel_select as kernel_select
    from pqc.driver import CompileOptions, lay_out
    from pqc.frontend import load_onnx
    from pqc.passes.canonicalize import canonicalize
    from pqc.passes.lower import lower
    from pqc.passes.quantize import quantize

    x = np.random.default_rng(0).normal(0, 1, (8, 1, 16, 16)).astype(np.float32)
    program = lower(quantize(canonicalize(load_onnx(small_cnn_onnx)), x, wbits=4, abits=4))
    unbounded = lay_out(program, CompileOptions(optimize="speed", flash_budget=1 << 30))
    budget = selected_flash(unbounded) - 1  # binding: the fastest choice does not fit
    monkeypatch.setattr(kernel_select, "measured_flash", lambda p: selected_flash(p) + 3000)
    fitted = lay_out(program, CompileOptions(optimize="speed", flash_budget=budget))
    assert selected_flash(fitted) + 3000 <= budget


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc missing")
def test_the_cortex_m0_build_of_a_budgeted_compile_fits_the_budget(small_cnn_onnx, tmp_path):
    from pqc.backends.kernel_select import measured_flash
    from pqc.driver import compile_model

    x = np.random.default_rng(0).normal(0, 1, (8, 1, 16, 16)).astype(np.float32)
    free = compile_model(small_cnn_onnx, tmp_path / "a", calib=x, verify=False, optimize="speed",
                         flash_budget=1 << 30)
    budget = measured_flash(free.program) - 200  # the fastest choice's build misses it
    tight = compile_model(small_cnn_onnx, tmp_path / "b", calib=x, verify=False, optimize="speed",
                          flash_budget=budget)
    assert measured_flash(tight.program) <= budget


def test_no_layer_is_unrolled_beyond_the_kernels_code_limit(small_cnn_onnx, monkeypatch):
    """With an unlimited budget `speed` unrolls the layers where straight-line code is fastest;
    lowering the unrolled kernels' ``max_code_bytes`` below those layers' code takes them out."""
    from pqc.backends.kernels import KERNELS
    from pqc.driver import CompileOptions, lay_out
    from pqc.frontend import load_onnx
    from pqc.passes.canonicalize import canonicalize
    from pqc.passes.lower import lower
    from pqc.passes.quantize import quantize

    x = np.random.default_rng(0).normal(0, 1, (8, 1, 16, 16)).astype(np.float32)
    program = lower(quantize(canonicalize(load_onnx(small_cnn_onnx)), x, wbits=4, abits=4))
    options = CompileOptions(optimize="speed", flash_budget=1 << 30)
    unrolled = {n.name: n.meta["cost"]["flash_bytes"] for n in lay_out(program, options).nodes
                if n.meta.get("kernel", "").endswith("_unrolled")}
    assert unrolled, "the unlimited budget unrolls some layer"
    for name in ("qconv_unrolled", "qgemm_unrolled"):
        monkeypatch.setattr(KERNELS[name], "max_code_bytes", 0)
    assert not [n.name for n in lay_out(program, options).nodes if n.meta.get("kernel", "").endswith("_unrolled")]


def test_without_a_budget_the_unrolled_code_stays_within_its_total(small_cnn_onnx, monkeypatch):
    """Without --flash-budget the unrolled kernels' code is held to `UNROLLED_TOTAL_BYTES` in
    all (compile time); a flash budget is the user's trade and lifts that limit."""
    import pqc.backends.kernel_select as kernel_select
    from pqc.backends.kernels import KERNELS
    from pqc.driver import CompileOptions, lay_out
    from pqc.frontend import load_onnx
    from pqc.passes.canonicalize import canonicalize
    from pqc.passes.lower import lower
    from pqc.passes.quantize import quantize

    x = np.random.default_rng(0).normal(0, 1, (8, 1, 16, 16)).astype(np.float32)
    program = lower(quantize(canonicalize(load_onnx(small_cnn_onnx)), x, wbits=4, abits=4))

    def unrolled_code(options: CompileOptions) -> list[int]:
        return [n.meta["cost"]["flash_bytes"] - kernel_select.kernel_table_bytes(KERNELS[n.meta["kernel"]], n, program)
                for n in lay_out(program, options).nodes if n.meta.get("kernel", "").endswith("_unrolled")]

    # this small model's digit tables leave no room to unroll: the unbudgeted choice gets a big model's
    monkeypatch.setattr(kernel_select, "_budget", lambda *args: 1 << 30)
    free = unrolled_code(CompileOptions(optimize="speed"))
    assert len(free) > 1, "with that much room the speed choice unrolls several layers"
    limit = max(free) - 1  # the largest no longer fits, at least one of the others does
    monkeypatch.setattr(kernel_select, "UNROLLED_TOTAL_BYTES", limit)
    held = unrolled_code(CompileOptions(optimize="speed"))
    assert sum(held) <= limit and held != free
    assert unrolled_code(CompileOptions(optimize="speed", flash_budget=1 << 30))  # a budget lifts the limit


def test_a_layer_too_large_to_unroll_is_skipped_before_its_code_is_built(monkeypatch):
    """At 2 bytes of code per nonzero weight at least, a Gemm of 70,000 nonzero weights passes the
    128 KiB limit: the unrolled kernel is left out without building its code."""
    from int_graph_builder import IntGraphBuilder
    from linear_chain import const_weights
    from pqc.backends.kernel_select import usable_kernels
    from pqc.backends.kernels.qconv_unrolled import UNROLLED_MAX_CODE_BYTES
    from pqc.backends.kernels import KERNELS

    b = IntGraphBuilder("big")
    x = b.input("x", (1, 700))
    w = np.ones((100, 700), np.int8)
    y = b.op("QGemm", [x, const_weights(b, w, 8), b.const("b", np.zeros(100, np.int32))], shift=(9,) * 100,
             lo=-128, hi=127)
    graph = b.build(y)
    assert 2 * w.size > UNROLLED_MAX_CODE_BYTES
    monkeypatch.setattr(type(KERNELS["qgemm_unrolled"]), "c_context",
                        lambda *a: pytest.fail("the unrolled code was built"))
    kernels, _ = usable_kernels(graph.nodes[0], graph)
    assert "qgemm_unrolled" not in [k.name for k in kernels] and "qgemm_tables" in [k.name for k in kernels]
