"""`qgemm_unrolled`: QGemm as straight-line code, each output's weight digits baked into the C
(see `qconv_unrolled`): per output the digit sums over the input vector, no weight table."""
from __future__ import annotations

import numpy as np

from pqc.backends.c_tables import digit_groups, requant_context
from pqc.backends.kernels import KernelDef, register
from pqc.backends.kernels.qconv_unrolled import (UNROLLED_MAX_CODE_BYTES, code_slices, digit_code,
                                                     unrolled_features)


@register
class QGemmUnrolled(KernelDef):
    name = "qgemm_unrolled"
    op = "QGemm"
    variant = "unrolled"
    default = False
    code_holds_weights = True
    max_code_bytes = UNROLLED_MAX_CODE_BYTES

    def c_context(self, node, graph):
        """Per output its digit code over the K inputs of a row; ``rows`` samples of one call."""
        rows, k = graph.values[node.inputs[0]].shape
        w = graph.values[node.inputs[1]].data
        outputs = [{"index": i, "code": digit_code(g, "x", 12)} for i, g in enumerate(digit_groups(w, np.arange(k)))]
        return {**requant_context(node, graph), "rows": rows, "m": len(w), "k": k,
                "slices": [[outputs[i] for i in part] for part in code_slices([o["code"] for o in outputs])]}

    def cost_features(self, node, graph, ctx) -> dict[str, float]:
        """`unrolled_features` with one row's outputs per sample (``rows`` samples)."""
        return unrolled_features(graph.values[node.inputs[1]].data, graph.values[node.inputs[0]].shape[0])
