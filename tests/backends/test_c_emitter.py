"""The C emitter, one kernel template at a time (onnx2c style): each case is a hand-built integer
graph compiled with gcc and clang (warnings as errors) and compared bit for bit with the simulator
on random inputs; plus the generated files' contract (determinism, header, errors)."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from int_graph_builder import IntGraphBuilder, avg_attrs, conv, random_weights, zoo
from pqc.backends.c_emitter import emit_c
from pqc.backends.harness import build, run_c
from pqc.intmath import INT32_MAX, INT32_MIN, naf_count, reciprocal
from pqc.intops import INT_OPS, get_int_op
from pqc.backends.simulator import simulate
from pqc.errors import ModelError, PqcError
from pqc.ir import Graph

COMPILERS = [cc for cc in ("gcc", "clang") if shutil.which(cc)]
needs_cc = pytest.mark.skipif(not COMPILERS, reason="no C compiler")


def case_conv_3x3(rng):
    b = IntGraphBuilder()
    return b.build(conv(b, b.input("x", (1, 3, 9, 9)), rng, 5))


def case_conv_shifts_spanning_more_than_16(rng):
    """Per-channel shifts 0..20 apart: kept as a signed table (`channel_shifts` packs narrower spans)."""
    b = IntGraphBuilder()
    y = conv(b, b.input("x", (1, 3, 6, 6)), rng, 4)
    b.graph.nodes[-1].attrs["shift"] = (0, 20, 9, 4)
    return b.build(y)


def case_conv_strided_dilated_uint8_int32_out(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 4, 11, 10), dtype="uint8")
    w = b.const("w", random_weights(rng, (3, 4, 3, 3)))
    bias = b.const("b", rng.integers(-3000, 3000, 3).astype(np.int32))
    y = b.op("QConv", [x, w, bias], dtype="int32", kernel_shape=(3, 3), strides=(2, 3), pads=(2, 0, 1, 3),
             dilations=(2, 1), group=1, shift=(3, 0, -2), lo=INT32_MIN, hi=INT32_MAX)
    return b.build(y)


def case_conv_depthwise_and_grouped(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 4, 7, 7))
    y = conv(b, x, rng, 4, group=4, shift=7, dtype="uint8", lo=0, hi=255)
    y = conv(b, y, rng, 6, k=1, pads=(0, 0, 0, 0), group=2, shift=9)
    return b.build(y)


def case_conv_zero_channel(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 2, 6, 6))
    w = random_weights(rng, (3, 2, 3, 3))
    w[1] = 0  # a pruned channel: bias only, no digits
    y = b.op("QConv", [x, b.const("w", w), b.const("b", np.array([5, -700, 9], np.int32))], kernel_shape=(3, 3),
             strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1, shift=(8, 2, 8), lo=-128, hi=127)
    return b.build(y)


def case_gemm(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 40))
    w = b.const("w", random_weights(rng, (10, 40)))
    y = b.op("QGemm", [x, w, b.const("b", rng.integers(-5000, 5000, 10).astype(np.int32))], shift=tuple(range(8, 18)),
             lo=-128, hi=127)
    w2 = b.const("w2", random_weights(rng, (3, 10)))
    y = b.op("QGemm", [y, w2, b.const("b2", np.array([1, -2, 3], np.int32))], dtype="int32", shift=(0, -1, 1),
             lo=INT32_MIN, hi=INT32_MAX)
    return b.build(y)


def case_add(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 3, 5, 5))
    y = conv(b, x, rng, 3, shift=8, dtype="uint8", lo=0, hi=255)
    s = b.op("QAdd", [x, y], shift_a=2, shift_b=0, shift=1, lo=-128, hi=127, negate_b=False)
    d = b.op("QAdd", [s, x], shift_a=0, shift_b=3, shift=2, lo=-100, hi=100, negate_b=True)
    return b.build(d)


def case_concat(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 2, 4, 4))
    u = conv(b, x, rng, 3, shift=8, dtype="uint8", lo=0, hi=255)
    y = b.op("QConcat", [x, u, x], axis=1, shifts=(0, 2, -1), lo=-128, hi=127)
    z = b.op("QConcat", [y, y], axis=3, shifts=(1, 0), lo=-50, hi=60)
    return b.build(z)


def case_maxpool(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 3, 9, 8))
    y = b.op("QMaxPool", [x], kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), dilations=(1, 1), ceil_mode=1)
    y = b.op("QMaxPool", [y], kernel_shape=(2, 2), strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), ceil_mode=0)
    return b.build(y)


def case_maxpool_dilated_uint8(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 2, 10, 9), dtype="uint8")
    y = b.op("QMaxPool", [x], dtype="uint8", kernel_shape=(2, 3), strides=(3, 2), pads=(0, 1, 2, 0),
             dilations=(2, 2), ceil_mode=1)
    return b.build(y)


def case_avgpool_borders(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 3, 7, 7))
    attrs = dict(kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), ceil_mode=1, count_include_pad=0)
    y = b.op("QAvgPool", [x], **avg_attrs([1, 2, 3, 4, 6, 9], **attrs), shift_base=0, lo=-128, hi=127)
    return b.build(y)


def case_avgpool_uniform(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 2, 8, 8), dtype="uint8")
    attrs = dict(kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), ceil_mode=0, count_include_pad=0)
    y = b.op("QAvgPool", [x], dtype="uint8", **avg_attrs([4], **attrs), shift_base=-1, lo=0, hi=255)
    return b.build(y)


def case_global_avgpool(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 6, 5, 5))
    m, k = reciprocal(25, 255)
    y = b.op("QGlobalAvgPool", [x], m=m, k=k, shift_base=1, lo=-128, hi=127)
    return b.build(y)


def case_affine(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 4, 3, 5))
    m = b.const("m", np.array([37, -5, 0, 1023], np.int32))
    y = b.op("QAffine", [x, m, b.const("b", np.array([100, -7, 3, 0], np.int32))], shift=(5, 0, -3, 9),
             lo=-128, hi=127)
    f = b.op("QReshape", [y], shape=(1, 60), keep_batch=True)
    z = b.op("QAffine", [f, b.const("m2", rng.integers(-300, 300, 60).astype(np.int32)),
                         b.const("b2", rng.integers(-99, 99, 60).astype(np.int32))],
             dtype="int32", shift=(2,) * 60, lo=INT32_MIN, hi=INT32_MAX)
    return b.build(z)


def case_lut(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 3, 4, 4))
    y = b.op("QLut", [x, b.const("t", (np.arange(-128, 128) // 3).astype(np.int8))], in_min=-128)
    z = b.op("QLut", [y, b.const("t2", rng.integers(0, 256, 256).astype(np.uint8))], dtype="uint8", in_min=-128)
    return b.build(z)


def case_reshape_aliases(rng):
    b = IntGraphBuilder()
    x = b.input("x", (1, 2, 4, 4))
    f = b.op("QReshape", [x], shape=(1, 32), keep_batch=True)
    y = b.op("QGemm", [f, b.const("w", random_weights(rng, (6, 32))), b.const("b", np.zeros(6, np.int32))],
             shift=(7,) * 6, lo=-128, hi=127)
    return b.build(b.op("QReshape", [y], shape=(1, 6, 1, 1), keep_batch=True))


def case_permute_channels(rng):
    """A channel shuffle of 6 channels in 3 groups, then an add so the permuted planes are read."""
    b = IntGraphBuilder()
    x = b.input("x", (1, 6, 3, 4))
    p = b.op("QPermute", [x], perm=(0, 2, 4, 1, 3, 5))
    return b.build(b.op("QAdd", [p, x], shift_a=0, shift_b=0, shift=1, lo=-128, hi=127, negate_b=False))


def case_mul_per_channel_gate(rng):
    """x times a per-channel unsigned 4-bit gate computed from it (squeeze-excite's product)."""
    b = IntGraphBuilder()
    x = b.input("x", (1, 3, 5, 5))
    m, k = reciprocal(25, 255)
    pooled = b.op("QGlobalAvgPool", [x], m=m, k=k, shift_base=0, lo=-128, hi=127)
    g = b.op("QLut", [pooled, b.const("t", rng.integers(0, 16, 256).astype(np.uint8))], dtype="uint8", in_min=-128)
    b.graph.values[g].meta["bits"] = 4
    return b.build(b.op("QMul", [x, g], shift=2, lo=-128, hi=127))


CASES: dict[str, Callable[[np.random.Generator], Graph]] = {
    name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")
}


def random_inputs(graph: Graph, rng: np.random.Generator, samples: int = 6) -> np.ndarray:
    v = graph.values[graph.inputs[0]]
    info = np.iinfo(v.dtype)
    return rng.integers(info.min, info.max + 1, (samples, *v.shape[1:])).astype(v.dtype)


def assert_c_matches_simulator(graph: Graph, out_dir: Path, rng: np.random.Generator) -> None:
    x = random_inputs(graph, rng)
    emit_c(graph, out_dir)
    expected = simulate(graph, x, capture=True)
    for cc in COMPILERS:
        run = run_c(build(out_dir, cc), x, dump_layers=True)
        np.testing.assert_array_equal(run.outputs, expected[graph.outputs[0]], err_msg=cc)
        for name, dump in run.layers.items():
            np.testing.assert_array_equal(dump, expected[name], err_msg=f"{cc}: layer output {name}")


@needs_cc
@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_is_bit_exact_with_gcc_and_clang(case: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(sum(map(ord, case)))
    graph = CASES[case](rng)
    assert_c_matches_simulator(graph, tmp_path / case, rng)


def test_every_int_op_has_a_case() -> None:
    ops = {n.op for fn in CASES.values() for n in fn(np.random.default_rng(0)).nodes}
    assert ops == set(INT_OPS)


def test_emitted_bytes_are_deterministic(tmp_path: Path) -> None:
    graph = CASES["concat"](np.random.default_rng(1))
    a = emit_c(graph, tmp_path / "a")
    b = emit_c(CASES["concat"](np.random.default_rng(1)), tmp_path / "b")
    for fa, fb in zip(a.files, b.files):
        assert fa.name == fb.name and fa.read_bytes() == fb.read_bytes()


def binary_multiplies(c_code: str) -> list[str]:
    """``*`` used as a binary operator: what is left after comments, preprocessor lines, casts,
    pointer declarators and dereferences are removed."""
    code = re.sub(r"/\*.*?\*/", "", c_code, flags=re.S)
    code = re.sub(r"^\s*#.*$", "", code, flags=re.M)
    code = re.sub(r"\(\s*(?:const\s+)?\w+_t\s*\)", "", code)
    code = re.sub(r"\b(?:\w+_t|void|char)\s*\*(?:\s*const\b)?", "", code)
    return re.findall(r"[\w)\]]\s*\*\s*[\w(]", code)


def test_multiply_scanner_finds_multiplies() -> None:
    assert binary_multiplies("int f(int a, int b) { return a * b + (a + 1)*b; }") == ["a * b", ")*b"]
    assert binary_multiplies("const int8_t *x; *y++ = (int8_t)*p; s += (uint32_t)*p;") == []


def test_generated_model_code_is_multiplier_free_and_self_contained(tmp_path: Path) -> None:
    for case in sorted(CASES):
        res = emit_c(CASES[case](np.random.default_rng(2)), tmp_path / case, prefix="net")
        src = res.source.read_text()
        assert re.findall(r"#include\s*(\S+)", src) == ['"net.h"']
        assert re.findall(r"#include\s*(\S+)", res.header.read_text()) == ["<stdint.h>"]
        assert binary_multiplies(src) == [], case
        code = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
        for banned in ("float", "double", "malloc", "printf", "/", "%"):
            assert banned not in code, (case, banned)


def test_header_states_the_contract(tmp_path: Path) -> None:
    graph = CASES["gemm"](np.random.default_rng(3))
    res = emit_c(graph, tmp_path, prefix="kws")
    h = res.header.read_text()
    for line in ("#define KWS_INPUT_SIZE 40", "#define KWS_OUTPUT_SIZE 3", "#define KWS_INPUT_EXP (-4)",
                 f"#define KWS_ARENA_BYTES {res.memory.arena_bytes}", "typedef int32_t kws_output_t;",
                 "int kws_run(const kws_input_t *input, kws_output_t *output);"):
        assert line in h, line
    assert "#ifndef KWS_WEIGHT_SECTION" in res.source.read_text()


def test_memory_report_counts_tables_arena_and_op_costs(tmp_path: Path) -> None:
    graph = CASES["conv_zero_channel"](np.random.default_rng(4))
    res = emit_c(graph, tmp_path)
    (layer,) = res.memory.layers
    w = graph.values["w"].data.astype(np.int64)
    assert layer.digits == int(naf_count(w).sum()) == res.memory.digits
    cost = get_int_op("QConv").cost(graph.nodes[0], graph)
    assert (layer.adds, layer.shifts) == (cost["adds"], cost["shifts"])
    assert res.memory.weight_bytes == layer.weight_bytes > 0
    assert res.memory.arena_bytes == 0  # input and output live in the caller's arrays
    assert res.memory.output_bytes == 3 * 4 * 4


def test_unwritable_output_folder_is_a_pqc_error(tmp_path: Path) -> None:
    graph = CASES["lut"](np.random.default_rng(5))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(PqcError, match="cannot write the generated C"):
        emit_c(graph, blocker / "out")
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(PqcError, match="cannot write"):
            emit_c(graph, ro)


def test_bad_prefix_and_graph_shape_are_refused(tmp_path: Path) -> None:
    graph = CASES["lut"](np.random.default_rng(6))
    with pytest.raises(PqcError, match="not a C identifier"):
        emit_c(graph, tmp_path, prefix="my-model")
    graph.outputs.append(graph.inputs[0])
    with pytest.raises(ModelError, match="computes nothing for output 'x'"):
        emit_c(graph, tmp_path)
    graph.outputs[-1] = graph.outputs[0]
    with pytest.raises(ModelError, match="share their storage"):
        emit_c(graph, tmp_path)
    b = IntGraphBuilder()
    identity = b.build(b.op("QReshape", [b.input("x", (1, 2, 3))], shape=(1, 6), keep_batch=True))
    with pytest.raises(ModelError, match="computes nothing"):
        emit_c(identity, tmp_path)


def test_out_of_range_shift_is_refused(tmp_path: Path) -> None:
    graph = CASES["add"](np.random.default_rng(7))
    graph.nodes[-1].attrs["shift"] = 40
    with pytest.raises(ModelError, match="outside -31..31"):
        emit_c(graph, tmp_path)


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("objdump") is None, reason="gcc/binutils missing")
def test_caller_workspace_and_weight_section(tmp_path: Path) -> None:
    """``<prefix>_run_ws`` on a caller's buffer equals ``<prefix>_run``; NULL is refused; the
    section macro moves every table."""
    graph = CASES["conv_depthwise_and_grouped"](np.random.default_rng(8))
    res = emit_c(graph, tmp_path, prefix="net")
    (tmp_path / "ws.c").write_text(
        '#include "net.h"\n'
        "int main(void)\n{\n"
        "    static net_input_t x[NET_INPUT_SIZE];\n"
        "    static net_output_t a[NET_OUTPUT_SIZE], b[NET_OUTPUT_SIZE];\n"
        "    static int32_t ws[(NET_ARENA_BYTES + 3) / 4 + 1];\n"
        "    int i;\n"
        "    for (i = 0; i < NET_INPUT_SIZE; ++i) x[i] = (net_input_t)(i - 64);\n"
        "    if (net_run(x, a) != 0 || net_run_ws(x, b, ws) != 0 || net_run_ws(x, b, 0) != -1) return 1;\n"
        "    for (i = 0; i < NET_OUTPUT_SIZE; ++i) if (a[i] != b[i]) return 2;\n"
        "    return 0;\n}\n"
    )
    cc = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]
    obj, exe = tmp_path / "net.o", tmp_path / "ws"
    subprocess.run([*cc, '-DNET_WEIGHT_SECTION=__attribute__((section(".rodata.netw")))', "-c", str(res.source),
                    "-o", str(obj)], check=True)
    subprocess.run([*cc, "-o", str(exe), str(tmp_path / "ws.c"), str(obj)], check=True)
    assert subprocess.run([str(exe)]).returncode == 0
    headers = subprocess.run(["objdump", "-h", str(obj)], capture_output=True, text=True, check=True).stdout
    size = next(int(line.split()[2], 16) for line in headers.splitlines() if ".rodata.netw" in line)
    assert size >= res.memory.weight_bytes


