"""QGemm: integer fully-connected layer with per-output requantization.

Inputs: ``x`` [N, K] (int8/uint8), ``w`` int8 constant [M, K] (rows are outputs), ``b`` int32
constant [M]. Attributes: ``shift`` (tuple, one per M), ``lo``, ``hi``.

Semantics: ``acc[n, m] = b[m] + sum_k x[n, k] * w[m, k]`` (exact, int32 by range analysis);
``y = clamp(rshift_round(acc, shift[m]), lo, hi)``.
"""
from __future__ import annotations

import numpy as np
import torch

from . import register
from .linear import LinearOpDef, exact_dtype


@register
class QGemm(LinearOpDef):
    name = "QGemm"

    def accumulate(self, node, x, w):
        dtype = exact_dtype(x, w)
        y = torch.from_numpy(np.asarray(x)).to(dtype) @ torch.from_numpy(np.asarray(w)).to(dtype).T
        return y.numpy().astype(np.int64)

    def positions(self, node, graph):
        return 1
