"""The baseline power-of-two quantizer: pass ``quantize`` (methods ``lp`` and ``naive``).

Runs on a canonicalized graph (`pqc.passes.canonicalize`) and establishes the annotation
invariant of `pqc.quant` that lowering relies on:

* every float activation value (graph inputs included) carries an `ActQuant` with an integer
  exponent; values produced by a pure reshape (Flatten, Reshape, Squeeze, Unsqueeze), a
  ChannelPermute or a MaxPool share their input's `ActQuant` object; Add and Concat operands keep their own;
* every Conv/Gemm weight carries a `WeightQuant` (output channel on axis 0, integer ``q`` on
  the grid of its format and bits, per-channel integer exponents).

Scales: ``lp`` searches a clipping range minimizing the Lp(2.4) error per weight output channel
and per activation tensor, then takes whichever of the two neighbouring powers of two has the
smaller Lp error; ``naive`` takes the min/max range and rounds ``log2`` of its scale
(`pot_scales`). An all-zero weight channel (e.g. pruned) takes the
smallest exponent of its layer. An activation's search runs on a uniform sample of at most
``max_samples`` of its calibration values (seeded: results are deterministic) with its range
from the exact calibration extremes (`calibrate`).

Bits and signs:

* The *first layer* is the first Conv/Gemm in topological order, the *last layer* the last one.
  The first layer's weights and output, and the last layer's weights and input activation, use
  ``first_last_bits`` (None: no exception, ``wbits``/``abits`` as everywhere else); the first
  layer's output ``first_output_bits`` instead where given.
* The graph inputs are 8-bit signed, and so is anything computed from them before any layer
  (input preprocessing such as a normalizing Add/Mul feeds the first layer at 8 bits).
* The last layer's output, when it (or a pure reshape of it) is a graph output, is the 32-bit
  signed accumulator ``ActQuant(32, True, min_c(e_x + e_w[c]))``: exact logits. Otherwise it
  uses ``first_last_bits`` like its input.
* Every other activation uses ``abits``. It is unsigned when it cannot be negative by
  construction: the output of a Conv/Gemm/Add whose ``act`` is relu or a clip with lower bound
  >= 0, of Relu, of a Clip with min >= 0, of Sigmoid/HardSigmoid/Softmax, a pool, reduce-mean
  or reshape of an unsigned tensor, a Concat or a product (Mul) of unsigned activations. Otherwise signed.
* Weights use ``layer_bits[name]`` where given, else ``wbits`` (``first_last_bits`` for the first
  and last layer), in ``weight_format``
  ``int`` (symmetric integers ``|q| <= 2^(b-1)-1``) or ``pot`` (0 or ``+-2^k``, `pot_grid`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pqc.errors import ModelError, PqcError
from pqc.ir import Graph, Node
from pqc.pipeline import PassContext, register_pass
from pqc.quant import LAYER_OPS, ActQuant, BitWidths, WeightQuant, set_quant

from pqc.passes.quantize.dead import bury, dead_rows, fit_dead_biases
from pqc.passes.quantize.calibrate import ActivationStats, CalibData, calibrate
from pqc.passes.quantize.pot_scales import Grid, int_grid, method_exponents, pot_grid, quantize_rows

METHODS = ("lp", "naive")
INPUT_BITS = 8
ACCUMULATOR_BITS = 32
SHARING_OPS = ("Flatten", "Reshape", "Squeeze", "Unsqueeze", "MaxPool", "ChannelPermute")
_SIGN_PRESERVING = SHARING_OPS + ("AveragePool", "GlobalAveragePool", "ReduceMean")
_NONNEGATIVE = ("Relu", "Sigmoid", "HardSigmoid", "Softmax")


@dataclass(frozen=True)
class QuantizeOptions(BitWidths):
    """Options of ``quantize``: the bit widths, the scale ``method`` (``lp`` or ``naive``), and
    the calibration sample cap and batch size of the activation search."""

    method: str = "lp"
    max_samples: int = 1 << 16
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise PqcError(f"quantize: unknown method {self.method!r}; known: {', '.join(METHODS)}")
        self.check("quantize")


def quantize(graph: Graph, calib: CalibData | None, options: QuantizeOptions | None = None, *, seed: int = 0,
             device: str = "cpu", **overrides: object) -> Graph:
    """A copy of ``graph`` with PoT quantization annotations (see the module doc).

    ``calib`` is the calibration input (``[N] + input_shape[1:]`` floats, or a dict by input
    name); ``options`` (default `QuantizeOptions()`) with ``overrides`` of its fields (e.g.
    ``wbits=4``). Raises `DataError` for bad data, `ModelError` for a graph that is not
    canonical, `PqcError` for bad options.
    """
    opts = replace(options or QuantizeOptions(), **overrides)
    method, wbits, abits, first_last_bits = opts.method, opts.wbits, opts.abits, opts.first_last_bits
    weight_format = opts.weight_format
    g = graph.copy()
    layers = [n for n in g.nodes if n.op in LAYER_OPS]
    if not layers:
        raise ModelError(f"graph {g.name!r} has no Conv or Gemm layer to quantize")
    first, last = layers[0], layers[-1]
    edge_wbits = wbits if first_last_bits is None else first_last_bits
    layer_bits = dict(opts.layer_bits or {})
    unknown = sorted(layer_bits.keys() - {n.name for n in layers})
    if unknown:
        raise PqcError(f"quantize: layer_bits names no layer {', '.join(map(repr, unknown))}; "
                       f"the layers: {', '.join(n.name for n in layers)}")
    weight_exps = {
        layer.name: _quantize_weight(
            g, layer, layer_bits.get(layer.name, edge_wbits if layer in (first, last) else wbits), weight_format, method)
        for layer in layers
    }

    groups = sharing_groups(g)
    unsigned = _unsigned_values(g)
    edge_abits = abits if first_last_bits is None else first_last_bits
    bits_of = _activation_bits(g, groups, first, last, abits, edge_abits,
                               edge_abits if opts.first_output_bits is None else opts.first_output_bits)
    graph_outputs = {groups[o] for o in g.outputs if o in groups}
    accumulator = groups[last.outputs[0]] if groups[last.outputs[0]] in graph_outputs else None

    roots = [r for r in dict.fromkeys(groups.values()) if r != accumulator]
    stats = calibrate(g, calib, roots, max_samples=opts.max_samples, batch_size=opts.batch_size, seed=seed, device=device)
    quant_of: dict[str, ActQuant] = {}
    for root in roots:
        grid = int_grid(bits_of[root], signed=not unsigned[root])
        quant_of[root] = ActQuant(bits_of[root], not unsigned[root], _activation_exponent(stats[root], grid, method))
    if accumulator is not None:
        e_x = quant_of[groups[last.inputs[0]]].exp
        quant_of[accumulator] = ActQuant(ACCUMULATOR_BITS, True, int(e_x + weight_exps[last.name].min()))
    for name, root in groups.items():
        set_quant(g, name, quant_of[root])
    fit_dead_biases(g)
    return g


@register_pass("quantize", options=QuantizeOptions)
def quantize_pass(graph: Graph, ctx: PassContext, options: QuantizeOptions) -> Graph:
    """Baseline PoT quantization (lp or naive) with the context's calibration data and seed."""
    return quantize(graph, ctx.calib, options, seed=ctx.seed, device=ctx.device)


