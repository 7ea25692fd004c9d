"""`qconv_fast`: QConv as the digit tables of `qconv_tables`, walked for several adjacent output
columns at once.

Each delta loaded moves one pointer; the taps of ``columns`` adjacent outputs lie at fixed
distances from it (``+stride`` each, an ``ldrb`` immediate on Thumb-1), so one table walk feeds
``columns`` partial sums and the delta load, pointer add and loop counter are paid once per
``columns`` taps. The last ``ow mod columns`` output columns take one narrower walk. The input
always comes through the band of `pqc.backends.c_tables.band_geometry` (padded or not), so the
tables are those of `qconv_tables` over the band.
"""
from __future__ import annotations

from pqc.backends.kernels import register
from pqc.backends.kernels.qconv_tables import QConvTables


@register
class QConvFast(QConvTables):
    name = "qconv_fast"
    variant = "fast"
    default = False
    packed_io = True
    #: output columns per table walk: 4 fits Thumb-1's 8 low registers (delta and tap
    #: pointers, counter, 4 sums, a loaded byte) and measured fastest on Cortex-M0 and RV32I
    columns = 4
    always_band = True

    def c_context(self, node, graph):
        """`qconv_tables`' context over a band, and the columns per walk."""
        return {**super().c_context(node, graph), "columns": self.columns}
