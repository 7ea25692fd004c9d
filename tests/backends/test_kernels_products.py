"""The `qconv_products` kernel: which layers it takes, its product tables, and the C computing
the simulator's integers (gcc, clang, sanitizers, RV32I multiplier-free) on random layers of
4-bit activations: any window, stride, dilation, pads and grouping, signed and unsigned inputs,
bytes and packed fields."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from int_graph_builder import IntGraphBuilder
from linear_chain import LAYER, random_qconv
from pqc.backends.activation_layout import pack_activations
from pqc.backends.c_emitter import emit_c
from pqc.backends.harness import verify
from pqc.backends.kernels import KERNELS
from pqc.backends.kernels.qconv_products import product_table
from pqc.ir import Graph

needs_cc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (make sysdeps)")
KERNEL = KERNELS["qconv_products"]


def a4_chain(rng: np.random.Generator, cin: int, size: tuple[int, int], layers: list[dict],
             signed_input: bool) -> Graph | None:
    """QConvs of ``layers`` (weights of at most 4 bits) between 4-bit activations, each on
    `qconv_products`: a layer with ``relu`` clamps to 0..15, one without to -8..7."""
    b = IntGraphBuilder("a4")
    x = b.input("x", (1, cin, *size), dtype="int8" if signed_input else "uint8")
    b.graph.values[x].meta.update(bits=4, signed=signed_input)
    for spec in layers:
        x = random_qconv(b, x, rng, {**spec, "bits": min(spec["bits"], 4)})
        if x is None:
            return None
        node = b.graph.nodes[-1]
        node.attrs.update(lo=0, hi=15) if spec["relu"] else node.attrs.update(lo=-8, hi=7)
        b.graph.values[x].meta.update(bits=4, signed=not spec["relu"])
    graph = b.build(x)
    for node in graph.nodes:
        node.meta["kernel"] = KERNEL.name
    return graph


def test_it_takes_4_bit_inputs_and_weights_of_at_most_4_bits():
    rng = np.random.default_rng(0)
    spec = {"cout_g": 2, "groups": "one", "kh": 3, "kw": 3, "stride": 1, "dilation": 1, "pads": (1, 1, 1, 1),
            "bits": 4, "relu": True}
    graph = a4_chain(rng, 3, (5, 5), [spec], signed_input=False)
    assert KERNEL.supports(graph.nodes[0], graph)
    graph.values["x"].meta.update(bits=5)  # 0..31 leaves the table
    assert not KERNEL.supports(graph.nodes[0], graph)
    wide = a4_chain(rng, 3, (5, 5), [spec], signed_input=True)
    wide.values[wide.nodes[0].inputs[1]].data[0, 0, 0, 0] = 8  # a 5-bit weight
    assert not KERNEL.supports(wide.nodes[0], wide)


def test_product_tables_hold_every_product_of_a_code_and_an_input():
    for x_lo in (0, -8):
        table = np.array(product_table(x_lo)).reshape(16, 16)
        for code in range(16):
            w = code - 16 if code > 7 else code
            assert (table[code] == w * np.arange(x_lo, x_lo + 16)).all()
        assert np.abs(table).max() <= 127  # one signed byte each


@needs_cc
@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**16), st.integers(1, 5), st.tuples(st.integers(3, 11), st.integers(3, 13)),
       st.lists(LAYER, min_size=1, max_size=3), st.booleans(), st.booleans())
@example(5, 3, (9, 11), [  # odd taps per channel (codes across bytes), dilation, asymmetric pads, depthwise with a tail
    {"cout_g": 2, "groups": "one", "kh": 3, "kw": 3, "stride": 1, "dilation": 1, "pads": (1, 1, 1, 1),
     "bits": 4, "relu": False},
    {"cout_g": 3, "groups": "two", "kh": 3, "kw": 2, "stride": 2, "dilation": 2, "pads": (0, 2, 1, 0),
     "bits": 3, "relu": True},
    {"cout_g": 1, "groups": "depthwise", "kh": 3, "kw": 3, "stride": 1, "dilation": 1, "pads": (1, 0, 2, 1),
     "bits": 2, "relu": True}], True, True)
def test_products_kernel_is_bit_exact_with_the_simulator(tmp_path, seed, cin, size, layers, signed_input, packed):
    rng = np.random.default_rng(seed)
    graph = a4_chain(rng, cin, size, layers, signed_input)
    assume(graph is not None)
    if packed:
        graph = pack_activations(graph)
    out = tmp_path / f"p{seed}"
    emit_c(graph, out)
    lo = -8 if signed_input else 0
    report = verify(graph, out, rng.integers(lo, lo + 16, (3, cin, *size)).astype(np.int8 if signed_input else np.uint8))
    assert report.ok, report
    assert report.status("rv32i multiplier-free") == "passed"


def test_codes_run_on_across_channels_half_a_byte_each():
    """A depthwise 3x3 channel's 9 codes take 4.5 bytes: 10 channels, 45 bytes (not 10 x 5)."""
    spec = {"cout_g": 1, "groups": "depthwise", "kh": 3, "kw": 3, "stride": 1, "dilation": 1, "pads": (1, 1, 1, 1),
            "bits": 4, "relu": True}
    graph = a4_chain(np.random.default_rng(1), 10, (5, 5), [spec], signed_input=False)
    node = graph.nodes[0]
    ctx = KERNEL.c_context(node, graph)
    assert len(ctx["codes"].values) == 45 and ctx["taps_per_channel"] == 9
    codes = np.array(ctx["codes"].values)
    nibbles = np.stack([codes & 15, codes >> 4], axis=1).ravel()
    w = graph.values[node.inputs[1]].data.ravel()
    assert ((nibbles - (nibbles > 7) * 16) == w).all()
