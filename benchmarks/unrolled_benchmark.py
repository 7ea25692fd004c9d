"""Straight-line (unrolled) QConv/QGemm kernels beside the digit-tables kernel, per layer and whole model.

For the reference model (ResNet-8 by default) at W4A4 and W8A8 (lp quantizer), each QConv and
QGemm layer is cut out as a one-layer program (its input the program's input) and emitted once
with ``qconv_tables``/``qgemm_tables`` and once with ``qconv_unrolled``/``qgemm_unrolled``:
Cortex-M0 flash of the layer's C (text+data of the harness's ``-Os`` Cortex-M0 object: code
and tables), instructions per MAC of one run on Cortex-M0 (mps2-an385) and RV32I (rv32-virt)
under QEMU ``-icount`` (firmware outputs bit-exact with the simulator, or the run fails), and
the unrolled kernel's extra flash per weight digit on each core (``.text`` growth of the
firmware images over the layer's NAF digits). ``--whole`` also measures the whole program with
every QConv/QGemm on one kernel; ``--small`` adds a few individual small layers (random weights).
The issue's speed goal is <= 6 (Cortex-M0) and <= 4 (RV32I) instructions per MAC.

    .venv/bin/python benchmarks/unrolled_benchmark.py [--bits W4A4 W8A8] [--whole] [--small] [--work DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pqc.summary import markdown_table

ROOT = Path(__file__).resolve().parents[1]
BITS = {"W4A4": (4, 4), "W8A8": (8, 8)}
BOARDS = ("mps2-an385", "rv32-virt")
VARIANTS = ("tables", "unrolled")
GOAL = (6.0, 4.0)  # instructions per MAC, Cortex-M0 and RV32I
HEADER = ["model", "bits", "layer", "MACs", "digits", "flash B tables", "flash B unrolled",
          "M0 instr/MAC tables", "M0 unrolled", "RV32I tables", "RV32I unrolled", "speed goal",
          "B / digit M0, RV32I"]


def layer_macs(node: Any, graph: Any) -> int:
    """Multiply-accumulates of one QConv/QGemm node."""
    w = graph.values[node.inputs[1]].shape
    y = graph.values[node.outputs[0]].shape
    if node.op == "QGemm":
        return int(y[0] * np.prod(w))
    return int(np.prod(y) * np.prod(w[1:]))


def layer_program(program: Any, node: Any) -> Any:
    """``node`` alone as a program: its activation input is the program's input."""
    from pqc.ir import Graph, Node

    values = [program.values[n] for n in (*node.inputs, *node.outputs) if n]
    one = Node(node.op, list(node.inputs), list(node.outputs), dict(node.attrs), name=node.name)
    return Graph(f"{program.name}_{node.name}", values, [one], [node.inputs[0]], [node.outputs[0]])


def use(graph: Any, variant: str) -> Any:
    """``graph`` with every QConv/QGemm on its ``variant`` kernel."""
    out = graph.copy()
    for node in out.nodes:
        if node.op in ("QConv", "QGemm"):
            node.meta["kernel"] = f"{node.op.lower()}_{variant}"
    return out


def figures(program: Any, folder: Path) -> dict[str, Any]:
    """Emit ``program``; its Cortex-M0 object's flash, instructions and image ``.text`` per board."""
    from pqc.backends.c_emitter import emit_c
    from pqc.backends.firmware import get_board, random_inputs, run_firmware, section_sizes
    from pqc.backends.harness import check_cortex_m0

    emit_c(program, folder)
    m0 = check_cortex_m0(folder)
    if m0.status != "passed":
        raise SystemExit(f"{folder}: {m0}")
    runs, text = [], []
    for board in BOARDS:
        work = folder / "fw" / board
        runs.append(run_firmware(program, folder, board, random_inputs(program, 1), work, timeout_s=900).instructions)
        text.append(section_sizes(work / "firmware.elf", get_board(board)).get(".text", 0))
    return {"flash": m0.data["text"] + m0.data["data"], "instr": runs, "text": text}


def row(model: str, bits: str, name: str, macs: int, digits: int, fig: dict[str, dict[str, Any]]) -> list[str]:
    t, u = fig["tables"], fig["unrolled"]
    per = {v: [i / macs for i in fig[v]["instr"]] for v in VARIANTS}
    met = all(p <= g for p, g in zip(per["unrolled"], GOAL))
    per_digit = [(b - a) / max(digits, 1) for a, b in zip(t["text"], u["text"])]
    return [model, bits, name, f"{macs:,}", f"{digits:,}", f"{t['flash']:,}", f"{u['flash']:,}",
            f"{per['tables'][0]:.2f}", f"{per['unrolled'][0]:.2f}", f"{per['tables'][1]:.2f}",
            f"{per['unrolled'][1]:.2f}", "met" if met else "not met", ", ".join(f"{v:.1f}" for v in per_digit)]


