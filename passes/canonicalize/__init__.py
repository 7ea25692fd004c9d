"""Canonicalization: the float IR in the small normal form quantizers and lowering expect.

`canonicalize` runs these passes in order (each is a pure ``Graph -> Graph`` in its own module,
whose docstring states the invariant it establishes; each is also a pass of its own, registered
under its function's name, so a pipeline spec can name it alone, e.g. ``fold_batchnorm,lower``):

1. `remove_identity`: no Identity / Dropout;
2. `fold_constants`: no node with only constant inputs;
3. `normalize_arith`: Sub/Div by a constant are Add/Mul; the constant operand comes second;
4. `normalize_gemm`: MatMul by a constant is a Gemm; Gemm weights ``[out, in]``, transB=1,
   alpha=beta=1; the reshape feeding a Gemm is ``Flatten(axis=1)`` when equivalent;
5. `reduce_mean_to_pool`: a spatial ReduceMean is GlobalAveragePool (+ Flatten);
6. `channel_permute`: a channel shuffle (Reshape, Transpose, Reshape moving whole channels) is
   one ChannelPermute;
7. `fold_pad`: zero Pads are folded into the Conv / AveragePool reading them;
8. `fold_bias_add`: a per-channel constant Add after a Conv/Gemm is its bias;
9. `fold_batchnorm`: no BatchNormalization (folded into Conv/Gemm, else Mul + Add);
10. `fuse_activations`: Relu / Clip are the ``act`` of the Conv/Gemm/Add before them.

The order matters: Gemms are normalized before biases and BN fold into them, and BN is folded
before activations fuse (a Conv's ``act`` blocks BN folding). The float function is unchanged (up to
float rounding) and the result verifies.
"""
from __future__ import annotations

import sys
from typing import Callable

from pqc.ir import Graph
from pqc.pipeline import PassContext, register_pass

from pqc.passes.canonicalize.channel_permute import channel_permute
from pqc.passes.canonicalize.fold_bias_add import fold_bias_add
from pqc.passes.canonicalize.fold_batchnorm import fold_batchnorm
from pqc.passes.canonicalize.fold_constants import fold_constants
from pqc.passes.canonicalize.fold_pad import fold_pad
from pqc.passes.canonicalize.fuse_activations import fuse_activations
from pqc.passes.canonicalize.normalize_arith import normalize_arith
from pqc.passes.canonicalize.normalize_gemm import normalize_gemm
from pqc.passes.canonicalize.reduce_mean_to_pool import reduce_mean_to_pool
from pqc.passes.canonicalize.remove_identity import remove_identity

STEPS = (
    remove_identity,
    fold_constants,
    normalize_arith,
    normalize_gemm,
    reduce_mean_to_pool,
    channel_permute,
    fold_pad,
    fold_bias_add,
    fold_batchnorm,
    fuse_activations,
)


def canonicalize(graph: Graph) -> Graph:
    """Apply every canonicalization step in order; the input graph is left untouched."""
    for step in STEPS:
        graph = step(graph)
    graph.verify()
    return graph


@register_pass("canonicalize")
def canonicalize_pass(graph: Graph, ctx: PassContext) -> Graph:
    """Canonicalize the float IR (see the module doc)."""
    return canonicalize(graph)


def _step_pass(step: Callable[[Graph], Graph]) -> Callable[[Graph, PassContext], Graph]:
    """``step`` as a pipeline pass: the context is unused; its doc is the step module's, which
    states the invariant the step establishes."""

    def run(graph: Graph, ctx: PassContext) -> Graph:
        return step(graph)

    run.__doc__ = sys.modules[step.__module__].__doc__
    return run


for _step in STEPS:
    register_pass(_step.__name__)(_step_pass(_step))
