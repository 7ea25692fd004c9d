"""Calibrate the kernel cost model: measure every registered kernel on a grid of layers, fit
its cost-feature coefficients, write ``backends/kernel_costs.json``.

Each grid point is a small integer program (one QConv or QGemm layer shaped like the reference
models' layers: 1x1, 3x3, depthwise 3x3, strides 1 and 2, 3..64 channels, 7..28 pixels, 2-,
4- and 8-bit weights, int8 inputs and, at 4 bits, uint8 ones; or a generic op, alone or behind the ops that feed it; or a conv or a
generic op between 4-bit activations packed two per byte, `pack_activations`). For every
kernel of the point's op (set on every node of that op) it is emitted, run once on Cortex-M0 (mps2-an385) and RV32I
(rv32-virt) under QEMU ``-icount`` (`pqc.backends.firmware.run_firmware`: instructions of one
inference, outputs bit-exact with the simulator) and built for Cortex-M0 (``check_cortex_m0``:
text+data). A trivial program's figures are the fixed part and are subtracted; the code bytes
are what remains after the constant tables (counted exactly by `kernel_table_bytes`).

The model: a layer's instructions on a core and its code bytes are each ``sum(coef[f] *
features[f])`` over the kernel's ``cost_features``; the coefficients are non-negative and
fitted jointly over all points (programs of several layers share the measurement) by
non-negative least squares, one fit per core and one for code bytes. The JSON keeps the
coefficients, the grid, every point's measured and fitted figures and each kernel's largest
relative error.

    .venv/bin/python benchmarks/calibrate_kernels.py [--quick] [--reuse] [--work DIR] [--out FILE]
    .venv/bin/python benchmarks/calibrate_kernels.py --per-mac    # the table's conv points per MAC
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the integer graph builder of the tests

from int_graph_builder import IntGraphBuilder, avg_attrs  # noqa: E402
from linear_chain import bit_weights, const_weights, sum_shift  # noqa: E402
from pqc.backends.activation_layout import pack_activations  # noqa: E402
from pqc.backends.c_emitter import emit_c  # noqa: E402
from pqc.backends.cost_model import CORES, COSTS_PATH  # noqa: E402
from pqc.backends.firmware import random_inputs, run_firmware  # noqa: E402
from pqc.backends.harness import check_cortex_m0  # noqa: E402
from pqc.backends.kernel_select import kernel_table_bytes  # noqa: E402
from pqc.backends.kernels import KERNELS, kernel_for  # noqa: E402
from pqc.intmath import reciprocal  # noqa: E402
from pqc.ir import Graph  # noqa: E402

#: (input channels, size, output channels, kernel, stride, depthwise)
CONV_SHAPES = [(16, 14, 32, 1, 1, False), (32, 7, 64, 1, 1, False), (8, 28, 16, 1, 2, False),
               (24, 14, 96, 1, 1, False), (96, 7, 24, 1, 1, False),
               (8, 14, 16, 3, 1, False), (16, 14, 16, 3, 2, False), (3, 28, 8, 3, 1, False),
               (32, 7, 32, 3, 1, False), (16, 14, 16, 3, 1, True), (32, 14, 32, 3, 2, True),
               (64, 7, 64, 3, 1, True)]
GEMM_SHAPES = [(64, 10), (256, 10), (128, 32), (512, 16)]  # (K inputs, M outputs)
BITS = (2, 4, 8)
QUICK = {"conv": CONV_SHAPES[::3], "gemm": GEMM_SHAPES[:2], "bits": (4, 8)}


def _features(node: Any, program: Graph) -> dict[str, float]:
    """The cost features of ``node``'s kernel in ``program``."""
    kernel = kernel_for(node)
    return kernel.cost_features(node, program, kernel.c_context(node, program))


def _linear(b: IntGraphBuilder, op: str, x: str, w: np.ndarray, bits: int, **attrs: Any) -> str:
    rng = np.random.default_rng(w.size)
    name = const_weights(b, w, bits)
    shift = sum_shift(int(np.prod(w.shape[1:])), bits)
    bias = b.const("b", rng.integers(-500, 500, len(w)).astype(np.int32))
    return b.op(op, [x, name, bias], shift=(shift,) * len(w), **{"lo": -128, "hi": 127, **attrs})