def c_compile(*args: str | Path) -> None:
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2", *map(str, args)], check=True)


def symbols(obj: Path) -> dict[str, str]:
    """``{name: nm type letter}`` of an object file."""
    lines = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout.splitlines()
    return {parts[-1]: parts[-2] for parts in map(str.split, lines)}


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("gcc") is None, reason="g++/gcc missing")
def test_header_is_includable_from_cpp(tmp_path: Path) -> None:
    """The extern "C" guard: a C++ caller links against the C object and gets the C results."""
    res = emit_c(CASES["gemm"](np.random.default_rng(9)), tmp_path, prefix="net")
    (tmp_path / "caller.cpp").write_text(
        '#include "net.h"\n'
        "int main() {\n"
        "    static net_input_t x[NET_INPUT_SIZE];\n"
        "    static net_output_t y[NET_OUTPUT_SIZE];\n"
        "    return net_run(x, y) == 0 && net_run_ws(x, y, nullptr) == -1 ? 0 : 1;\n}\n")
    c_compile("-c", res.source, "-o", tmp_path / "net.o")
    subprocess.run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", f"-I{tmp_path}", "-o", str(tmp_path / "caller"),
                    str(tmp_path / "caller.cpp"), str(tmp_path / "net.o")], check=True)
    assert subprocess.run([str(tmp_path / "caller")]).returncode == 0


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("objdump") is None, reason="gcc/binutils missing")
def test_no_static_arena_and_arena_section(tmp_path: Path) -> None:
    """NET_NO_STATIC_ARENA leaves only net_run_ws and no arena; NET_ARENA_SECTION places the arena."""
    res = emit_c(CASES["conv_depthwise_and_grouped"](np.random.default_rng(8)), tmp_path, prefix="net")
    assert res.memory.arena_bytes > 0
    bare, placed = tmp_path / "bare.o", tmp_path / "placed.o"
    c_compile("-DNET_NO_STATIC_ARENA", "-c", res.source, "-o", bare)
    c_compile('-DNET_ARENA_SECTION=__attribute__((section(".netarena")))', "-c", res.source, "-o", placed)
    assert "net_run_ws" in symbols(bare) and "net_run" not in symbols(bare) and "net_arena" not in symbols(bare)
    assert "net_run" in symbols(placed) and "net_arena" in symbols(placed)
    headers = subprocess.run(["objdump", "-h", str(placed)], capture_output=True, text=True, check=True).stdout
    size = next(int(line.split()[2], 16) for line in headers.splitlines() if ".netarena" in line)
    assert size >= res.memory.arena_bytes
    # with the macro the header does not declare net_run either, so a caller cannot reach for it
    (tmp_path / "caller.c").write_text('#include "net.h"\nint f(void);\nint f(void) { return net_run(0, 0); }\n')
    with pytest.raises(subprocess.CalledProcessError):
        c_compile("-DNET_NO_STATIC_ARENA", "-c", tmp_path / "caller.c", "-o", tmp_path / "caller.o")