def measure_model(model: str, bits: str, work: Path, whole: bool) -> list[list[str]]:
    """Per-layer rows (then the whole-model row with ``whole``) of one model at one bit width."""
    from pqc.backends.harness import BuildError
    from pqc.driver import compile_model
    from pqc.intmath import naf_count
    from pqc.passes.quantize import QuantizeOptions
    from pqc.summary import summarize

    wbits, abits = BITS[bits]
    base = work / f"{model}-{bits}"
    build = compile_model(ROOT / f"examples/models/{model}.onnx", base / "build",
                          quant=QuantizeOptions(wbits=wbits, abits=abits), verify=False, force=True)
    program = build.program
    rows = []
    for i, node in enumerate(n for n in program.nodes if n.op in ("QConv", "QGemm")):
        one = layer_program(program, node)
        fig = {v: figures(use(one, v), base / f"l{i}-{v}") for v in VARIANTS}
        digits = int(naf_count(program.values[node.inputs[1]].data).sum())
        rows.append(row(model, bits, f"{node.name} ({node.op})", layer_macs(node, program), digits, fig))
        print(markdown_table([rows[-1]], HEADER).splitlines()[-1], file=sys.stderr, flush=True)
    if whole:
        try:
            fig = {v: figures(use(program, v), base / f"all-{v}") for v in VARIANTS}
        except BuildError as exc:  # RV32I firmware: over 1 MiB of code puts its start-up jal out of range
            print(f"{model} {bits} whole model: {str(exc).splitlines()[0]}", file=sys.stderr)
            return rows
        digits = sum(int(naf_count(program.values[n.inputs[1]].data).sum())
                     for n in program.nodes if n.op in ("QConv", "QGemm"))
        rows.append(row(model, bits, "**whole model**", summarize(build.float_graph)["totals"]["macs"], digits, fig))
        print(markdown_table([rows[-1]], HEADER).splitlines()[-1], file=sys.stderr, flush=True)
    return rows


def small_layers(work: Path) -> list[list[str]]:
    """A few individual small layers with random 4-bit weights (shapes of small CNNs)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from int_graph_builder import IntGraphBuilder
    from pqc.intmath import naf_count

    shapes = [  # name, (cin, h, w), cout, k, stride, group, relu input
        ("conv 1->8 3x3 16x16", (1, 16, 16), 8, 3, 1, 1),
        ("conv 8->8 3x3 8x8", (8, 8, 8), 8, 3, 1, 1),
        ("dw 16 3x3 8x8", (16, 8, 8), 16, 3, 1, 16),
        ("pw 16->16 1x1 8x8", (16, 8, 8), 16, 1, 1, 1),
        ("conv 8->16 3x3 s2 16x16", (8, 16, 16), 16, 3, 2, 1),
    ]
    rng = np.random.default_rng(0)
    rows = []
    for name, (cin, h, w), cout, k, s, group in shapes:
        b = IntGraphBuilder("small")
        x = b.input("x", (1, cin, h, w), dtype="uint8")
        wq = rng.integers(-8, 8, (cout, cin // group, k, k)).astype(np.int8)
        wq[rng.random(wq.shape) < 0.2] = 0
        p = k // 2
        y = b.op("QConv", [x, b.const("w", wq), b.const("b", rng.integers(-500, 500, cout).astype(np.int32))],
                 dtype="uint8", kernel_shape=(k, k), strides=(s, s), pads=(p, p, p, p), dilations=(1, 1),
                 group=group, shift=(6,) * cout, lo=0, hi=255)
        graph = b.build(y)
        node = graph.nodes[0]
        fig = {v: figures(use(graph, v), work / "small" / f"{name.replace(' ', '_')}-{v}") for v in VARIANTS}
        rows.append(row("small", "W4A8", name, layer_macs(node, graph), int(naf_count(wq).sum()), fig))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet8", help="reference model (examples/models/<name>.onnx)")
    parser.add_argument("--bits", nargs="*", choices=BITS, default=list(BITS), help="bit widths of the model (none: skip it)")
    parser.add_argument("--whole", action="store_true", help="also the whole model on each kernel")
    parser.add_argument("--small", action="store_true", help="also a few individual small layers")
    parser.add_argument("--work", default="build/unrolled-benchmark", help="folder of the builds")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = small_layers(work) if args.small else []
    rows += [r for bits in args.bits for r in measure_model(args.model, bits, work, args.whole)]
    print(markdown_table(rows, HEADER))


if __name__ == "__main__":
    main()
