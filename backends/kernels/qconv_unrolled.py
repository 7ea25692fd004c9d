"""`qconv_unrolled`: QConv as straight-line code, each channel's weight digits baked into the C.

Per output row (the input rows it reads gathered into the band of `qconv_tables`, so a conv of
its input's shape may write over its input) and channel one loop over the output columns whose
body adds, per NAF digit position ``k``, the window inputs at constant offsets (``s = w[o1] +
w[o2] - w[o3] ...; acc += s << k``): one load and one add per digit, no weight table (only the
bias and shift tables). The code
grows by about one load and one add per digit (6-8 bytes on Cortex-M0 and RV32I), so the
variant suits small layers or a generous flash budget. "Small" has a hard edge,
`UNROLLED_MAX_CODE_BYTES`: gcc and clang at -O2 take minutes and gigabytes over the megabytes of
straight-line code an ImageNet network's 1x1 layers unroll to, and a layer whose code alone is
half a 256 KiB part's flash is no deployment choice; the reference models' unrolled layers are
well below it.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pqc.backends.c_tables import band_features, conv_band, digit_groups, group_taps, requant_context
from pqc.backends.kernels import KernelDef, register
from pqc.intmath import naf_count

#: the most estimated code bytes a layer may take unrolled (see the module doc)
UNROLLED_MAX_CODE_BYTES = 128 * 1024
#: the most lines of straight-line code in one C function: a layer with more is cut into
#: functions of whole channels that its row function calls, since the compilers' time and memory
#: grow faster than linearly in a function's size (one call per part and row costs nothing)
SLICE_LINES = 1024


def digit_code(groups: Sequence[tuple[int, np.ndarray, np.ndarray]], win: str, indent: int) -> str:
    """C statements adding ``sum_k (sum x[pos] - sum x[neg]) << k`` into ``acc`` (``uint32_t``
    ``s`` a scratch) for the ``(k, pos, neg)`` offset groups of one row, read at ``win[offset]``.

    Built as text here (not by template loops) so large layers render fast."""
    pad = " " * indent
    lines = []
    for k, pos, neg in groups:
        first, rest = (pos, neg) if len(pos) else (neg, ())
        terms = [f"(uint32_t){win}[{first[0]}]"]
        terms += [f" + {win}[{o}]" for o in first[1:]] + [f" - {win}[{o}]" for o in rest]
        lines.append(f"{pad}s = {''.join(terms)};")
        op = "+=" if len(pos) else "-="
        lines.append(f"{pad}acc {op} s{f' << {k}' if k else ''};")
    return "\n".join(lines) + "\n" if lines else ""


def code_slices(codes: Sequence[str], lines: int = SLICE_LINES) -> list[list[int]]:
    """The indices of ``codes`` (one channel's or output's digit code each) cut into runs of
    consecutive ones of at most ``lines`` lines of code together (a longer single one alone)."""
    slices: list[list[int]] = [[]]
    used = 0
    for i, code in enumerate(codes):
        n = code.count("\n") + 4  # the digit code and the channel's bias, shift and store
        if slices[-1] and used + n > lines:
            slices.append([])
            used = 0
        slices[-1].append(i)
        used += n
    return slices


def unrolled_features(weights: np.ndarray, repeats: int) -> dict[str, float]:
    """The counts an unrolled kernel's cost is about linear in, for weight rows each run
    ``repeats`` times (output pixels, samples): ``digit_visits`` (one load and one add each),
    ``outputs`` (loop step, requantization, store), ``code_digits`` (flash: each digit is one
    load and one add of code) and ``code_rows`` (per-row loop and requantization code)."""
    digits = int(naf_count(weights).sum())
    return {"digit_visits": float(digits * repeats), "outputs": float(len(weights) * repeats),
            "code_digits": float(digits), "code_rows": float(len(weights))}


@register
class QConvUnrolled(KernelDef):
    name = "qconv_unrolled"
    op = "QConv"
    variant = "unrolled"
    default = False
    packed_io = True
    code_holds_weights = True
    max_code_bytes = UNROLLED_MAX_CODE_BYTES

    def _geometry(self, node, graph) -> tuple[dict[str, Any], np.ndarray]:
        """The tables kernel's band geometry and the offsets of one group's ``Cin/group x kh x
        kw`` taps from a window's origin."""
        cin_g = graph.values[node.inputs[1]].shape[1]
        geo = conv_band(node, graph)
        return geo, group_taps(geo.pop("offsets"), geo["plane"], cin_g)

    def c_context(self, node, graph):
        """The band geometry, and per channel its group's base offset and its digit code."""
        a = node.attrs
        w = graph.values[node.inputs[1]].data
        cout, cin_g = w.shape[:2]
        geo, offsets = self._geometry(node, graph)
        rows = digit_groups(w.reshape(cout, -1), offsets)
        channels = [{"index": c, "base": (c // (cout // a["group"])) * cin_g * geo["plane"],
                     "code": digit_code(g, "w", 12)} for c, g in enumerate(rows)]
        slices = [[channels[c] for c in part] for part in code_slices([ch["code"] for ch in channels])]
        return {**geo, **requant_context(node, graph), "cin_g": cin_g, "cout": cout, "group": a["group"],
                "slices": slices}

    def cost_features(self, node, graph, ctx) -> dict[str, float]:
        """`unrolled_features` of the layer (output pixels per channel as the row's outputs) and
        the band's `band_features` (its gather, and the per-row channel code entries)."""
        y = graph.values[node.outputs[0]].shape
        band = band_features(ctx, ctx["cout"])
        return {**unrolled_features(graph.values[node.inputs[1]].data, y[2] * y[3]),
                **{k: band[k] for k in ("band_elements", "channel_rows", "packed_loads", "packed_stores", "signed_macs")}}