def test_arena_buffers_are_named_after_their_values(tmp_path: Path) -> None:
    """Every arena argument of the layer calls is a BUF_<value> macro defined with its offset."""
    src = emit_c(zoo(), tmp_path).source.read_text()
    defines = dict(re.findall(r"^#define (BUF_\w+) (PQC_AT\(\w+, \d+\))", src, flags=re.M))
    assert defines, src
    body = src[src.index("int model_run_ws("):]
    assert "PQC_AT(" not in body
    args = {a.strip() for call in re.findall(r"model_l\d+_\w+\((.*)\);", body) for a in call.split(",")}
    assert args - {"input", "output"} <= set(defines) and args & set(defines)
    assert "PQC_AT(int8_t, 0)" in defines.values()


def test_arena_buffer_names_are_c_identifiers_and_unique(tmp_path: Path) -> None:
    b = IntGraphBuilder()
    x = b.input("x", (1, 2, 4, 4))
    y = conv(b, x, np.random.default_rng(11), 2, shift=7)
    z = conv(b, y, np.random.default_rng(12), 3, shift=7)  # not of y's shape: its own buffer
    graph = b.build(conv(b, z, np.random.default_rng(13), 2, shift=7))
    for old, new in ((y, "conv 1/out"), (z, "conv_1/out")):  # both sanitize to conv_1_out
        graph.values[new] = graph.values.pop(old)
        graph.values[new].name = new
        for node in graph.nodes:
            node.inputs = [new if i == old else i for i in node.inputs]
            node.outputs = [new if o == old else o for o in node.outputs]
    src = emit_c(graph, tmp_path).source.read_text()
    macros = re.findall(r"^#define (BUF_\S+) PQC_AT", src, flags=re.M)
    assert {"BUF_conv_1_out", "BUF_conv_1_out_2"} <= set(macros) and len(macros) == len(set(macros))
    if COMPILERS:
        build(tmp_path, COMPILERS[0])


