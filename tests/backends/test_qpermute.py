"""QPermute (a channel shuffle in the integer program): the simulator's semantics, and the C copy
bit-exact with it on bytes and on packed 4-bit fields; lowering keeps the format."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from int_graph_builder import IntGraphBuilder
from pqc.backends.activation_layout import pack_activations
from pqc.backends.c_emitter import emit_c
from pqc.backends.harness import verify
from pqc.backends.simulator import simulate

needs_cc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (make sysdeps)")
PERM = (3, 0, 4, 1, 5, 2)


def permute_program(bits: int = 8):
    """x -> QPermute -> QAdd of the result with itself (so a permuted value is read by a kernel)."""
    b = IntGraphBuilder("perm")
    x = b.input("x", (1, 6, 3, 5), dtype="uint8")
    b.graph.values[x].meta.update(bits=bits, signed=False)
    p = b.op("QPermute", [x], dtype="uint8", perm=PERM)
    b.graph.values[p].meta.update(bits=bits, signed=False)
    y = b.op("QAdd", [p, p], dtype="uint8", shift_a=0, shift_b=0, shift=1, lo=0, hi=(1 << bits) - 1, negate_b=False)
    b.graph.values[y].meta.update(bits=bits, signed=False)
    return b.build(y)


def test_simulator_moves_whole_channels():
    program = permute_program()
    x = np.random.default_rng(0).integers(0, 256, (2, 6, 3, 5))
    got = simulate(program, {"x": x}, capture=True)[program.nodes[0].outputs[0]]
    assert (got == x[:, list(PERM)]).all()


@needs_cc
@pytest.mark.parametrize("bits", [8, 4])
def test_c_is_bit_exact_on_bytes_and_packed_fields(tmp_path, bits):
    program = permute_program(bits)
    if bits == 4:
        program = pack_activations(program)
    emit_c(program, tmp_path)
    report = verify(program, tmp_path, np.random.default_rng(1).integers(0, 1 << bits, (3, 6, 3, 5)).astype(np.uint8))
    assert report.ok, report
