"""lower: annotated, canonicalized float IR -> integer IR (`pqc.intops`).

Invariant established: every node is an integer op whose activations carry ``meta["exp"]``,
``meta["bits"]`` and ``meta["signed"]``, every constant is an integer array, and range analysis
has proven that every accumulator and intermediate fits int32 (bounds in ``node.meta["range"]``).
Activation values keep their float names, so per-layer dumps of both programs line up.

Decisions (DESIGN.md "Integer semantics" leaves them open):

* Formats. Ops that compute (Conv, Gemm, Add, Mul, Concat, pools, affine, LUT) requantize to their
  output's `ActQuant`; data-movement ops (MaxPool, reshapes, channel permutations) keep their input's format and
  ignore their output's annotation, since they cannot rescale. Consumers always read the format
  of the integer value they get.
* Biases and other compile-time constants use `intmath.round_half_away` (symmetric, so a
  negated constant quantizes to the negated integer).
* Clip bounds of a fused ``act`` become ``rhu(bound / 2^e_y)`` with ``rhu`` = round half up,
  the rounding the requantizer applies at run time. Rounding is monotone, so
  ``clamp(rhu(a), rhu(lo), rhu(hi)) == rhu(clamp(a, lo, hi))``: the integer output is exactly the
  quantized clipped value. ReLU makes ``lo = 0``; the output format's range always applies.
* LUT entries are ``clamp(round_half_away(f(q * 2^e_x) / 2^e_y), qmin, qmax)`` with ``f`` the
  float op's own forward (the float op registry), evaluated in float64.
* Constant multipliers (Mul/Div by a constant, standalone BN) get 15 significant bits each and
  lose trailing zero bits while the accumulator stays at least as fine as the output.
* A Softmax producing a graph output is dropped (argmax is unchanged); ``graph.meta
  ["dropped_softmax"]`` lists the dropped nodes for the report.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from pqc.intmath import INT32_MAX, INT32_MIN, format_range, reciprocal, round_half_away, round_half_up
from pqc.intops.qmul import MAX_GATE_BITS, gate_broadcasts
from pqc.intops.window import avg_divisors, output_hw
from pqc.errors import InternalError, ModelError
from pqc.ir import Graph, Node, Value, fresh_name
from pqc.ops import get_op
from pqc.pipeline import PassContext, register_pass
from pqc.quant import ActQuant, WeightQuant, get_quant

from pqc.passes.range_analysis import analyze_ranges, fix_hint

#: float op -> function emitting its integer node(s)
LOWERINGS: dict[str, Callable[["_Lowering", Node], None]] = {}

#: elementwise float ops of one input that lower to a lookup table
LUT_OPS = frozenset({"Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Sigmoid"})
#: widest input a lookup table accepts (its table has 2^bits entries)
MAX_LUT_BITS = 10
#: significant bits of a constant multiplier (QAffine's m)
AFFINE_BITS = 15
#: the largest requantizing shift of a QAffine (see `_affine`)
AFFINE_MAX_SHIFT = 20
#: largest reciprocal multiplier of an average pool
RECIP_MAX = (1 << 16) - 1


def lowers(*ops: str) -> Callable:
    """Decorator: register a lowering function for float ops ``ops``."""
    def deco(fn: Callable[["_Lowering", Node], None]) -> Callable[["_Lowering", Node], None]:
        for op in ops:
            LOWERINGS[op] = fn
        return fn
    return deco


def lower(graph: Graph) -> Graph:
    """The integer program of an annotated float graph; ``graph`` is left untouched.

    Raises `ModelError` naming the node for an op that cannot be lowered, a missing or
    unsupported annotation, or (from range analysis) a value that may overflow int32.
    """
    ctx = _Lowering(graph)
    for node in ctx.src.nodes:
        if node.name in ctx.dropped:
            continue
        fn = LOWERINGS.get(node.op)
        if fn is None:
            raise ModelError(
                f"node {node.name!r} ({node.op}) cannot be lowered to integer ops; "
                f"lowerable float ops: {', '.join(sorted(LOWERINGS))}"
            )
        fn(ctx, node)
    analyze_ranges(ctx.dst)
    return ctx.dst


@register_pass("lower")
def lower_pass(graph: Graph, ctx: PassContext) -> Graph:
    """Lower the quantized float graph to the integer program, proven to fit int32."""
    return lower(graph)


class _Lowering:
    """State of one lowering run: the float source, the integer graph being built."""

    def __init__(self, src: Graph) -> None:
        self.src = src
        self.dropped: set[str] = set()
        self.formats: dict[str, ActQuant] = {}
        outputs = [self._drop_softmax(o) for o in src.outputs]
        meta = dict(src.meta, dropped_softmax=sorted(self.dropped))
        self.dst = Graph(src.name, inputs=src.inputs, outputs=outputs, dynamic_batch=src.dynamic_batch, meta=meta)
        for name in src.inputs:
            q = self.act_quant(name)
            if not q.signed or q.bits > 8:
                raise ModelError(f"graph input {name!r}: the network input must be signed int8 or narrower, got {q}")
            self.add_activation(name, q)

    def _drop_softmax(self, out: str) -> str:
        node = self.src.producer(out)
        if node is not None and node.op == "Softmax" and len(self.src.consumers(out)) == 0:
            self.dropped.add(node.name)
            return node.inputs[0]
        return out

    # ------------------------------------------------------------------ formats
    def act_quant(self, name: str) -> ActQuant:
        q = get_quant(self.src, name)
        if not isinstance(q, ActQuant):
            producer = self.src.producer(name)
            where = f"node {producer.name!r} ({producer.op}): output" if producer else "graph input"
            raise ModelError(f"{where} {name!r} has no ActQuant annotation: quantize the graph before lowering")
        if q.bits > 32:
            raise ModelError(f"activation {name!r}: {q.bits} bits exceed int32")
        return q

    def fmt(self, name: str) -> ActQuant:
        """The format of an already lowered activation (which may differ from its annotation)."""
        return self.formats[name]

    def add_activation(self, name: str, q: ActQuant) -> None:
        """Declare integer activation ``name`` (shape of the float value) in format ``q``."""
        self.formats[name] = q
        dtype = "int32" if q.bits > 8 else ("int8" if q.signed else "uint8")
        meta = {"exp": int(q.exp), "bits": int(q.bits), "signed": bool(q.signed)}
        self.dst.add_value(Value(name, tuple(self.src.values[name].shape), dtype, None, meta))

    def const(self, base: str, data: np.ndarray, meta: dict[str, Any] | None = None) -> str:
        """Add an integer constant under a name no float value uses (activations keep theirs)."""
        name = fresh_name(base, self.src.values, self.dst.values)
        return self.dst.add_value(Value(name, tuple(data.shape), str(data.dtype), data, meta or {})).name

    def emit(self, node: Node, op: str, inputs: list[str], attrs: dict[str, Any]) -> None:
        self.dst.nodes.append(Node(op, inputs, list(node.outputs), attrs, node.name, {"float_op": node.op}))

    def activation_input(self, node: Node, i: int) -> str:
        name = node.inputs[i]
        if name not in self.dst.values or self.dst.values[name].is_const:
            raise ModelError(f"node {node.name!r} ({node.op}): input {i} ({name!r}) must be an activation")
        return name


def _range(q: ActQuant) -> tuple[int, int]:
    return format_range(q.bits, q.signed)


def _clamp_bounds(node: Node, q: ActQuant) -> tuple[int, int]:
    """``lo, hi`` of a requantizing op: the output format's range, narrowed by a fused ``act``."""
    lo, hi = _range(q)
    act = node.attrs.get("act")
    if act is None:
        return lo, hi
    if act == "relu":
        return max(lo, 0), hi
    if isinstance(act, (tuple, list)) and act[0] == "clip":
        if act[1] is not None:
            lo = max(lo, round_half_up(act[1] * 2.0 ** -q.exp))
        if act[2] is not None:
            hi = min(hi, round_half_up(act[2] * 2.0 ** -q.exp))
        return lo, max(lo, hi)
    raise ModelError(f"node {node.name!r} ({node.op}): unknown fused activation {act!r}")