@needs_cc
def test_layer_hook_gets_layer_names_at_no_cost_without_it(tmp_path: Path) -> None:
    graph = CASES["add"](np.random.default_rng(14))
    odd = 'odd "name" \\ ??= \u00e9'  # a quote, a backslash, a trigraph, non-ASCII
    graph.nodes[-1].name = odd
    res = emit_c(graph, tmp_path, prefix="net")
    (tmp_path / "hook.c").write_text(
        '#include <stdio.h>\n#include "net.h"\n'
        "void show(int layer, const char *name, const void *data, uint32_t bytes);\n"
        "void show(int layer, const char *name, const void *data, uint32_t bytes)\n"
        '{ (void)data; printf("%d %s %u\\n", layer, name, (unsigned)bytes); }\n'
        "int main(void)\n{\n    static net_input_t x[NET_INPUT_SIZE];\n    static net_output_t y[NET_OUTPUT_SIZE];\n"
        "    return net_run(x, y);\n}\n")
    exe = tmp_path / "hook"
    c_compile("-DNET_LAYER_HOOK=show", "-o", exe, tmp_path / "hook.c", res.source)
    out = subprocess.run([str(exe)], capture_output=True, check=True).stdout.decode("utf-8").splitlines()
    assert [line.rsplit(" ", 1)[0].split(" ", 1)[1] for line in out] == [n.name for n in graph.nodes]
    c_compile("-c", res.source, "-o", tmp_path / "plain.o")
    assert b"odd" not in (tmp_path / "plain.o").read_bytes()


