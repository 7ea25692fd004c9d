"""Dead output channels: channels whose weights are negligible, so their output is ``act(bias)``.

Pretrained networks have them (a BN of variance 0 over a filter that weight decay drove to
~1e-9, with a real bias). Left to the weight search, such a channel gets the fine exponent its
tiny weights ask for, and its integer bias ``round(b / 2^(e_x + e_w))`` leaves int32.

Rule. A channel is *dead* when its largest ``|w|`` is at most `DEAD_RATIO` times the layer's
largest ``|w|`` (all-zero channels included; every channel of an all-zero layer is dead). At
2^-16 the channel's weights lie 2^-9 below one step of the grid of the layer's widest channel
even at 8 bits (they would round to 0 there): residue, not a learned filter. Trained live
channels are far above it (no channel of the reference models lies below 2^-4 of its layer before
BN folding).

Fix. A dead channel's weights are stored as exactly 0, so the program computes
``requantize(q_b)`` for it: the bias, requantized, which is the float channel's value ``act(b)``
up to rounding (its weights move it by less than one weight step of the layer). Its exponent is
the layer's finest live exponent (what a pruned all-zero channel always took, so such programs
do not change, and the last layer's int32 logits exponent ``e_x + min e_w`` is unaffected), made
coarser only as far as needed for ``|q_b| <= DEAD_BIAS_LIMIT``: 24 significant bits of bias, far
finer than any output format, with 7 bits of int32 headroom for the requantizer's rounding add.
Folding the constant into the consumers' biases instead would also need every consumer to be a
linear layer (not a pool, Add or output), so this local fix was chosen.
"""
from __future__ import annotations

import numpy as np

from pqc.ir import Graph
from pqc.quant import LAYER_OPS, ActQuant, WeightQuant, get_quant, set_quant

DEAD_RATIO = 2.0 ** -16
DEAD_BIAS_LIMIT = 1 << 24


def dead_rows(rows: np.ndarray) -> np.ndarray:
    """Indices of the dead rows of a ``[C, K]`` weight matrix (see the module doc)."""
    peak = np.abs(np.asarray(rows, np.float64)).max(axis=1)
    return np.flatnonzero(peak <= DEAD_RATIO * peak.max()).astype(np.int64)


def bury(exps: np.ndarray, q: np.ndarray, dead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exponents and integer weights (channel on axis 0) with the ``dead`` channels zeroed and
    at the finest exponent of the live ones (0 when none is live)."""
    exps, q = np.array(exps, copy=True), np.array(q, copy=True)
    live = np.setdiff1d(np.arange(len(exps)), dead)
    exps[dead] = exps[live].min() if live.size else 0
    q[dead] = 0
    return exps, q


def fit_dead_biases(g: Graph) -> None:
    """Coarsen, in place, each dead channel's exponent until its integer bias fits
    `DEAD_BIAS_LIMIT`, now that the layers' input exponents are known."""
    for node in (n for n in g.nodes if n.op in LAYER_OPS):
        wq = get_quant(g, node.inputs[1])
        bias = g.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
        if not isinstance(wq, WeightQuant) or not len(wq.dead) or bias is None:
            continue
        x_quant = get_quant(g, node.inputs[0])
        if not isinstance(x_quant, ActQuant):
            continue
        b = np.broadcast_to(np.abs(np.asarray(bias, np.float64)).reshape(-1), wq.exps.shape)[wq.dead]
        e_fit = np.ceil(np.log2(np.maximum(b, np.finfo(np.float64).tiny) / DEAD_BIAS_LIMIT)) - x_quant.exp
        exps = wq.exps.copy()
        exps[wq.dead] = np.maximum(exps[wq.dead], e_fit.astype(exps.dtype))
        set_quant(g, node.inputs[1], WeightQuant(wq.bits, wq.fmt, exps, wq.q, wq.out_axis, wq.dead))

