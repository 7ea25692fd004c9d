"""`qconv_compact`: QConv with its weights packed at their bit width (the smallest tables).

Each weight is a ``bits``-bit two's complement field, ``bits`` the narrowest width holding the
layer's weights (at most the lowered bit width; `pqc.backends.c_tables.packed_weights`, one
byte-aligned row per output channel); the kernel decodes it and adds the input shifted by each
set bit of the weight's magnitude, so flash is about ``bits/8`` bytes per weight and the time
grows with the weights' bit lengths instead of their NAF digits.
"""
from __future__ import annotations

import numpy as np

from pqc.backends.c_tables import band_features, conv_band, packed_weights, requant_context
from pqc.backends.kernels import KernelDef, register
from pqc.intops.linear import signed_width


def magnitude_bits(w: np.ndarray) -> int:
    """The bit lengths of the weights' magnitudes, summed: the shift-add steps of one pass."""
    return int(sum(int(v).bit_length() for v in np.abs(np.asarray(w, dtype=np.int64)).ravel()))


def packed_walk_features(w: np.ndarray, row_bytes: int, positions: int) -> dict[str, float]:
    """Cost features of a packed-weight walk over ``positions`` outputs per channel: each output
    decodes its channel's whole row (``row_bytes`` loads, one field per weight) and runs one
    shift-add step per bit of each weight's magnitude."""
    w = np.asarray(w).reshape(len(w), -1)
    return {
        "calls": 1.0, "outputs": float(len(w) * positions), "channels": float(len(w)),
        "weight_visits": float(w.size * positions), "byte_loads": float(len(w) * row_bytes * positions),
        "bit_visits": float(magnitude_bits(w) * positions),
    }


@register
class QConvCompact(KernelDef):
    name = "qconv_compact"
    op = "QConv"
    variant = "compact"
    default = False
    packed_io = True

    def c_context(self, node, graph):
        """The band geometry of the tables kernel, the packed weights and the steps
        between a window's taps (channel planes, dilated rows, dilated columns)."""
        a = node.attrs
        w = graph.values[node.inputs[1]]
        cout, cin_g = w.shape[:2]
        geo = conv_band(node, graph)
        del geo["offsets"]
        dh, dw = a.get("dilations", (1, 1))
        return {
            **geo,
            **packed_weights(w.data.reshape(cout, -1), signed_width(w.data)),
            **requant_context(node, graph),
            "cin_g": cin_g, "cout": cout, "cout_g": cout // a["group"], "group": a["group"],
            "group_stride": cin_g * geo["plane"], "tap_row_step": dh * geo["wp"], "tap_col_step": dw,
        }

    def cost_features(self, node, graph, ctx) -> dict[str, float]:
        """The counts this kernel's instructions are about linear in, for a cost model that fits
        one coefficient per count and kernel: ``weight_visits`` (one decode per weight and
        output) and ``magnitude_bits`` (one shift-add step per bit of a weight's magnitude and
        output), besides `pqc.backends.c_tables.band_features`."""
        w = graph.values[node.inputs[1]].data
        outputs_per_channel = ctx["oh"] * ctx["ow"]
        return {
            **band_features(ctx, ctx["cout"]),
            "weight_visits": float(outputs_per_channel * w.size),
            "magnitude_bits": float(outputs_per_channel * magnitude_bits(w)),
        }
