"""The compile report: per-layer numbers of the integer program and its totals.

Everything here is measured on the integer program that was emitted: SQNR and clip ratio
compare the simulator's per-layer outputs (dequantized exactly) with the float executor's on
the same inputs; adds, shifts and bytes come from each integer op's cost; the arena from the
memory plan the emitter used. `write_report` writes ``report.json`` (for machines) and
``report.md`` (for people).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .intmath import value_range
from .ir import Graph
from .summary import format_table


class LayerErrors:
    """Per activation, the SQNR (dB) of the dequantized integer values against the float ones and
    the share of float values outside the format's representable range (clip ratio), summed over
    batches of samples (`add`), so a large network's activations need not all be held at once."""

    def __init__(self, int_graph: Graph) -> None:
        self.graph = int_graph
        self.sums: dict[str, list[float]] = {}  # name -> [noise, signal, clipped, values]

    def add(self, float_acts: dict[str, np.ndarray], int_acts: dict[str, np.ndarray]) -> None:
        for name, q in int_acts.items():
            ref = float_acts.get(name)
            meta = self.graph.values[name].meta
            if ref is None or ref.shape != q.shape or "exp" not in meta:
                continue
            step = 2.0 ** meta["exp"]
            ref = ref.astype(np.float64)
            qmin, qmax = value_range(self.graph.values[name])
            sums = self.sums.setdefault(name, [0.0, 0.0, 0.0, 0.0])
            sums[0] += float(np.sum((ref - q.astype(np.float64) * step) ** 2))
            sums[1] += float(np.sum(ref ** 2))
            sums[2] += float(np.count_nonzero((ref < (qmin - 0.5) * step) | (ref > (qmax + 0.5) * step)))
            sums[3] += ref.size

    def result(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name, (noise, signal, clipped, values) in self.sums.items():
            sqnr = math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
            out[name] = {"sqnr_db": round(sqnr, 2) if math.isfinite(sqnr) else sqnr,
                         "clip_ratio": clipped / values if values else 0.0}
        return out


def _fmt_exps(exps: Any) -> str:
    arr = np.asarray(exps).ravel()
    if arr.size == 0:
        return ""
    lo, hi = int(arr.min()), int(arr.max())
    return str(lo) if lo == hi else f"{lo}..{hi}"


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out_dir``, each replacing the old one whole
    (written beside it, then renamed), so an interrupted rewrite (``pqc firmware`` adds its
    figures to a finished build) never leaves half a report."""
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    for path, text in ((json_path, json.dumps(report, indent=1, sort_keys=True, default=_json_default) + "\n"),
                       (md_path, render_markdown(report))):
        part = path.with_name(f".{path.name}.part")
        part.write_text(text)
        os.replace(part, path)
    return json_path, md_path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    raise TypeError(type(obj).__name__)


def _ram_steps(report: dict[str, Any]) -> list[str]:
    """The per-step RAM table: the arena bytes live at each schedule step, the peak marked."""
    steps = report.get("memory", {}).get("steps")
    if not steps:
        return []
    peak = report["totals"].get("ram_peak_step")
    stream_of = {node: f"s{i}" for i, chain in enumerate(report["totals"].get("streams", [])) for node in chain}
    rows = [[str(s["step"]), s["node"], s["op"], stream_of.get(s["node"], ""), f"{s['live_bytes']:,}",
             str(len(s["buffers"])), "yes" if s["step"] == peak else ""] for s in steps]
    return ["", "## RAM per step", "",
            "Arena bytes live at each schedule step (each buffer rounded up to the arena alignment; the "
            "caller's input and output arrays are outside the arena); the steps of one row-streamed chain "
            "(stream s0, s1, ...) run as one call, so they share one live set. Buffer lifetimes over the "
            "schedule: [memory.svg](memory.svg).", "",
            "```", format_table(rows, ["step", "layer", "op", "stream", "live bytes", "buffers", "peak"]), "```"]


def render_markdown(report: dict[str, Any]) -> str:
    t = report["totals"]
    lines = [
        f"# pqc compile report: {report['model']}",
        "",
        f"target `{report['target']}`, pipeline `{report['pipeline']}`, seed {report['seed']}",
        "",
        "## Totals",
        "",
        f"- constant tables as emitted: {t['weight_bytes']:,} bytes "
        f"({t['dense_weight_bytes']:,} stored densely: weights packed at their bit width, 32-bit biases); "
        "flash of the model on Cortex-M0 (code + weights): "
        + (f"{t['flash_bytes']:,} bytes" if t.get("flash_bytes") is not None else "not measured (arm-none-eabi-gcc missing or verification off)"),
        f"- activation arena (RAM): {t['arena_bytes']:,} bytes "
        f"(most bytes live at once: {t['arena_lower_bound_bytes']:,}"
        + (f", at step {t['ram_peak_step']}, layer `{t['ram_peak_layer']}`" if t.get("ram_peak_layer") is not None
           else "")
        + "; per step below, lifetimes in [memory.svg](memory.svg)); "
        + (f"{t['packed_activations']} activations packed two or four per byte" if t.get("packed_activations")
           else "one activation per byte") + "; "
        + (f"{len(t['streams'])} layer chains row-streamed (their inner outputs kept as band rows): "
           + "; ".join(" -> ".join(f"`{n}`" for n in chain) for chain in t["streams"]) if t.get("streams")
           else "layer by layer"),
        f"- per inference: {t['adds']:,} adds and {t['shifts']:,} shifts in the emitted kernels; ideal add count "
        f"(nonzero weight digits x output positions) {t.get('ideal_adds', 0):,}",
        f"- nonzero digits of the constant multipliers (weights, scales, reciprocals): {t['digits']:,}",
    ]
    acc = report.get("accuracy")
    if acc:
        lines.append(f"- top-1 on {acc['n']} labelled samples ({acc['data']}): float {acc['float_top1']:.4f}, "
                     f"integer program {acc['int_top1']:.4f}")
    if report.get("dropped_softmax"):
        lines.append(f"- dropped output Softmax ({', '.join(report['dropped_softmax'])}): the program outputs logits; argmax is unchanged")
    budget = report.get("ram_budget")
    if budget:
        lines.append(f"- RAM budget {budget['budget_bytes']:,} bytes: the build needs {budget['needed_bytes']:,} "
                     f"(arena + input/output + {budget['stack_bytes']:,} bytes stack allowance)")
    lines += _ram_steps(report)
    lines += ["", "## Outputs", "",
              f"Each output's SQNR and clip ratio on the {report['error_samples']} samples the layers are measured on.",
              "", "```",
              format_table([[o["name"], "x".join(map(str, o["shape"])), o["dtype"], str(o["exp"]),
                             "" if o.get("clip_ratio") is None else f"{o['clip_ratio']:.4f}",
                             "" if o.get("sqnr_db") is None else str(o["sqnr_db"])] for o in report["outputs"]],
                           ["output", "shape", "dtype", "exp", "clip", "SQNR dB"]), "```"]
    lines += ["", "## Layers", "",
              f"SQNR and clip ratio measured on {report['error_samples']} calibration samples against the float model.", ""]
    rows = []
    for l in report["layers"]:
        rows.append([
            l["name"], l["op"], l.get("kernel", ""), "x".join(map(str, l["shape"])), str(l.get("wbits", "")) + ("/" if l.get("wbits") else "") + str(l["abits"]),
            _fmt_exps(l.get("weight_exps", [])), str(l["exp"]),
            "" if l.get("clip_ratio") is None else f"{l['clip_ratio']:.4f}",
            "" if l.get("sqnr_db") is None else str(l["sqnr_db"]),
            f"{l['digits']:,}", f"{l['adds']:,}", f"{l['weight_bytes']:,}", f"{l['dense_weight_bytes']:,}",
            *(f"{l[k]:,}" if k in l else "" for k in ("est_flash_bytes", "est_instr_m0", "est_instr_rv32i")),
        ])
    lines.append("```")
    lines.append(format_table(rows, ["layer", "op", "kernel", "output", "w/a bits", "w exps", "out exp", "clip", "SQNR dB",
                                     "digits", "adds", "table bytes", "dense bytes", "est. flash B",
                                     "est. instr M0", "est. instr RV32I"]))
    lines.append("```")
    dead = [(l["name"], l["dead_channels"]) for l in report["layers"] if l.get("dead_channels")]
    if dead:
        lines += ["", "Dead channels (weights negligible against their layer's, stored as 0: the channel outputs "
                  "its bias, requantized):", ""]
        lines += [f"- {name}: {', '.join(map(str, channels))}" for name, channels in dead]
    rapq = report.get("rapq")
    if rapq:
        lines += ["", f"## RAPQ reconstruction ({rapq['mode']} mode)", "",
                  "Per unit: loss exponent p, block-output loss before and after weight reconstruction, and "
                  "whether the learned activation exponents were kept (they are only if the network's output "
                  "error does not rise).", ""]
        rows = []
        for u in rapq["units"]:
            wl, al = u.get("weight_loss") or [], u.get("act_loss") or []
            rows.append([u["name"], str(len(u["layers"])), f"{u['p']:g}",
                         f"{wl[0]:.4g} -> {wl[-1]:.4g}" if wl else "not reconstructed",
                         f"{al[0]:.4g} -> {al[-1]:.4g}" if al else "", "yes" if u.get("act_kept") else "no"])
        lines += ["```", format_table(rows, ["unit", "layers", "p", "weight loss", "activation loss", "act kept"]), "```", ""]
        rows = []
        for name, l in rapq["layers"].items():
            rows.append([name, _fmt_exps(l["exps"]), f"{sum(l['floor_won'])}/{len(l['floor_won'])}",
                         f"{l['clip_fraction']:.4f}", f"{l['rounding_mse']:.3g}", f"{l['clipping_mse']:.3g}"])
        lines += ["Per layer: weight exponents, channels where floor (finer step, more clipping) won over ceil, "
                  "share of clipped weights, rounding and clipping error (MSE).", "",
                  "```", format_table(rows, ["layer", "w exps", "floor won", "clipped", "rounding MSE", "clipping MSE"]), "```"]
    firmware = report.get("firmware")
    if firmware:
        lines += ["", "## Firmware (bare-metal, QEMU)", ""]
        rows = [[board, f"{f['flash_bytes']:,}", f"{f['ram_bytes']:,}", f"{f['stack_bytes']:,}", f"{f['instructions']:,}"]
                for board, f in sorted(firmware.items())]
        lines += ["```", format_table(rows, ["board", "flash B", "RAM B", "stack B", "instructions/inference"]), "```"]
    v = report.get("verification")
    if v:
        lines += ["", "## Verification", ""]
        for c in v["checks"]:
            lines.append(f"- {c['name']}: **{c['status']}** {c['details']}")
    return "\n".join(lines) + "\n"