def test_no_loop_of_one_iteration_is_emitted(tmp_path: Path) -> None:
    """Batch-1 rows, one-column pads, single-tap pools, 1x1 outputs: no loop runs once or never."""
    b = IntGraphBuilder()
    x = b.input("x", (1, 2, 3, 3))
    y = conv(b, x, np.random.default_rng(15), 2, k=3, pads=(1, 0, 0, 0))  # a one-element pad, a 1-wide output
    y = b.op("QMaxPool", [y], kernel_shape=(1, 1), strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), ceil_mode=0)
    cases = {**{c: CASES[c](np.random.default_rng(16)) for c in CASES}, "one_by_one": b.build(y)}
    for case, graph in cases.items():
        src = emit_c(graph, tmp_path / case).source.read_text()
        for start, end in re.findall(r"for \(\w+ \w+ = (\d+)u; \w+ < (\d+)u;", src):
            assert int(end) - int(start) > 1, (case, start, end)
        assert not re.search(r"for \([^;]*; \w+ < [01]u;", src), case
    assert_c_matches_simulator(cases["one_by_one"], tmp_path / "run", np.random.default_rng(17))


def test_model_c_opening_comment_is_complete(tmp_path: Path) -> None:
    src = emit_c(CASES["lut"](np.random.default_rng(18)), tmp_path).source.read_text()
    comment = src[:src.index("*/")]
    bullets = re.split(r"\n \* - ", comment)[1:]
    assert len(bullets) >= 3
    for bullet in bullets:
        assert bullet.rstrip(" *\n").endswith("."), bullet


README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc missing (gcc-arm-none-eabi)")
def test_documented_cortex_m0_command_leaves_no_external_symbol(tmp_path: Path) -> None:
    """README's firmware build command of model.c, run as written: `nm -u model.o` is empty."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Embedding in firmware"):text.index("### Running the model bare-metal")]
    command = next(line for line in section.splitlines() if line.startswith("arm-none-eabi-gcc -mcpu=cortex-m0"))
    args = shlex.split(command.rstrip(" \\"))
    assert args[-2:] == ["-c", "model.c"], command
    emit_c(zoo(), tmp_path)  # every kernel, padding copies included
    subprocess.run([*args, "-o", "model.o"], cwd=tmp_path, check=True)
    nm = shutil.which("arm-none-eabi-nm") or "nm"
    undefined = subprocess.run([nm, "-u", "model.o"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert undefined.strip() == "", undefined
