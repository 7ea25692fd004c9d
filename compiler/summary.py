"""Per-layer summary of a float graph: what `pqc inspect` prints and what budgets count.

MACs are those of Conv, Gemm and MatMul at batch 1 (the unit every report uses); parameters
are the elements of the constants a node reads (each constant counted once, at its first
reader).
"""
from __future__ import annotations

from typing import Any

from .ir import Graph
from .ops import get_op


def graph_batch(graph: Graph) -> int:
    """The batch size the graph's static shapes were built for (dim 0 of its first input)."""
    shape = graph.values[graph.inputs[0]].shape if graph.inputs else ()
    return int(shape[0]) if shape and shape[0] > 0 else 1


def node_macs(graph: Graph, node) -> int:
    """Multiply-accumulates of one node for one sample."""
    return get_op(node.op).macs(node, graph) // graph_batch(graph)


def summarize(graph: Graph) -> dict[str, Any]:
    """Layers (name, op, output shape, params, MACs), totals, and the graph's inputs/outputs."""
    seen: set[str] = set()
    layers = []
    for node in graph.nodes:
        params = 0
        for i in node.inputs:
            v = graph.values.get(i) if i else None
            if v is not None and v.is_const and i not in seen:
                seen.add(i)
                params += v.size
        macs = node_macs(graph, node)
        layers.append(
            {
                "name": node.name,
                "op": node.op,
                "output_shape": list(graph.values[node.outputs[0]].shape),
                "params": params,
                "macs": macs,
            }
        )
    io = lambda names: [  # noqa: E731
        {"name": n, "shape": list(graph.values[n].shape), "dtype": graph.values[n].dtype} for n in names
    ]
    return {
        "model": graph.name,
        "dynamic_batch": graph.dynamic_batch,
        "inputs": io(graph.inputs),
        "outputs": io(graph.outputs),
        "layers": layers,
        "totals": {
            "macs": sum(l["macs"] for l in layers),
            "params": sum(l["params"] for l in layers),
            "nodes": len(layers),
        },
    }


def markdown_table(rows: list[list[str]], header: list[str]) -> str:
    """A GitHub markdown table (what the benchmark scripts print for README)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """A plain aligned text table (numbers right-aligned)."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(r: list[str]) -> str:
        cells = []
        for i, c in enumerate(r):
            c = str(c)
            cells.append(c.rjust(widths[i]) if c.replace(",", "").replace(".", "").isdigit() else c.ljust(widths[i]))
        return "  ".join(cells).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def format_summary(summary: dict[str, Any]) -> str:
    rows = [
        [l["name"], l["op"], "x".join(map(str, l["output_shape"])), f"{l['params']:,}", f"{l['macs']:,}"]
        for l in summary["layers"]
    ]
    out = [f"model {summary['model']}"]
    for kind in ("inputs", "outputs"):
        for v in summary[kind]:
            out.append(f"  {kind[:-1]:6} {v['name']}: {v['dtype']}[{'x'.join(map(str, v['shape']))}]"
                       + (" (batch dim symbolic)" if summary["dynamic_batch"] else ""))
    out.append("")
    out.append(format_table(rows, ["layer", "op", "output", "params", "MACs"]))
    t = summary["totals"]
    out.append("")
    out.append(f"total: {t['nodes']} nodes, {t['params']:,} parameters, {t['macs']:,} MACs per inference")
    return "\n".join(out)
