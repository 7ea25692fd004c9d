"""`qconv_buckets`: QConv with packed weight codes, the inputs summed in buckets by weight value.

Each weight is stored as a field of 2 or 4 bits (its two's complement code) or, in a layer whose
weights need more than 4 bits, as a byte (its 8-bit two's complement, read as a low unsigned
nibble and a high signed one: ``w = 16 hi + lo``), every channel starting on a byte. For a block
of up to 4 adjacent output columns of one channel the kernel walks the channel's codes once:
each code names a bucket, and the tap's input of each column is added to that bucket
(``s[u][j] += x``: one input load and one bucket load, add and store per multiply-accumulate,
the decode shared by the columns). Then each output is the bias plus ``sum_u value(u) s[u]``,
formed without a multiplier from the codes' bits: ``T_k`` = the sum of the buckets whose code has
bit k set, ``acc = T0 + 2 T1 + 4 T2 - 8 T3`` for 4-bit codes (``T0 - 2 T1`` for 2-bit ones; the
high nibble's sum shifted by 4 more). Flash is ``bits/8`` bytes per weight for 2 and 4 bits (a
byte above 4) plus bias and shift, the same tables as `qconv_compact` at those widths, and the
time per MAC about that of the digit tables' fast walk at one digit per weight, whatever the
weights' digits.

The walk visits the window's rows (one per input channel and kernel row) in groups whose codes
end on a byte: over a band with undilated rows every row follows the last one row of the band
later, so one loop with a constant pointer step runs over all of them; otherwise the loop runs
over input channels with each channel's rows unrolled.

Every sum is kept mod 2^32 (uint32_t): a bucket sum or a ``T_k`` may wrap, the output cannot,
since range analysis proved that the exact dot product fits int32.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from pqc.backends.c_tables import CArray, band_features, conv_band, requant_context
from pqc.backends.kernels import KernelDef, register
from pqc.intops.linear import signed_width

#: output columns per walk of a channel's codes (each bucket holds 4 words whatever the tail)
COLUMNS = 4


def code_bits(w: np.ndarray) -> int:
    """The field width of a layer's codes: 2 or 4 bits when the weights fit, else 8."""
    width = signed_width(w)
    return 2 if width <= 2 else 4 if width <= 4 else 8


def weight_codes(w: np.ndarray, bits: int) -> tuple[CArray, int]:
    """Each output channel's weights (``[cout, taps]``) as ``bits``-bit two's complement codes
    packed LSB first, every channel starting on a byte; the table and the bytes per channel."""
    w = np.asarray(w, dtype=np.int64).reshape(len(w), -1)
    per = 8 // bits
    codes = np.pad(w & ((1 << bits) - 1), ((0, 0), (0, -w.shape[1] % per)))
    packed = sum(codes[:, k::per] << (bits * k) for k in range(per))
    return CArray("uint8_t", tuple(int(v) for v in packed.ravel())), packed.shape[1]


def walk_plan(geo: dict[str, Any], cin_g: int, kh: int, kw: int, dh: int, dw: int, bits: int) -> dict[str, Any]:
    """How the walk visits the window's rows: ``unit`` (the rows of one loop iteration, as
    offsets from the iteration's pointer, each with its column offsets), the iterations
    (``iters``, ``step`` elements apart) and ``rest`` (rows after the loop), so that every
    iteration's codes start on a byte."""
    per_byte = 8 // bits
    cols = [kx * dw for kx in range(kw)]
    if kh == 1 or dh == 1 and geo["band"]:  # every row one row step after the last
        row_step = geo["plane"] if kh == 1 else geo["wp"]
        rows_total = cin_g * kh
        group = next(g for g in range(1, per_byte + 1) if g * kw % per_byte == 0)
        unit = [{"row": i * row_step, "cols": cols} for i in range(group)]
        rest = [{"row": i * row_step, "cols": cols} for i in range(rows_total % group)]
        return {"unit": unit, "iters": rows_total // group, "step": group * row_step, "rest": rest}
    group = next(g for g in range(1, per_byte + 1) if g * kh * kw % per_byte == 0)
    channel = [ky * dh * geo["wp"] for ky in range(kh)]
    unit = [{"row": c * geo["plane"] + r, "cols": cols} for c in range(group) for r in channel]
    rest = [{"row": c * geo["plane"] + r, "cols": cols} for c in range(cin_g % group) for r in channel]
    return {"unit": unit, "iters": cin_g // group, "step": group * geo["plane"], "rest": rest}


@register
class QConvBuckets(KernelDef):
    name = "qconv_buckets"
    op = "QConv"
    variant = "buckets"
    default = False
    packed_io = True

    def c_context(self, node, graph):
        """The band geometry of the tables kernel, the weight codes and the walk's plan."""
        a = node.attrs
        w = graph.values[node.inputs[1]].data
        cout, cin_g, kh, kw = w.shape
        geo = conv_band(node, graph)
        del geo["offsets"]
        bits = code_bits(w)
        codes, row_bytes = weight_codes(w, bits)
        dh, dw = a.get("dilations", (1, 1))
        plan = walk_plan(geo, cin_g, kh, kw, dh, dw, bits)
        return {
            **geo, **requant_context(node, graph), **plan, "codes": codes, "row_bytes": row_bytes, "bits": bits,
            "levels": 2 if bits == 8 else 1, "buckets": 16 if bits >= 4 else 4, "columns": COLUMNS,
            "unit_bytes": sum(len(r["cols"]) for r in plan["unit"]) * bits // 8,
            "cin_g": cin_g, "cout": cout, "cout_g": cout // a["group"], "group": a["group"],
            "group_stride": cin_g * geo["plane"],
        }

    def stack_bytes(self, node, graph) -> int:
        """The buckets: 64 words per level (16 codes x 4 columns), two levels for 8-bit codes."""
        return 4 * 64 * (2 if code_bits(graph.values[node.inputs[1]].data) == 8 else 1)

    def cost_features(self, node, graph, ctx) -> dict[str, float]:
        """Per walk of a channel's codes (``blocks``, a block of up to 4 columns each): its loop
        iterations (``iter_visits``) and code decodes (``tap_visits``, one per tap and level);
        per output and tap one bucket update per level (``updates``); per output the sum over its
        buckets (``sum_visits``); besides `band_features`. Code grows with the bucket updates the
        walk functions unroll (``code_updates``) and the buckets the sum function visits."""
        cout, oh, ow, levels = ctx["cout"], ctx["oh"], ctx["ow"], ctx["levels"]
        taps = ctx["cin_g"] * ctx["kh"] * ctx["kw"]
        blocks = cout * oh * (ow // COLUMNS + (ow % COLUMNS > 0))
        unrolled = sum(len(r["cols"]) for r in ctx["unit"] + ctx["rest"])
        walked_columns = (COLUMNS if ow >= COLUMNS else 0) + ow % COLUMNS
        return {
            **band_features(ctx, cout), "blocks": float(blocks), "iter_visits": float(blocks * ctx["iters"]),
            "tap_visits": float(blocks * taps * levels), "updates": float(cout * oh * ow * taps * levels),
            "sum_visits": float(cout * oh * ow * ctx["buckets"] * levels),
            "code_updates": float(unrolled * levels * walked_columns), "code_buckets": float(ctx["buckets"] * levels),
        }
