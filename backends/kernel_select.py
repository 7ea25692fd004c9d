"""Per-layer kernel choice for ``--optimize size|speed|balanced`` and ``--flash-budget``.

Every kernel of an op computes the same integers, so the choice changes only the C: it is
recorded as ``node.meta["kernel"]`` (saved with the program, so `pqc verify` and `pqc firmware`
on a build folder re-emit the same C), with the estimate it was chosen on as
``node.meta["cost"]``, for the nodes of ops that have several kernels. Each candidate's cost is
the calibrated model's (`pqc.backends.cost_model.estimate`): flash = exact table bytes +
estimated code bytes, time = estimated Cortex-M0 instructions.

* ``size``: per layer the kernel with the fewest bytes storing the weights (its constant tables,
  and for a kernel that bakes the weights into code, ``code_holds_weights``, that code too: what
  a compressed model's size is), of those the fewest instructions; the rest of the code, a few
  hundred bytes a layer, breaks no tie before speed does, so a fast kernel with the smallest
  tables wins.
* ``speed``: the fewest total instructions whose flash fits ``flash_budget``; without a budget,
  whose flash is not above that of the ops' default kernels (the digit tables), so the fast
  variants replace the tables where they are no larger and nothing grows unasked.
* ``balanced``: the fewest instructions whose flash is not above the layers' weights as dense
  int8 plus int32 biases (`int8_bytes`); when no choice fits that (8-bit weights: every kernel's
  tables and code are above it), what ``size`` picks.
* Without ``flash_budget``, ``speed`` and ``balanced`` also keep the code of the kernels that
  bake weights into it (the unrolled ones) to `UNROLLED_TOTAL_BYTES` in all, taking that choice
  away from the layer where it is largest until they fit: the C compilers take long over
  straight-line code, and an ImageNet-size network would otherwise unroll megabytes of it
  (minutes more for verification's builds) for a speed no part with that much flash needs
  from it. A flash budget is the user's trade and lifts the limit; the reference models stay
  far below it.

The budgeted choice is a multiple-choice knapsack, solved by `min_cost_choice`.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from pqc.errors import PqcError
from pqc.ir import Graph, Node

from .c_tables import table_bytes
from .cost_model import LayerCost, estimate
from .kernels import KERNELS, KernelDef

OPTIMIZE = ("size", "balanced", "speed")
#: the goal of `pqc compile` without ``--optimize``: never more flash than dense int8 weights, and
#: the fewest instructions within that (issue 10: what a firmware engineer compares against)
DEFAULT_OPTIMIZE = "balanced"
#: the core whose estimated instructions the selection minimises
COST_CORE = "cortex-m0"
#: at most this many flash buckets in the knapsack (its rounding, see `min_cost_choice`)
BUCKETS = 4096
#: without a flash budget, the most estimated code bytes all weight-baking kernels may take together
UNROLLED_TOTAL_BYTES = 256 * 1024


def kernel_table_bytes(kernel: KernelDef, node: Node, graph: Graph) -> int:
    """The bytes of the constant tables ``kernel`` emits for ``node``."""
    return table_bytes(kernel.c_context(node, graph))


def weight_bytes(kernel: KernelDef, cost: LayerCost) -> int:
    """The bytes storing a layer's weights under ``kernel``: its tables, and its code when the
    kernel bakes the weights into it."""
    return cost.flash_bytes if kernel.code_holds_weights else cost.table_bytes


def int8_bytes(node: Node, graph: Graph) -> int:
    """A QConv/QGemm node's weights as plain int8 and biases as int32 (the yardstick of ``balanced``)."""
    return graph.values[node.inputs[1]].size + 4 * graph.values[node.inputs[2]].size


def op_kernels(op: str) -> list[KernelDef]:
    """The kernels of ``op``, its default first."""
    return sorted((k for k in KERNELS.values() if k.op == op), key=lambda k: (not k.default, k.name))


#: the least code bytes a weight-baking kernel spends per nonzero weight (one 16-bit Thumb add)
MIN_BAKED_BYTES_PER_WEIGHT = 2


def _surely_over_code_limit(kernel: KernelDef, node: Node, graph: Graph) -> bool:
    """Whether a weight-baking kernel's code for ``node`` must pass its ``max_code_bytes`` on its
    nonzero weights alone: such a layer is skipped before its code is estimated (which on a
    100 M-weight layer would take minutes and gigabytes)."""
    if not kernel.code_holds_weights or kernel.max_code_bytes is None:
        return False
    nonzero = int(np.count_nonzero(graph.values[node.inputs[1]].data))
    return nonzero * MIN_BAKED_BYTES_PER_WEIGHT > kernel.max_code_bytes


def usable_kernels(node: Node, graph: Graph) -> tuple[list[KernelDef], list[LayerCost]]:
    """The kernels ``node`` may get, its default first, each with its estimated cost: those of
    its op that support it and whose code stays within their ``max_code_bytes``."""
    pairs = [(k, estimate(k, node, graph)) for k in op_kernels(node.op)
             if k.supports(node, graph) and not _surely_over_code_limit(k, node, graph)]
    pairs = [(k, c) for k, c in pairs
             if k.max_code_bytes is None or c.flash_bytes - c.table_bytes <= k.max_code_bytes]
    return [k for k, _ in pairs], [c for _, c in pairs]