def conv_program(cin: int, size: int, cout: int, k: int, stride: int, depthwise: bool, bits: int,
                 dtype: str = "int8", input_bits: int = 8) -> Graph:
    """One conv layer; ``dtype`` its input's (uint8: as behind a ReLU), of ``input_bits`` bits."""
    a4 = "a4" if input_bits == 4 else ""
    b = IntGraphBuilder(f"conv{cin}x{size}-{cout}k{k}s{stride}{'dw' if depthwise else ''}w{bits}{dtype[0]}{a4}")
    x = b.input("x", (1, cin, size, size), dtype=dtype)
    b.graph.values[x].meta.update(bits=input_bits, signed=dtype == "int8")
    group = cin if depthwise else 1
    w = bit_weights(np.random.default_rng(cin * size + cout + bits), (cout, cin // group, k, k), bits, extremes=False)
    p = k // 2
    return b.build(_linear(b, "QConv", x, w, bits, kernel_shape=(k, k), strides=(stride, stride),
                           pads=(p, p, p, p), dilations=(1, 1), group=group))


def gemm_program(k: int, m: int, bits: int) -> Graph:
    b = IntGraphBuilder(f"gemm{k}-{m}w{bits}")
    x = b.input("x", (1, k))
    return b.build(_linear(b, "QGemm", x, bit_weights(np.random.default_rng(k + m + bits), (m, k), bits, extremes=False), bits))


def _generic(name: str, shape: tuple[int, ...], body: Callable[[IntGraphBuilder, str], str]) -> Graph:
    b = IntGraphBuilder(f"{name}{'x'.join(map(str, shape))}")
    return b.build(body(b, b.input("x", shape)))


def _gate(b: IntGraphBuilder, x: str) -> str:
    """Squeeze-excite: x * LUT(global average of x)."""
    shape = b.graph.values[x].shape
    m, k = reciprocal(shape[2] * shape[3], 255)
    g = b.op("QGlobalAvgPool", [x], m=m, k=k, shift_base=0, lo=-128, hi=127)
    t = b.op("QLut", [g, b.const("t", np.arange(256).astype(np.int64).clip(0, 15).astype(np.int8))], in_min=-128)
    b.graph.values[t].meta["bits"] = 4
    return b.op("QMul", [x, t], shift=3, lo=-128, hi=127)


def generic_programs() -> list[Graph]:
    """Each generic op at two sizes (the ops feeding QMul are calibrated by their own points)."""
    rng = np.random.default_rng(1)
    progs = []
    for shape in ((1, 8, 14, 14), (1, 32, 7, 7)):
        c, hw = shape[1], shape[2] * shape[3]
        m, k = reciprocal(hw, 255)
        progs += [
            _generic("maxpool", shape, lambda b, x: b.op("QMaxPool", [x], kernel_shape=(2, 2), strides=(2, 2),
                                                          pads=(0, 0, 0, 0), dilations=(1, 1), ceil_mode=0)),
            _generic("avgpool", shape, lambda b, x: b.op("QAvgPool", [x], **avg_attrs(
                [4, 6, 9], kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), ceil_mode=0, count_include_pad=0),
                shift_base=0, lo=-128, hi=127)),
            _generic("gap", shape, lambda b, x: b.op("QGlobalAvgPool", [x], m=m, k=k, shift_base=0, lo=-128, hi=127)),
            _generic("add", shape, lambda b, x: b.op("QAdd", [x, x], shift_a=1, shift_b=0, shift=1, lo=0, hi=127,
                                                      negate_b=False)),
            _generic("affine", shape, lambda b, x: b.op("QAffine", [x, b.const("m", rng.integers(-40, 40, c).astype(
                np.int32)), b.const("mb", rng.integers(-50, 50, c).astype(np.int32))], shift=(3,) * c, lo=-128, hi=127)),
            _generic("lut", shape, lambda b, x: b.op("QLut", [x, b.const("t", np.clip(
                np.arange(-128, 128), -20, 100).astype(np.int8))], in_min=-128)),
            _generic("concat", shape, lambda b, x: b.op("QConcat", [x, x], axis=1, shifts=(0, 1), lo=-128, hi=127)),
            _generic("reshape", shape, lambda b, x: b.op("QAdd", [r := b.op("QReshape", [x], shape=(1, c * hw),
                     keep_batch=True), r], shift_a=1, shift_b=0, shift=1, lo=0, hi=127, negate_b=False)),
            _generic("gate", shape, _gate),
            _generic("permute", shape, lambda b, x: b.op("QAdd", [p := b.op("QPermute", [x], perm=tuple(
                (np.arange(c).reshape(2, -1).T.ravel()).tolist())), p], shift_a=1, shift_b=0, shift=1, lo=0, hi=127,
                negate_b=False)),
        ]
    return progs


def _a4(b: IntGraphBuilder, name: str) -> str:
    """Mark ``name`` (clamped to 0..15 by its op) a 4-bit unsigned activation."""
    b.graph.values[name].meta.update(bits=4, signed=False)
    return name


def packed_programs(conv_shapes: list[tuple]) -> list[Graph]:
    """Kernels on packed 4-bit activations: per conv shape, a 4-bit conv feeding the measured one
    (both packed: fields stored, then loaded); then a packed add and a packed max pool, each
    behind such a conv and before a global pool (the fields each reads and writes)."""
    progs = []
    for cin, size, cout, k, stride, depthwise in conv_shapes:
        b = IntGraphBuilder(f"packed-conv{cin}x{size}-{cout}k{k}s{stride}{'dw' if depthwise else ''}")
        x = b.input("x", (1, cin, size, size))
        rng = np.random.default_rng(cin + size)
        feed = _a4(b, _linear(b, "QConv", x, bit_weights(rng, (cin, cin, 3, 3), 4, extremes=False), 4,
                              kernel_shape=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1,
                              hi=15, lo=0, dtype="uint8"))
        group = cin if depthwise else 1
        w = bit_weights(rng, (cout, cin // group, k, k), 4, extremes=False)
        p = k // 2
        progs.append(pack_activations(b.build(_linear(b, "QConv", feed, w, 4, kernel_shape=(k, k), strides=(stride, stride),
                                                      pads=(p, p, p, p), dilations=(1, 1), group=group))))
    for shape in ((1, 8, 14, 14), (1, 32, 7, 7)):
        c, hw = shape[1], shape[2] * shape[3]
        m, k = reciprocal(hw // 4, 255)
        for name, body in (
                ("add", lambda b, y: b.op("QAdd", [y, y], dtype="uint8", shift_a=1, shift_b=0, shift=1, lo=0, hi=15,
                                          negate_b=False)),
                ("maxpool", lambda b, y: b.op("QMaxPool", [y], dtype="uint8", kernel_shape=(2, 2), strides=(2, 2),
                                              pads=(0, 0, 0, 0), dilations=(1, 1), ceil_mode=0))):
            b = IntGraphBuilder(f"packed-{name}{'x'.join(map(str, shape))}")
            x = b.input("x", shape)
            w = bit_weights(np.random.default_rng(c), (c, c, 3, 3), 4, extremes=False)
            y = _a4(b, _linear(b, "QConv", x, w, 4, kernel_shape=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1),
                               dilations=(1, 1), group=1, hi=15, lo=0, dtype="uint8"))
            z = _a4(b, body(b, y))
            if name == "add":
                z = _a4(b, b.op("QMaxPool", [z], dtype="uint8", kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0),
                                dilations=(1, 1), ceil_mode=0))
            progs.append(pack_activations(b.build(b.op("QGlobalAvgPool", [z], m=m, k=k, shift_base=0, lo=-128,
                                                       hi=127))))
    return progs


def grid(quick: bool) -> list[Graph]:
    conv, gemm, bits = (QUICK["conv"], QUICK["gemm"], QUICK["bits"]) if quick else (CONV_SHAPES, GEMM_SHAPES, BITS)
    return ([conv_program(*s, wb) for s in conv for wb in bits] + [conv_program(*s, 4, "uint8") for s in conv]
            + [conv_program(*s, 4, dtype, input_bits=4) for s in conv for dtype in ("uint8", "int8")]
            + [gemm_program(*s, wb) for s in gemm for wb in bits] + generic_programs() + packed_programs(conv))


def variants(program: Graph) -> list[Graph]:
    """``program`` once per kernel of its last node's op that supports that node, when the op has
    several (set on every node of the op the kernel supports), else as it is."""
    node = program.nodes[-1]
    ops = [k for k in KERNELS.values() if k.op == node.op]
    if len(ops) == 1:
        return [program]
    out = []
    for name in sorted(k.name for k in ops if k.supports(node, program)):
        copy = program.copy()
        for n in copy.nodes:
            if n.op == node.op and KERNELS[name].supports(n, copy):
                n.meta["kernel"] = name
        copy.name = f"{program.name}-{name}"
        out.append(copy)
    return out


def measure(program: Graph, work: Path) -> dict[str, Any]:
    """Instructions per core and Cortex-M0 text+data minus constant tables of ``program``."""
    folder = work / program.name
    emit_c(program, folder)
    m0 = check_cortex_m0(folder).data
    tables = sum(kernel_table_bytes(kernel_for(n), n, program) for n in program.nodes)
    x = random_inputs(program, 1)
    return {"code_bytes": m0["text"] + m0["data"] - tables,
            **{core: run_firmware(program, folder, board, x, folder / "fw" / board, timeout_s=600).instructions
               for core, board in CORES.items()}}


def baseline() -> Graph:
    """The trivial program whose figures are every program's fixed part."""
    return _generic("baseline", (1, 1, 1, 1), lambda b, x: b.op("QAdd", [x, x], shift_a=1, shift_b=0, shift=1, lo=0,
                                                                hi=127, negate_b=False))


def nnls(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with non-negative coefficients: solve on the free columns, fix the most
    negative at zero, repeat (an active-set method; numpy only)."""
    free = np.ones(a.shape[1], bool)
    while True:
        coef = np.zeros(a.shape[1])
        coef[free] = np.linalg.lstsq(a[:, free], y, rcond=None)[0]
        if coef.min() >= 0:
            return coef
        free[np.argmin(coef)] = False


def fit(points: list[dict[str, Any]], target: str) -> dict[str, dict[str, float]]:
    """Non-negative coefficients per (kernel, feature), fitted jointly on ``target``."""
    columns = sorted({(k, f) for p in points for k, feats in p["features"] for f in feats})
    a = np.zeros((len(points), len(columns)))
    for i, p in enumerate(points):
        for k, feats in p["features"]:
            for f, v in feats.items():
                a[i, columns.index((k, f))] += v
    y = np.array([p["measured"][target] for p in points], dtype=float)
    scale = np.maximum(y, 1.0)  # relative errors: every point counts alike, small layers too
    norms = np.maximum(np.linalg.norm(a / scale[:, None], axis=0), 1e-12)
    coef = nnls(a / scale[:, None] / norms, y / scale)
    coef = coef / norms
    out: dict[str, dict[str, float]] = {}
    for (k, f), c in zip(columns, coef):
        out.setdefault(k, {})[f] = float(f"{c:.6g}")
    return out


def predict(coefs: dict[str, dict[str, float]], features: list[tuple[str, dict[str, float]]]) -> float:
    return sum(coefs[k].get(f, 0.0) * v for k, feats in features for f, v in feats.items())


def per_mac_table(table: dict[str, Any]) -> str:
    """The single-conv points of a calibration table as Cortex-M0 / RV32I instructions per MAC,
    one row per layer shape and input type, one column per QConv kernel."""
    from pqc.summary import markdown_table

    measured = {p["program"]: p["measured"] for p in table["points"]}
    kernels = sorted({p["kernel"] for p in table["points"] if p["kernel"].startswith("qconv_")})
    rows = []
    for cin, size, cout, k, stride, depthwise in CONV_SHAPES:
        macs = cout * (-(-size // stride)) ** 2 * (1 if depthwise else cin) * k * k
        for bits, dtype, input_bits in [(b, "int8", 8) for b in BITS] + [(4, "uint8", 8), (4, "uint8", 4), (4, "int8", 4)]:
            name = conv_program(cin, size, cout, k, stride, depthwise, bits, dtype, input_bits).name
            cells = [measured.get(f"{name}-{kern}") for kern in kernels]
            if any(cells):
                layer = f"{cin}x{size}x{size} -> {cout}, {k}x{k} s{stride}{' dw' if depthwise else ''}"
                rows.append([layer, str(bits), dtype if input_bits == 8 else f"{dtype[:-1]}4"]
                            + [f"{m['cortex-m0'] / macs:.2f} / {m['rv32i'] / macs:.2f}" if m else "-" for m in cells])
    return markdown_table(rows, ["layer", "weight bits", "input", *kernels])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the grid (a rough table, for a try)")
    parser.add_argument("--work", default="build/calibrate-kernels", help="folder of the builds")
    parser.add_argument("--out", default=str(COSTS_PATH), help="the calibration table to write")
    parser.add_argument("--reuse", action="store_true",
                        help="take the measurements of the points already in --out and measure only the new ones: "
                             "for a change of cost features, or a new kernel (a kernel whose C changed must be "
                             "measured again: rerun without --reuse)")
    parser.add_argument("--per-mac", action="store_true",
                        help="measure nothing: print the conv points of --out as instructions per MAC, per kernel")
    args = parser.parse_args()
    if args.per_mac:
        print(per_mac_table(json.loads(Path(args.out).read_text())))
        return
    work = Path(args.work)
    start = time.time()
    targets = ["code_bytes", *CORES]
    old = json.loads(Path(args.out).read_text()) if args.reuse else {"points": []}
    known = {p["program"]: p["measured"] for p in old["points"]}
    fixed = old["fixed"] if args.reuse else measure(baseline(), work)
    points = []
    for program in (v for p in grid(args.quick) for v in variants(p)):
        if program.name in known:
            measured = known[program.name]
        else:
            got = measure(program, work)
            measured = {t: got[t] - fixed[t] for t in targets}
            print(f"{program.name}: {measured}", flush=True)
        points.append({"program": program.name, "kernel": kernel_for(program.nodes[-1]).name,
                       "features": [(kernel_for(n).name, _features(n, program)) for n in program.nodes],
                       "measured": measured})
    coefs = {t: fit(points, t) for t in targets}
    kernels: dict[str, Any] = {}
    for name in sorted({k for p in points for k, _ in p["features"]}):
        kernels[name] = {t: coefs[t].get(name, {}) for t in targets}
        kernels[name]["max_rel_error"] = {}
    for p in points:
        p["fitted"] = {t: round(predict(coefs[t], p["features"]), 1) for t in targets}
        errors = kernels[p["kernel"]]["max_rel_error"]
        for t in targets:
            rel = abs(p["fitted"][t] - p["measured"][t]) / max(abs(p["measured"][t]), 1.0)
            errors[t] = round(max(errors.get(t, 0.0), rel), 4)
    table = {
        "command": "benchmarks/calibrate_kernels.py" + (" --quick" if args.quick else "")
                   + (" --reuse" if args.reuse else ""),
        "cores": CORES, "fixed": fixed, "seconds": round(time.time() - start),
        "kernels": kernels,
        "points": [{"program": p["program"], "kernel": p["kernel"], "measured": p["measured"], "fitted": p["fitted"]}
                   for p in points],
    }
    Path(args.out).write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"{len(points)} points in {table['seconds']} s; wrote {args.out}")
    for name, k in kernels.items():
        print(f"  {name}: max relative error {k['max_rel_error']}")


if __name__ == "__main__":
    main()