def _quantize_weight(g: Graph, layer: Node, bits: int, fmt: str, method: str) -> np.ndarray:
    """Annotate ``layer``'s weight with a `WeightQuant`; return its per-channel exponents."""
    weight = g.const(layer.inputs[1])
    if weight is None:
        raise ModelError(f"node {layer.name!r} ({layer.op}): its weight is not a constant")
    a = layer.attrs
    if layer.op == "Gemm" and (a["transB"] != 1 or a["transA"] or a["alpha"] != 1.0 or a["beta"] != 1.0):
        raise ModelError(
            f"node {layer.name!r} (Gemm) is not canonical (transB=1, transA=0, alpha=beta=1): run canonicalize first"
        )
    grid = int_grid(bits, signed=True, symmetric=True) if fmt == "int" else pot_grid(bits)
    rows = weight.reshape(weight.shape[0], -1).astype(np.float64)
    exps = method_exponents(method, rows, grid)
    dead = dead_rows(rows)
    exps, q = bury(exps, quantize_rows(rows, exps, grid), dead)
    set_quant(g, layer.inputs[1], WeightQuant(bits, fmt, exps.astype(np.int32), q.reshape(weight.shape), 0, dead))
    return exps


def _activation_exponent(stats: ActivationStats, grid: Grid, method: str) -> int:
    extreme = max(stats.hi, -stats.lo) if grid.signed else max(stats.hi, 0.0)
    return int(method_exponents(method, stats.sample[None, :], grid, np.array([extreme]))[0])


