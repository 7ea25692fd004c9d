"""A static batch-1 float graph as a dynamic-batch one, when nothing in it depends on the batch.

Many exports fix the batch at 1. Inference runs one sample at a time anyway, but RAPQ and
AdaPruner run the float graph on batches of calibration or training data. `rebatch` makes such a
graph batch-agnostic: every Reshape that keeps axis 0 (1 -> 1) becomes ``keep_batch``, and the
graph is marked ``dynamic_batch``. It refuses (None) a graph with an op on axis 0 (a Reshape
that moves it, Flatten/Concat/Softmax at axis 0, a Transpose or Squeeze/Unsqueeze/reduction
touching it), and then proves the result: two random samples run as one batch must give what
the original gives on each alone (which also catches constants shaped for batch 1 that an op
would meet at batch 2).
"""
from __future__ import annotations

import numpy as np

from pqc.errors import PqcError
from pqc.executor import FloatExecutor
from pqc.ir import Graph, Node


def _acts_on_batch(node: Node) -> bool:
    """Whether ``node`` (of a batch-1 graph) reads or writes across axis 0."""
    a = node.attrs
    if node.op in ("Flatten", "Concat", "Softmax") and a.get("axis") == 0:
        return True
    if node.op == "Transpose" and a["perm"][0] != 0:
        return True
    return 0 in tuple(a.get("axes", ()) or ())


def rebatch(graph: Graph) -> Graph | None:
    """``graph`` if it already has a dynamic batch, else its dynamic-batch copy, or None when a
    static graph's result would depend on its batch (module doc)."""
    if graph.dynamic_batch:
        return graph
    if any(graph.values[name].shape[:1] != (1,) for name in graph.inputs):
        return None
    g = graph.copy()
    for node in g.nodes:
        if node.op == "Reshape" and not node.attrs["keep_batch"]:
            before, after = g.values[node.inputs[0]].shape, node.attrs["shape"]
            if before[:1] != (1,) or tuple(after[:1]) != (1,):
                return None
            node.attrs["keep_batch"] = True
        elif _acts_on_batch(node):
            return None
    g.dynamic_batch = True
    rng = np.random.default_rng(0)
    samples = {name: rng.normal(0, 1, (2, *graph.values[name].shape[1:])).astype(np.float32) for name in graph.inputs}
    try:
        both = FloatExecutor(g).run(samples)
    except (RuntimeError, ValueError, PqcError):  # an op met a batch of 2 it was not shaped for
        return None
    alone = [FloatExecutor(graph).run({k: v[i:i + 1] for k, v in samples.items()}) for i in range(2)]
    for name in graph.outputs:
        want = np.concatenate([a[name] for a in alone])
        if both[name].shape != want.shape or not np.allclose(both[name], want, rtol=1e-4, atol=1e-5):
            return None
    return g
