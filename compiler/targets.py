"""Compilation targets: each names its default pass pipeline and its code generator.

A target is what `pqc compile --target` picks. ``shift-accel`` is a machine with integer add,
shift, logic and compare and no multiplier (Cortex-M0, RV32I, shift-only accelerators): its
program is the integer IR that `lower` produces, emitted as C99.

A target builds its pipeline as typed `PassStep`s from the quantizer's options object
(`pqc.passes.quantize.QuantizeOptions` or `pqc.passes.rapq.RapqOptions`): no option travels as
text, and every default is the options class's own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .errors import PqcError
from .pipeline import PassStep

#: the options a compile spells out in the quantizer's step (and so in the report's pipeline)
QUANTIZE_STEP_FIELDS = ("method", "wbits", "abits", "weight_format", "first_last_bits")
RAPQ_STEP_FIELDS = ("wbits", "abits", "weight_format", "first_last_bits", "mode", "iters", "calib_size")


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    #: the default pipeline for a quantizer options object
    pipeline: Callable[[Any], list[PassStep]]


def _layer_bits(quant: Any) -> tuple[str, ...]:
    """``layer_bits`` and ``first_output_bits`` where the options override some layer's bits:
    spelled out only then, so pipelines without overrides read as before."""
    return tuple(f for f in ("layer_bits", "first_output_bits") if getattr(quant, f, None))


def _shift_accel_pipeline(quant: Any) -> list[PassStep]:
    from pqc.passes.rapq import RapqOptions

    if isinstance(quant, RapqOptions):
        if quant.method == "uniform":
            raise PqcError("method 'uniform' reconstructs with float (non power-of-two) scales, which a shift-only "
                           "machine cannot run; it is an accuracy reference only (see benchmarks/rapq_benchmark.py). "
                           "Use --method rapq for target shift-accel")
        step = PassStep.of("rapq", quant, RAPQ_STEP_FIELDS + _layer_bits(quant))
    else:
        step = PassStep.of("quantize", quant, QUANTIZE_STEP_FIELDS + _layer_bits(quant))
    return [PassStep("canonicalize"), step, PassStep("lower")]


TARGETS: dict[str, Target] = {
    "shift-accel": Target(
        "shift-accel",
        "integer add/shift/logic/compare only (no multiplier): C99 for Cortex-M0, RV32I, FPGAs",
        _shift_accel_pipeline,
    ),
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise PqcError(f"unknown target {name!r}; known targets: {', '.join(sorted(TARGETS))}") from None
