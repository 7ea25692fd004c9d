"""Canonicalization: the float IR in the small normal form quantizers and lowering expect.

`canonicalize` runs these passes in order (each is a pure ``Graph -> Graph`` in its own module,
whose docstring states the invariant it establishes):

1. `remove_identity`: no Identity / Dropout;
2. `fold_constants`: no node with only constant inputs;
3. `normalize_arith`: Sub/Div by a constant are Add/Mul; the constant operand comes second;
4. `normalize_gemm`: MatMul by a constant is a Gemm; Gemm weights ``[out, in]``, transB=1,
   alpha=beta=1; the reshape feeding a Gemm is ``Flatten(axis=1)`` when equivalent;
5. `reduce_mean_to_pool`: a spatial ReduceMean is GlobalAveragePool (+ Flatten);
6. `fold_pad`: zero Pads are folded into the Conv / AveragePool reading them;
7. `fold_bias_add`: a per-channel constant Add after a Conv/Gemm is its bias;
8. `fold_batchnorm`: no BatchNormalization (folded into Conv/Gemm, else Mul + Add);
9. `fuse_activations`: Relu / Clip are the ``act`` of the Conv/Gemm/Add before them.

The order matters: Gemms are normalized before biases and BN fold into them, and BN is folded
before activations fuse (a Conv's ``act`` blocks BN folding). The float function is unchanged (up to
float rounding) and the result verifies.
"""
from __future__ import annotations

from pqc.ir import Graph
from pqc.pipeline import PassContext, register_pass

from .fold_bias import fold_bias_add
from .fold_bn import fold_batchnorm
from .fold_constants import fold_constants
from .fold_pad import fold_pad
from .fuse_activation import fuse_activations
from .normalize_arith import normalize_arith
from .normalize_gemm import normalize_gemm
from .reduce_to_pool import reduce_mean_to_pool
from .remove_identity import remove_identity

STEPS = (
    remove_identity,
    fold_constants,
    normalize_arith,
    normalize_gemm,
    reduce_mean_to_pool,
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