def min_cost_choice(options: Sequence[Sequence[tuple[int, float]]], budget: int) -> list[int] | None:
    """For each layer the index of one ``(bytes, cost)`` option so that the bytes sum to at most
    ``budget`` and the cost sum is least; None when no choice fits.

    Dynamic programming over the budget in buckets of ``q = ceil(budget / BUCKETS)`` bytes, each
    option's bytes rounded UP to whole buckets: the result never exceeds the budget, and costs
    no more than the best choice under ``budget - len(options) * (q - 1)`` bytes (exact when
    ``q == 1``, i.e. budgets up to `BUCKETS` bytes).
    """
    if budget < 0:
        return None
    q = max(1, math.ceil(budget / BUCKETS))
    cap = budget // q
    best = np.full(cap + 1, np.inf)
    best[0] = 0.0  # best[b]: least cost of the layers so far using exactly b buckets
    picks: list[np.ndarray] = []
    for layer in options:
        nxt = np.full(cap + 1, np.inf)
        pick = np.full(cap + 1, -1)
        for i, (nbytes, cost) in enumerate(layer):
            w = math.ceil(nbytes / q)
            if w > cap:
                continue
            cand = np.full(cap + 1, np.inf)
            cand[w:] = best[: cap + 1 - w] + cost
            better = cand < nxt
            nxt[better], pick[better] = cand[better], i
        best = nxt
        picks.append(pick)
    if not np.isfinite(best).any():
        return None
    b = int(np.argmin(best))
    chosen = []
    for layer, pick in zip(reversed(options), reversed(picks)):
        i = int(pick[b])
        chosen.append(i)
        b -= math.ceil(layer[i][0] / q)
    return chosen[::-1]


def check_optimize(optimize: str) -> None:
    """Refuse an unknown goal (the driver calls this before any pass runs)."""
    if optimize not in OPTIMIZE:
        raise PqcError(f"--optimize {optimize!r}: choose one of {', '.join(OPTIMIZE)}")


def _budget(optimize: str, flash_budget: int | None, nodes: list[Node], graph: Graph,
            costs: list[list[LayerCost]]) -> int | None:
    """The flash the chosen layers may take (None: no limit)."""
    if flash_budget is not None:
        return flash_budget
    if optimize == "balanced":
        return sum(int8_bytes(n, graph) for n in nodes)
    return sum(c[0].flash_bytes for c in costs)  # speed: the default kernels' flash


def _choice_within_unrolled_total(options: Sequence[Sequence[tuple[int, float]]], budget: int,
                                  kernels: Sequence[Sequence[KernelDef]],
                                  costs: Sequence[Sequence[LayerCost]]) -> list[int] | None:
    """`min_cost_choice`, chosen again without the weight-baking kernel of the layer where its
    code is largest while the chosen ones' code exceeds `UNROLLED_TOTAL_BYTES`."""
    allowed = [list(range(len(o))) for o in options]
    while True:
        picks = min_cost_choice([[o[i] for i in a] for o, a in zip(options, allowed)], budget)
        if picks is None:
            return None
        chosen = [a[p] for a, p in zip(allowed, picks)]
        baked = [(costs[n][i].flash_bytes - costs[n][i].table_bytes, n, i) for n, i in enumerate(chosen)
                 if kernels[n][i].code_holds_weights]
        if sum(code for code, _, _ in baked) <= UNROLLED_TOTAL_BYTES:
            return chosen
        _, n, i = max(baked)
        allowed[n].remove(i)


def select_kernels(program: Graph, optimize: str = DEFAULT_OPTIMIZE, flash_budget: int | None = None) -> Graph:
    """A copy of ``program`` whose nodes with a choice of kernel record the one ``optimize``
    picks (see the module doc); PqcError when ``flash_budget`` is below the least flash the
    layers can take."""
    check_optimize(optimize)
    out = program.copy()
    nodes = [n for n in out.nodes if len(op_kernels(n.op)) > 1]
    kernels, costs = zip(*(usable_kernels(n, out) for n in nodes)) if nodes else ((), ())
    options = [[(c.flash_bytes, c.instructions[COST_CORE]) for c in layer] for layer in costs]
    least = sum(min(b for b, _ in o) for o in options)
    if flash_budget is not None and least > flash_budget:
        raise PqcError(f"--flash-budget {flash_budget:,} B: the smallest this model's layers fit in is "
                       f"{least:,} B of tables and code")
    size = [min(range(len(o)), key=lambda i: (weight_bytes(ks[i], layer[i]), o[i][1]))
            for o, layer, ks in zip(options, costs, kernels)]
    if optimize == "size":
        chosen = size
    else:
        budget = _budget(optimize, flash_budget, nodes, out, costs)
        chosen = (min_cost_choice(options, budget) if flash_budget is not None
                  else _choice_within_unrolled_total(options, budget, kernels, costs))
        if chosen is None:  # nothing fits: the least flash under a budget, else what size picks
            chosen = ([min(range(len(o)), key=lambda i: (o[i][0], o[i][1])) for o in options]
                      if flash_budget is not None else size)
    for node, ks, layer, i in zip(nodes, kernels, costs, chosen):
        node.meta["kernel"] = ks[i].name
        node.meta["cost"] = {"flash_bytes": layer[i].flash_bytes,
                             "instructions": {core: round(v) for core, v in layer[i].instructions.items()}}
    return out


def selected_flash(program: Graph) -> int:
    """The estimated flash of the layers `select_kernels` chose kernels for (what a budget bounds)."""
    return sum(n.meta["cost"]["flash_bytes"] for n in program.nodes if "cost" in n.meta)


def measured_flash(program: Graph) -> int | None:
    """The Cortex-M0 flash of ``program``'s model object (text + data, as the harness's
    ``-Os`` build measures it: the figure ``--flash-budget`` bounds); None without the toolchain."""
    import tempfile

    from .c_emitter import emit_c
    from .harness import PASSED, check_cortex_m0

    with tempfile.TemporaryDirectory(prefix="pqc_flash_") as tmp:
        emit_c(program, tmp)
        check = check_cortex_m0(tmp)
    return check.data["text"] + check.data["data"] if check.status == PASSED else None
