"""`qavgpool_generic`: the C kernel of QAvgPool (its single variant)."""
from __future__ import annotations

from pqc.backends.c_tables import multiplier_codes, requant_shifts, uint_table, window_geometry
from pqc.backends.kernels import KernelDef, register
from pqc.intops.window import avg_divisors, torch_pads


@register
class QAvgPoolGeneric(KernelDef):
    name = "qavgpool_generic"
    op = "QAvgPool"
    variant = "generic"

    def c_context(self, node, graph):
        """Zero-padded planes, the window's taps, one multiplier record and shift per distinct
        divisor, and (unless all positions share one divisor) each position's record index."""
        a = node.attrs
        x = graph.values[node.inputs[0]]
        geo = window_geometry(x, graph.values[node.outputs[0]], a, torch_pads(x.shape[2:], a), 0)
        index = {d: i for i, (d, _, _) in enumerate(a["recip"])}
        which = [index[int(d)] for d in avg_divisors(x.shape[2:], a).ravel()]
        return {
            **geo,
            **multiplier_codes([m for _, m, _ in a["recip"]]),
            "taps": uint_table(geo.pop("offsets")),
            "shifts": requant_shifts([k + a["shift_base"] for _, _, k in a["recip"]], node.name),
            "uniform": len(a["recip"]) == 1,
            **({} if len(a["recip"]) == 1 else {"which": uint_table(which)}),
            "lo": a["lo"], "hi": a["hi"],
        }
