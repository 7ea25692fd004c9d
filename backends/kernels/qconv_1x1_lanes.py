"""`qconv_1x1_lanes`: a 1x1 QConv (one group) of 2- or 4-bit weights, its products looked up in
tables of multiples of two adjacent pixels held in the two 16-bit lanes of one word.

A pointwise layer multiplies each input by every output channel's weight, and a 2- or 4-bit
weight takes only 4 or 16 values. So for two adjacent output columns the kernel packs their
inputs of channel ``c`` into one word, ``X = x1 + 2^16 x2``, and writes its multiples ``u X`` for
every weight code ``u`` into a table (shift-adds and negations: no multiplier). Each
multiply-accumulate of both columns is then one table load and one add, indexed by the weight's
code as stored (``bits/8`` bytes per weight, the codes of `qconv_buckets`). The table of ``c`` is
built once per column pair and serves every output channel.

The word's sum over a chunk of channels is ``S1 + 2^16 S2`` (mod 2^32). Each lane's sum is
recovered exactly (the low as a signed 16-bit field, the high as the rest shifted down) when
both stay within int16: `lane_chunks` cuts the input channels into chunks whose lane sums are
proven within int16 for every output channel over the input's whole range (the range analysis
of this kernel), and the kernel flushes each chunk's lanes into two int32 accumulators. Chunks
hold at most `TABLE_BYTES` of tables (on the stack, with the accumulators: `stack_bytes`).
"""
from __future__ import annotations

import numpy as np

from pqc.backends.c_tables import band_features, conv_band, requant_context
from pqc.backends.kernels import KernelDef, register
from pqc.backends.kernels.qconv_buckets import code_bits, weight_codes
from pqc.errors import InternalError
from pqc.intmath import value_range

#: the most bytes of multiples tables a chunk of channels takes (each channel's: one word per code)
TABLE_BYTES = 512
#: a lane's sum must stay within int16 to be split off its word exactly
LANE_MIN, LANE_MAX = -(1 << 15), (1 << 15) - 1


def lane_chunks(w: np.ndarray, x_lo: int, x_hi: int, most: int, per_byte: int) -> list[int]:
    """The sizes of consecutive chunks of input channels (each at most ``most``, all but the last
    a multiple of ``per_byte`` so each starts its codes on a byte) whose sum of products, for
    every output channel of ``w`` (``[cout, cin]``) and every input in ``[x_lo, x_hi]``, stays
    within int16: greedy, a chunk grows while its bound holds."""
    w = np.asarray(w, dtype=np.int64).reshape(len(w), -1)
    low = np.minimum(w * x_lo, w * x_hi)  # each product's least and greatest value
    high = np.maximum(w * x_lo, w * x_hi)
    cin = w.shape[1]

    def fits(start: int, n: int) -> bool:
        return bool(low[:, start:start + n].sum(axis=1).min() >= LANE_MIN
                    and high[:, start:start + n].sum(axis=1).max() <= LANE_MAX)

    sizes, start = [], 0
    while start < cin:
        n = per_byte
        while start + n < cin and n + per_byte <= most and fits(start, n + per_byte):
            n += per_byte
        n = min(n, cin - start)
        if not fits(start, n):  # `supports` admits only codes of <= 4 bits on inputs of <= 8
            raise InternalError(f"one byte of {per_byte} weight codes overflows a 16-bit lane")
        sizes.append(n)
        start += n
    return sizes


@register
class QConv1x1Lanes(KernelDef):
    name = "qconv_1x1_lanes"
    op = "QConv"
    variant = "1x1_lanes"
    default = False
    packed_io = True

    def supports(self, node, graph) -> bool:
        """A 1x1 window, one group, weights of at most 4 bits, inputs of at most 8 bits (so a
        byte of codes never overflows a lane)."""
        x_lo, x_hi = value_range(graph.values[node.inputs[0]])
        return (tuple(node.attrs["kernel_shape"]) == (1, 1) and node.attrs["group"] == 1
                and code_bits(graph.values[node.inputs[1]].data) <= 4 and -128 <= x_lo and x_hi <= 255)

    def c_context(self, node, graph):
        """The band geometry of the other QConv kernels (a band only for pads or packed
        inputs), the weight codes and the chunks of input channels."""
        w = graph.values[node.inputs[1]].data
        cout, cin = w.shape[:2]
        geo = conv_band(node, graph)
        del geo["offsets"]
        bits = code_bits(w)
        codes, row_bytes = weight_codes(w, bits)
        entries = 1 << bits
        chunks = lane_chunks(w.reshape(cout, cin), *value_range(graph.values[node.inputs[0]]),
                             TABLE_BYTES // (4 * entries), 8 // bits)
        return {
            **geo, **requant_context(node, graph), "codes": codes, "row_bytes": row_bytes, "bits": bits,
            "entries": entries, "chunks": [{"start": int(s), "size": n} for s, n in zip(np.cumsum([0] + chunks), chunks)],
            # a table row holds one word per channel of the largest chunk, rounded up to a power
            # of two so that a code's row offset is a shift of the code
            "table_row": 1 << (max(chunks) - 1).bit_length(),
            "cin_g": cin, "cout": cout,
        }

    def stack_bytes(self, node, graph) -> int:
        """The multiples tables of the largest chunk and two int32 accumulators per output channel."""
        w = graph.values[node.inputs[1]].data
        return TABLE_BYTES + 8 * len(w)

    def cost_features(self, node, graph, ctx) -> dict[str, float]:
        """Per column pair (``pairs``, an odd last column counted as one): per input channel a
        table built (``table_builds``); per output channel and chunk a walk flushed into the
        accumulators (``flushes``); per output channel, input channel and pair one table load
        and add (``lookups``); besides `band_features`. Code grows with the lookups the chunk
        walks unroll (``code_lookups``) and the table entries the build writes."""
        cout, cin, oh, ow = ctx["cout"], ctx["cin_g"], ctx["oh"], ctx["ow"]
        pairs = oh * -(-ow // 2)
        return {
            **band_features(ctx, cout), "pairs": float(pairs), "table_builds": float(pairs * cin),
            "flushes": float(pairs * cout * len(ctx["chunks"])), "lookups": float(pairs * cout * cin),
            "code_lookups": float(sum({c["size"] for c in ctx["chunks"]})),  # one walk function per chunk size
            "code_entries": float(ctx["entries"]),
        }