def _int32(node: Node, what: str, a: np.ndarray) -> np.ndarray:
    """``round_half_away(a)`` as int32, refusing values that do not fit. The range is checked on the
    real values, before any integer conversion, so a huge one is reported as itself."""
    a = np.asarray(a, dtype=np.float64)
    worst = float(a.flat[np.argmax(np.abs(a))]) if a.size else 0.0
    if a.size and not (np.isfinite(worst) and INT32_MIN - 0.5 < worst < INT32_MAX + 0.5):
        raise ModelError(f"node {node.name!r} ({node.op}): {what} reaches {worst:.6g}, beyond int32")
    return np.asarray(round_half_away(a)).astype(np.int32)


# ------------------------------------------------------------------ Conv / Gemm
def _weights(ctx: _Lowering, node: Node, transpose: bool) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Integer int8 weights with the output channel on axis 0, their exponents per channel, and
    the weight constant's ``meta``: its ``bits``, ``format``, ``exps`` and, if any, its ``dead``
    channels (the number format the program keeps, so reports and kernels need not go back to
    the float graph)."""
    wq = get_quant(ctx.src, node.inputs[1])
    if not isinstance(wq, WeightQuant):
        raise ModelError(f"node {node.name!r} ({node.op}): weight {node.inputs[1]!r} has no WeightQuant annotation")
    q = np.asarray(wq.q, dtype=np.int64)
    out_axis = wq.out_axis
    if transpose:
        q, out_axis = q.T, 1 - out_axis
    if out_axis != 0:
        raise InternalError(f"node {node.name!r} ({node.op}): weight output channels must be on axis 0 after transposition")
    if q.size and (q.min() < -128 or q.max() > 127):
        raise InternalError(f"node {node.name!r} ({node.op}): integer weights exceed int8 ({wq.bits} bits)")
    exps = np.broadcast_to(np.asarray(wq.exps, dtype=np.int64).reshape(-1), (q.shape[0],))
    meta = {"bits": int(wq.bits), "format": wq.fmt, "exps": tuple(int(e) for e in exps)}
    if len(wq.dead):
        meta["dead"] = tuple(int(c) for c in wq.dead)
    return q.astype(np.int8), exps, meta


def _linear(ctx: _Lowering, node: Node, op: str, weights: tuple[np.ndarray, np.ndarray, dict[str, Any]],
            bias: np.ndarray | None, attrs: dict[str, Any]) -> None:
    """Emit QConv/QGemm: integer bias ``round(b / 2^(e_x+e_w))``, shifts ``e_y - e_x - e_w``."""
    w, e_w, w_meta = weights
    x = ctx.activation_input(node, 0)
    e_x = ctx.fmt(x).exp
    q_y = ctx.act_quant(node.outputs[0])
    e_acc = e_x + e_w
    b = np.zeros(w.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    try:
        q_b = _int32(node, "the integer bias", b * np.exp2(-e_acc.astype(np.float64)))
    except ModelError as exc:
        raise ModelError(f"{exc}; {fix_hint(node.name, w_meta['bits'])}") from None
    lo, hi = _clamp_bounds(node, q_y)
    shift = tuple(int(s) for s in q_y.exp - e_acc)
    inputs = [x, ctx.const(f"{node.name}_w", w, w_meta), ctx.const(f"{node.name}_b", q_b)]
    ctx.add_activation(node.outputs[0], q_y)
    ctx.emit(node, op, inputs, {**attrs, "shift": shift, "lo": lo, "hi": hi})


@lowers("Conv")
def _conv(ctx: _Lowering, node: Node) -> None:
    a = node.attrs
    attrs = {k: tuple(a[k]) for k in ("kernel_shape", "strides", "pads", "dilations")}
    attrs["group"] = int(a["group"])
    _linear(ctx, node, "QConv", _weights(ctx, node, transpose=False), ctx.src.const(node.inputs[2]) if len(node.inputs) > 2 else None, attrs)


@lowers("Gemm")
def _gemm(ctx: _Lowering, node: Node) -> None:
    a = node.attrs
    if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0:
        raise ModelError(f"node {node.name!r} (Gemm): transA and alpha != 1 must be canonicalized away before lowering")
    weights = _weights(ctx, node, transpose=not a.get("transB", 0))
    c = ctx.src.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if c is not None:
        c = np.broadcast_to(np.asarray(c, dtype=np.float64) * a.get("beta", 1.0), (weights[0].shape[0],))
    _linear(ctx, node, "QGemm", weights, c, {})


# ------------------------------------------------------------------ Add / Sub / Mul / Div / BN
@lowers("Add", "Sub")
def _add(ctx: _Lowering, node: Node) -> None:
    a_name, b_name = node.inputs
    ca, cb = ctx.src.const(a_name), ctx.src.const(b_name)
    negate = node.op == "Sub"
    if ca is None and cb is None:
        return _qadd(ctx, node, negate)
    if ca is not None and cb is not None:
        raise ModelError(f"node {node.name!r} ({node.op}): constant operands must be folded before lowering")
    if cb is not None:  # x + c, x - c
        xi, scale, offset = 0, 1.0, -np.asarray(cb, dtype=np.float64) if negate else cb
    else:  # c + x, c - x
        xi, scale, offset = 1, -1.0 if negate else 1.0, ca
    _affine(ctx, node, xi, np.asarray(scale), np.asarray(offset, dtype=np.float64))


def _qadd(ctx: _Lowering, node: Node, negate: bool) -> None:
    a, b = ctx.activation_input(node, 0), ctx.activation_input(node, 1)
    if ctx.src.values[a].shape != ctx.src.values[b].shape:
        raise ModelError(f"node {node.name!r} ({node.op}): broadcasting between two activations is not supported")
    e_a, e_b = ctx.fmt(a).exp, ctx.fmt(b).exp
    e = min(e_a, e_b)
    q_y = ctx.act_quant(node.outputs[0])
    lo, hi = _clamp_bounds(node, q_y)
    ctx.add_activation(node.outputs[0], q_y)
    ctx.emit(node, "QAdd", [a, b], {
        "shift_a": e_a - e, "shift_b": e_b - e, "shift": q_y.exp - e, "lo": lo, "hi": hi, "negate_b": negate,
    })


@lowers("Mul", "Div")
def _mul(ctx: _Lowering, node: Node) -> None:
    c = ctx.src.const(node.inputs[1])
    if c is None:
        if node.op == "Div":
            raise ModelError(f"node {node.name!r} (Div): a quotient of two activations cannot be lowered "
                             "to a multiplier-free program")
        return _qmul(ctx, node)
    c = np.asarray(c, dtype=np.float64)
    _affine(ctx, node, 0, 1.0 / c if node.op == "Div" else c, np.zeros(()))


def _qmul(ctx: _Lowering, node: Node) -> None:
    """Emit QMul for the product of a feature map and a gate (either operand order): the gate is
    the operand broadcast per channel, else (equal shapes) the narrower one; ``shift = e_y - e_x -
    e_g``."""
    a, b = ctx.activation_input(node, 0), ctx.activation_input(node, 1)
    shape_a, shape_b = ctx.src.values[a].shape, ctx.src.values[b].shape
    if gate_broadcasts(shape_a, shape_b) and (shape_a != shape_b or ctx.fmt(b).bits <= ctx.fmt(a).bits):
        x, g = a, b
    elif gate_broadcasts(shape_b, shape_a):
        x, g = b, a
    else:
        raise ModelError(f"node {node.name!r} (Mul): a product of activations of shapes {shape_a} and {shape_b} "
                         "cannot be lowered: one operand must have the other's shape, or be one gate per channel "
                         "of the same rank ([N, C, 1, 1])")
    q_g = ctx.fmt(g)
    if q_g.bits > MAX_GATE_BITS:
        raise ModelError(f"node {node.name!r} (Mul): the gate {g!r} has {q_g.bits} bits; a product of two "
                         f"activations needs a gate of at most {MAX_GATE_BITS} bits (one shift-add per bit)")
    q_y = ctx.act_quant(node.outputs[0])
    lo, hi = _clamp_bounds(node, q_y)
    ctx.add_activation(node.outputs[0], q_y)
    ctx.emit(node, "QMul", [x, g], {"shift": q_y.exp - ctx.fmt(x).exp - q_g.exp, "lo": lo, "hi": hi})


@lowers("BatchNormalization")
def _batchnorm(ctx: _Lowering, node: Node) -> None:
    scale, bias, mean, var = (np.asarray(ctx.src.const(i), dtype=np.float64) for i in node.inputs[1:5])
    k = scale / np.sqrt(var + node.attrs["epsilon"])
    as_channels = (-1,) + (1,) * (len(ctx.src.values[node.inputs[0]].shape) - 2)  # [C] on axis 1
    _affine(ctx, node, 0, k.reshape(as_channels), (bias - mean * k).reshape(as_channels))


def _per_channel(ctx: _Lowering, node: Node, x: str, c: np.ndarray) -> np.ndarray:
    """A constant broadcast against activation ``x``, as one number per channel (axis 1)."""
    shape = ctx.src.values[x].shape
    channels = shape[1] if len(shape) > 1 else 1
    c = np.asarray(c, dtype=np.float64)
    if c.ndim > len(shape):
        raise ModelError(f"node {node.name!r} ({node.op}): constant of shape {c.shape} broadcasts beyond the input")
    full = c.reshape((1,) * (len(shape) - c.ndim) + c.shape)
    if any(d != 1 for i, d in enumerate(full.shape) if i != 1) or full.shape[1] not in (1, channels):
        raise ModelError(f"node {node.name!r} ({node.op}): only scalar or per-channel constants (axis 1) "
                         f"can be lowered, got shape {c.shape}")
    return np.broadcast_to(full.reshape(-1), (channels,)).copy()


def _affine(ctx: _Lowering, node: Node, xi: int, scale: np.ndarray, bias: np.ndarray) -> None:
    """Emit QAffine for ``x * scale + bias`` per channel: ``m = scale / 2^e_m`` with
    `AFFINE_BITS` significant bits, integer bias ``round(bias / 2^(e_x + e_m))``.

    The requantizing shift is at most `AFFINE_MAX_SHIFT`: a channel of a tiny scale keeps fewer
    significant bits in ``m`` (none, ``m = 0``, below ``2^-AFFINE_MAX_SHIFT`` of an output step
    per input step), an error under ``2^-12`` of an output step over the whole input range. A
    BatchNormalization that a Concat kept from folding has such channels in pretrained networks
    (gamma ~1e-10), whose 15-bit multiplier would need a 40-bit shift, beyond int32."""
    x = ctx.activation_input(node, xi)
    e_x = ctx.fmt(x).exp
    q_y = ctx.act_quant(node.outputs[0])
    scale, bias = _per_channel(ctx, node, x, scale), _per_channel(ctx, node, x, bias)
    if not np.all(np.isfinite(scale)) or not np.all(np.isfinite(bias)):
        raise ModelError(f"node {node.name!r} ({node.op}): constant is not finite")
    ms, exps = zip(*(_multiplier(float(s), q_y.exp - e_x) for s in scale))
    e_m = np.array(exps, dtype=np.int64)
    q_b = bias * np.exp2(-(e_x + e_m).astype(np.float64))
    lo, hi = _clamp_bounds(node, q_y)
    inputs = [x, ctx.const(f"{node.name}_m", _int32(node, "the multiplier", np.array(ms, dtype=np.int64))),
              ctx.const(f"{node.name}_b", _int32(node, "the integer bias", q_b))]
    ctx.add_activation(node.outputs[0], q_y)
    ctx.emit(node, "QAffine", inputs, {"shift": tuple(int(s) for s in q_y.exp - e_x - e_m), "lo": lo, "hi": hi})


def _multiplier(s: float, max_exp: int) -> tuple[int, int]:
    """``(m, e)`` with ``m * 2^e ~ s`` to `AFFINE_BITS` bits, ``e`` at least ``max_exp -
    AFFINE_MAX_SHIFT``; trailing zero bits of ``m`` are dropped while ``e < max_exp`` (the
    accumulator stays as fine as the output). ``s = 0`` gives ``(0, max_exp)``."""
    e = max(math.frexp(abs(s))[1] - AFFINE_BITS, max_exp - AFFINE_MAX_SHIFT)
    m = int(round_half_away(s * 2.0 ** -e))
    if m == 0:
        return 0, max_exp
    while m % 2 == 0 and e < max_exp:
        m, e = m // 2, e + 1
    return m, e


# ------------------------------------------------------------------ Concat
@lowers("Concat")
def _concat(ctx: _Lowering, node: Node) -> None:
    xs = [ctx.activation_input(node, i) for i in range(len(node.inputs))]
    q_y = ctx.act_quant(node.outputs[0])
    lo, hi = _range(q_y)
    axis = node.attrs["axis"] % len(ctx.src.values[xs[0]].shape)
    ctx.add_activation(node.outputs[0], q_y)
    ctx.emit(node, "QConcat", xs, {"axis": axis, "shifts": tuple(q_y.exp - ctx.fmt(x).exp for x in xs),
                                   "lo": lo, "hi": hi})


# ------------------------------------------------------------------ pools
def _check_pool_shape(ctx: _Lowering, node: Node, attrs: dict[str, Any]) -> tuple[int, int]:
    in_hw = tuple(ctx.src.values[node.inputs[0]].shape[2:])
    out_hw = tuple(ctx.src.values[node.outputs[0]].shape[2:])
    if output_hw(in_hw, attrs) != out_hw:
        raise ModelError(f"node {node.name!r} ({node.op}): window rules give {output_hw(in_hw, attrs)}, "
                         f"the graph says {out_hw}")
    return in_hw


@lowers("MaxPool")
def _maxpool(ctx: _Lowering, node: Node) -> None:
    x = ctx.activation_input(node, 0)
    a = node.attrs
    attrs = {k: tuple(a[k]) for k in ("kernel_shape", "strides", "pads")}
    attrs.update(dilations=tuple(a.get("dilations", (1, 1))), ceil_mode=int(a.get("ceil_mode", 0)))
    _check_pool_shape(ctx, node, attrs)
    ctx.add_activation(node.outputs[0], ctx.fmt(x))
    ctx.emit(node, "QMaxPool", [x], attrs)


def pool_reciprocal(node: Node, d: int, x_range: tuple[int, int]) -> tuple[int, int]:
    """``(m, k)`` for divisor ``d``, with ``m`` small enough that ``sum * m`` stays well in int32."""
    max_sum = d * max(abs(x_range[0]), abs(x_range[1]), 1)
    m_max = min(RECIP_MAX, INT32_MAX // (4 * max_sum))
    if m_max < 1:
        raise ModelError(f"node {node.name!r} ({node.op}): a window sum may reach {max_sum}, too wide to average in int32")
    return reciprocal(d, m_max)


@lowers("AveragePool")
def _avgpool(ctx: _Lowering, node: Node) -> None:
    x = ctx.activation_input(node, 0)
    a = node.attrs
    if tuple(a.get("dilations", (1, 1))) != (1, 1):
        raise ModelError(f"node {node.name!r} (AveragePool): dilated average pooling is not supported")
    attrs = {k: tuple(a[k]) for k in ("kernel_shape", "strides", "pads")}
    attrs.update(ceil_mode=int(a.get("ceil_mode", 0)), count_include_pad=int(a.get("count_include_pad", 0)))
    in_hw = _check_pool_shape(ctx, node, attrs)
    q_y = ctx.act_quant(node.outputs[0])
    x_range = _range(ctx.fmt(x))
    divisors = sorted(int(d) for d in np.unique(avg_divisors(in_hw, attrs)))
    attrs["recip"] = tuple((d, *pool_reciprocal(node, d, x_range)) for d in divisors)
    attrs.update(shift_base=q_y.exp - ctx.fmt(x).exp, lo=_range(q_y)[0], hi=_range(q_y)[1])
    ctx.add_activation(node.outputs[0], q_y)
    ctx.emit(node, "QAvgPool", [x], attrs)


@lowers("GlobalAveragePool")
def _global_avgpool(ctx: _Lowering, node: Node) -> None:
    x = ctx.activation_input(node, 0)
    shape = ctx.src.values[x].shape
    if len(shape) != 4:
        raise ModelError(f"node {node.name!r} (GlobalAveragePool): only 4-D inputs are supported, got {shape}")
    q_y = ctx.act_quant(node.outputs[0])
    m, k = pool_reciprocal(node, shape[2] * shape[3], _range(ctx.fmt(x)))
    lo, hi = _range(q_y)
    ctx.add_activation(node.outputs[0], q_y)
    ctx.emit(node, "QGlobalAvgPool", [x], {"m": m, "k": k, "shift_base": q_y.exp - ctx.fmt(x).exp, "lo": lo, "hi": hi})


# ------------------------------------------------------------------ lookup tables
@lowers(*LUT_OPS)
def _lut(ctx: _Lowering, node: Node) -> None:
    x = ctx.activation_input(node, 0)
    fx = ctx.fmt(x)
    if fx.bits > MAX_LUT_BITS:
        raise ModelError(f"node {node.name!r} ({node.op}): a lookup table needs an input of at most "
                         f"{MAX_LUT_BITS} bits, got {fx.bits}")
    in_min, in_max = _range(fx)
    q = np.arange(in_min, in_max + 1, dtype=np.int64)
    real = torch.from_numpy(q.astype(np.float64) * 2.0 ** fx.exp)
    (f,) = get_op(node.op).forward(node, [real])
    q_y = ctx.act_quant(node.outputs[0])
    lo, hi = _range(q_y)
    table = np.clip(round_half_away(f.numpy() * 2.0 ** -q_y.exp), lo, hi)
    ctx.add_activation(node.outputs[0], q_y)
    dtype = ctx.dst.values[node.outputs[0]].dtype
    ctx.emit(node, "QLut", [x, ctx.const(f"{node.name}_table", table.astype(dtype))], {"in_min": in_min})


@lowers("ChannelPermute")
def _channel_permute(ctx: _Lowering, node: Node) -> None:
    x = ctx.activation_input(node, 0)
    ctx.add_activation(node.outputs[0], ctx.fmt(x))
    ctx.emit(node, "QPermute", [x], {"perm": tuple(int(p) for p in node.attrs["perm"])})


# ------------------------------------------------------------------ reshapes
_KEEPS_BATCH: dict[str, Callable[[Node], bool]] = {
    "Flatten": lambda n: n.attrs["axis"] == 1,
    "Reshape": lambda n: bool(n.attrs.get("keep_batch", False)),
    "Squeeze": lambda n: 0 not in n.attrs["axes"],
    "Unsqueeze": lambda n: 0 not in n.attrs["axes"],
    "Identity": lambda n: True,
    "Dropout": lambda n: True,
}


@lowers(*_KEEPS_BATCH)
def _reshape(ctx: _Lowering, node: Node) -> None:
    x = ctx.activation_input(node, 0)
    ctx.add_activation(node.outputs[0], ctx.fmt(x))
    shape = tuple(int(d) for d in ctx.src.values[node.outputs[0]].shape)
    ctx.emit(node, "QReshape", [x], {"shape": shape, "keep_batch": _KEEPS_BATCH[node.op](node)})
