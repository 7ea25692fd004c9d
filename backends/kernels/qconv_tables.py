"""`qconv_tables`: QConv as NAF digit tables walked one output at a time."""
from __future__ import annotations

from typing import Any, Mapping

from pqc.backends.c_tables import band_features, conv_band, group_taps, linear_tables
from pqc.backends.kernels import KernelDef, register


def digit_walk_features(ctx: Mapping[str, Any], positions: int) -> dict[str, float]:
    """Cost features of a digit-table walk over ``positions`` outputs per channel: each output
    visits its channel's digit groups and digits (one delta each); each channel then skips its groups once."""
    cout = len(ctx["ngroups"].values)
    groups = sum(ctx["ngroups"].values)
    return {
        "calls": 1.0, "outputs": float(cout * positions), "channels": float(cout), "groups": float(groups),
        "group_visits": float(groups * positions), "digit_visits": float(len(ctx["deltas"].values) * positions),
    }


@register
class QConvTables(KernelDef):
    name = "qconv_tables"
    op = "QConv"
    variant = "tables"
    packed_io = True
    #: read an unpadded input through the band too (the fast variant's choice)
    always_band = False
    #: output columns per table walk
    columns = 1

    def c_context(self, node, graph):
        """A zero-padded band of input rows per output row (when padded; `band_geometry`) and
        digit tables whose offsets cover the channel group's ``Cin/group`` planes; the kernel
        steps windows by the strides."""
        a = node.attrs
        cout, cin_g = graph.values[node.inputs[1]].shape[:2]
        geo = conv_band(node, graph, always=self.always_band)
        offsets = group_taps(geo.pop("offsets"), geo["plane"], cin_g)
        return {
            **geo,
            **linear_tables(node, graph, offsets),
            "cin_g": cin_g, "cout": cout, "cout_g": cout // a["group"], "group": a["group"],
            "group_stride": cin_g * geo["plane"],
        }

    def cost_features(self, node, graph, ctx) -> dict[str, float]:
        """The counts this kernel's instructions are about linear in (see `walk_features`), for
        a cost model that fits one coefficient per count and kernel."""
        return walk_features(ctx, self.columns)


def walk_features(ctx: Mapping[str, Any], columns: int) -> dict[str, float]:
    """Cost counts of a digit-table QConv walking ``columns`` output columns per walk (the
    last ``ow % columns`` in one more walk): ``walks`` (calls, each reloading bias and
    pointers), ``group_visits`` and ``delta_visits`` (one delta load and pointer add per tap
    list entry and walk) and, for several columns, ``tap_loads`` (one input add per delta and
    column), besides `band_features`."""
    oh, ow, cout = ctx["oh"], ctx["ow"], ctx["cout"]
    per_row = ow // columns + (ow % columns > 0)
    deltas, groups = len(ctx["deltas"].values), len(ctx["groups"].values) // 3
    out = {
        **band_features(ctx, cout),
        "group_visits": float(oh * per_row * groups),
        "delta_visits": float(oh * per_row * deltas),
    }
    if columns > 1:  # one column: a walk per output, a tap per delta (the counts above)
        out.update(walks=float(cout * oh * per_row), tap_loads=float(oh * ow * deltas))
    return out