def sharing_groups(g: Graph) -> dict[str, str]:
    """Each float activation -> the root value whose `ActQuant` it shares: itself, unless it is
    produced by a pure reshape or a MaxPool (which cannot rescale). A pass that changes a root's
    format must change the whole group (graph copies keep equal, not identical, annotations)."""
    root = {name: name for name in g.inputs if _is_float(g, name)}
    for node in g.nodes:
        for out in [o for o in node.outputs if _is_float(g, o)]:
            root[out] = root[node.inputs[0]] if node.op in SHARING_OPS and node.inputs[0] in root else out
    return root


def _is_float(g: Graph, name: str) -> bool:
    return bool(np.issubdtype(np.dtype(g.values[name].dtype), np.floating))


def _activation_bits(
    g: Graph, groups: dict[str, str], first: Node, last: Node, abits: int, edge_abits: int, first_out_bits: int
) -> dict[str, int]:
    """Bits of each sharing group (by root): ``abits``; ``first_out_bits`` at the first layer's
    output, ``edge_abits`` at the last layer's input and output; 8 for the inputs and their
    preprocessing."""
    bits_of = {root: abits for root in groups.values()}
    bits_of[groups[first.outputs[0]]] = first_out_bits
    for edge in (last.inputs[0], last.outputs[0]):
        bits_of[groups[edge]] = edge_abits
    for name in _before_layers(g) & groups.keys():  # last: the int8 input contract wins
        bits_of[groups[name]] = INPUT_BITS
    return bits_of


def _before_layers(g: Graph) -> set[str]:
    """The graph inputs and the activations computed from them without passing a Conv/Gemm."""
    before = set(g.inputs)
    for node in g.nodes:
        if node.op not in LAYER_OPS and all(i in before or g.values[i].is_const for i in node.inputs if i):
            before.update(node.outputs)
    return before


def _unsigned_values(g: Graph) -> dict[str, bool]:
    """Whether each activation is non-negative by construction (see the module doc)."""
    unsigned = {name: False for name in g.inputs}
    for node in g.nodes:
        if node.op in ("Conv", "Gemm", "Add"):
            act = node.attrs.get("act")
            flag = act == "relu" or (isinstance(act, (tuple, list)) and act[1] >= 0)
        elif node.op == "Clip":
            flag = node.attrs.get("min") is not None and node.attrs["min"] >= 0
        elif node.op in _SIGN_PRESERVING:
            flag = unsigned.get(node.inputs[0], False)
        elif node.op == "Concat" or (node.op == "Mul" and not any(g.values[i].is_const for i in node.inputs)):
            flag = all(unsigned.get(i, False) for i in node.inputs)
        else:
            flag = node.op in _NONNEGATIVE
        unsigned.update((out, flag) for out in node.outputs)
    return unsigned
