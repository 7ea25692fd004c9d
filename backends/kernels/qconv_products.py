"""`qconv_products`: QConv of 4-bit activations and weights of at most 4 bits, every product
looked up in a 16 x 16 table of products.

When both factors take 16 values, their product is a table entry: row = the weight's 4-bit code,
column = the input (0..15, or -8..7 for signed inputs), one signed byte each (|w x| <= 120). The
table is 256 constant bytes per input signedness, emitted once per model whichever layers use
it. The weights are stored as 4-bit codes, the channels' one after another (half a byte each, no
byte rounding per channel: a depthwise 3x3 channel's 9 codes take 4.5 bytes; a channel that
starts on a high nibble runs a walk of that phase); a multiply-accumulate is then an input
load, a table load and an add, the code's decode (its row, two shifts) shared by the window's
columns. Unlike the bucket kernel
nothing is paid per output, so it suits the layers whose outputs have few taps: depthwise
(9) and narrow pointwise ones (16-32).

The walk visits the window's rows as `qconv_buckets.walk_plan` plans them (each iteration's
codes a whole number of bytes), for up to `COLUMNS` adjacent output columns at once.
"""
from __future__ import annotations

from pqc.backends.c_tables import band_features, conv_band, requant_context
from pqc.backends.kernels import KernelDef, register
from pqc.backends.kernels.qconv_buckets import code_bits, walk_plan, weight_codes
from pqc.intmath import value_range

#: output columns per walk of a channel's codes
COLUMNS = 4
#: the input ranges the product tables cover: unsigned and signed 4-bit
INPUT_RANGES = ((0, 15), (-8, 7))


def product_table(x_lo: int) -> tuple[int, ...]:
    """Row ``u`` (a 4-bit two's complement weight code), column ``x - x_lo``: ``value(u) * x``."""
    return tuple((u - 16 if u > 7 else u) * x for u in range(16) for x in range(x_lo, x_lo + 16))


@register
class QConvProducts(KernelDef):
    name = "qconv_products"
    op = "QConv"
    variant = "products"
    default = False
    packed_io = True

    def supports(self, node, graph) -> bool:
        """Weights of at most 4 bits and an input within one of `INPUT_RANGES` (4-bit activations)."""
        x_lo, x_hi = value_range(graph.values[node.inputs[0]])
        return (code_bits(graph.values[node.inputs[1]].data) <= 4
                and any(lo <= x_lo and x_hi <= hi for lo, hi in INPUT_RANGES))

    def c_context(self, node, graph):
        """The band geometry of the other QConv kernels, the 4-bit codes, the walk's plan and
        the product table of the input's range."""
        a = node.attrs
        w = graph.values[node.inputs[1]].data
        cout, cin_g, kh, kw = w.shape
        geo = conv_band(node, graph)
        del geo["offsets"]
        taps = cin_g * kh * kw
        codes, _ = weight_codes(w.reshape(1, -1), 4)  # one row: every channel's codes back to back
        dh, dw = a.get("dilations", (1, 1))
        plan = walk_plan(geo, cin_g, kh, kw, dh, dw, 4)
        x_lo = 0 if value_range(graph.values[node.inputs[0]])[0] >= 0 else -8
        return {
            **geo, **requant_context(node, graph), **plan, "codes": codes, "taps_per_channel": taps,
            "columns": COLUMNS, "unit_bytes": sum(len(r["cols"]) for r in plan["unit"]) // 2,
            "x_lo": x_lo, "products": product_table(x_lo),
            "cin_g": cin_g, "cout": cout, "cout_g": cout // a["group"], "group": a["group"],
            "group_stride": cin_g * geo["plane"],
        }

    def cost_features(self, node, graph, ctx) -> dict[str, float]:
        """Per walk of a channel's codes (``blocks``, up to 4 columns each): its loop iterations
        (``iter_visits``) and code decodes (``tap_visits``); per output and tap one lookup
        (``lookups``); besides `band_features`. Code grows with the lookups the walk functions
        unroll (``code_lookups``)."""
        cout, oh, ow = ctx["cout"], ctx["oh"], ctx["ow"]
        taps = ctx["cin_g"] * ctx["kh"] * ctx["kw"]
        blocks = cout * oh * (ow // COLUMNS + (ow % COLUMNS > 0))
        unrolled = sum(len(r["cols"]) for r in ctx["unit"] + ctx["rest"])
        walked_columns = (COLUMNS if ow >= COLUMNS else 0) + ow % COLUMNS
        return {
            **band_features(ctx, cout), "blocks": float(blocks), "iter_visits": float(blocks * ctx["iters"]),
            "tap_visits": float(blocks * taps), "lookups": float(cout * oh * ow * taps),
            "code_lookups": float(unrolled * walked_columns),
        }
