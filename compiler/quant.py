"""Quantization annotations: the one representation every quantizer produces and lowering reads.

A quantizer (baseline `lp`/`naive`, RAPQ, ...) runs on the canonicalized float IR and attaches

* an `ActQuant` to every activation value (``graph.values[name].meta["quant"]``): per-tensor
  bits, signedness and power-of-two exponent, the real value being ``q * 2**exp``;
* a `WeightQuant` to every weight constant of a Conv/Gemm: per-output-channel exponents and
  the integer weights themselves (so a learned rounding survives exactly as chosen).

Integer biases are not stored: lowering derives them as ``round(b / 2**(e_x + e_w[c]))`` from the
float bias and the two exponents, which is the contract in DESIGN.md. Zero points are always 0
for activations and folded into the integer weights, so no zero point is stored.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import PqcError
from .intmath import format_range

QUANT_KEY = "quant"
WEIGHT_FORMATS = ("int", "pot")
#: the weighted layers: ops whose second input is the weight a `WeightQuant` annotates (and that
#: pruning shrinks, reconstruction trains and the first/last-layer rules count)
LAYER_OPS = ("Conv", "Gemm")


@dataclass(frozen=True)
class BitWidths:
    """The number formats every quantizer takes. These defaults are pqc's: the CLI, the driver,
    the targets and the passes all read them here.

    ``wbits``: weight bits (2..8); ``abits``: activation bits (4..8); ``weight_format``: ``int``
    (symmetric integers) or ``pot`` (0 or +-2^k); ``first_last_bits``: the first layer's weights
    and output and the last layer's weights and input (2..8; None: no exception); ``layer_bits``:
    weight bits by layer name (2..8), overriding ``wbits`` and ``first_last_bits`` for those
    layers (fewer bits give a layer coarser weight exponents, hence a smaller integer bias and
    accumulator: the fix range analysis suggests for one layer); ``first_output_bits``: the first
    layer's output activation alone (4..8; None: ``first_last_bits``), e.g. 4 so that a W4A4
    model keeps 8-bit first-layer weights while its largest activation packs two per byte.
    """

    wbits: int = 8
    abits: int = 8
    weight_format: str = "int"
    first_last_bits: int | None = 8
    layer_bits: Mapping[str, int] | None = None
    first_output_bits: int | None = None

    def check(self, who: str) -> None:
        """Raise `PqcError` (prefixed with the quantizer's name ``who``) for a value out of range."""
        if self.weight_format not in WEIGHT_FORMATS:
            raise PqcError(f"{who}: unknown weight_format {self.weight_format!r}; known: {', '.join(WEIGHT_FORMATS)}")
        limits = [("wbits", self.wbits, 2, 8), ("abits", self.abits, 4, 8)]
        if self.first_last_bits is not None:
            limits.append(("first_last_bits", self.first_last_bits, 2, 8))
        if self.first_output_bits is not None:
            limits.append(("first_output_bits", self.first_output_bits, 4, 8))
        if self.layer_bits is not None and not isinstance(self.layer_bits, Mapping):
            raise PqcError(f"{who}: layer_bits must map layer names to bits, got {self.layer_bits!r}")
        limits += [(f"layer_bits[{name!r}]", bits, 2, 8) for name, bits in (self.layer_bits or {}).items()]
        for name, value, lo, hi in limits:
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise PqcError(f"{who}: {name} must be an integer in {lo}..{hi}, got {value!r}")


@dataclass(frozen=True)
class ActQuant:
    """Per-tensor activation format: ``bits``-bit integers (signed or not) times ``2**exp``."""

    bits: int
    signed: bool
    exp: int

    def __post_init__(self) -> None:
        if not isinstance(self.exp, (int, np.integer)) or isinstance(self.exp, bool):
            raise TypeError(f"activation exponent must be an integer, got {self.exp!r}")

    @property
    def qmin(self) -> int:
        return format_range(self.bits, self.signed)[0]

    @property
    def qmax(self) -> int:
        return format_range(self.bits, self.signed)[1]

    @property
    def scale(self) -> float:
        return float(2.0 ** self.exp)


@dataclass(frozen=True, eq=False)
class WeightQuant:
    """Per-output-channel weight format: integer weights ``q`` and exponents ``exps``.

    ``q`` has the float weight's shape (output channel on axis 0 for Conv, on the output-feature
    axis as stored for Gemm: see `out_axis`), ``exps[c]`` is an integer, and the real weight is
    ``q * 2**exps[c]``. ``fmt`` is ``"int"`` (any integer in range) or ``"pot"`` (0 or +-2^k).
    """

    bits: int
    fmt: str
    exps: np.ndarray
    q: np.ndarray
    out_axis: int = 0
    dead: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        object.__setattr__(self, "dead", np.asarray(self.dead, dtype=np.int64).reshape(-1))
        if self.fmt not in WEIGHT_FORMATS:
            raise ValueError(f"weight format must be 'int' or 'pot', got {self.fmt!r}")
        if not np.issubdtype(np.asarray(self.exps).dtype, np.integer):
            raise TypeError("weight exponents must be integers")
        if not np.issubdtype(np.asarray(self.q).dtype, np.integer):
            raise TypeError("quantized weights must be integers")

    def dequantize(self) -> np.ndarray:
        shape = [1] * self.q.ndim
        shape[self.out_axis] = -1
        return (self.q.astype(np.float64) * np.exp2(self.exps.astype(np.float64)).reshape(shape)).astype(np.float32)


def get_quant(graph, name: str):
    """The annotation of value ``name``, or None."""
    return graph.values[name].meta.get(QUANT_KEY)


def set_quant(graph, name: str, q) -> None:
    graph.values[name].meta[QUANT_KEY] = q
