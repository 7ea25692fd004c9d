"""Compilation targets: each names its default pass pipeline and its code generator.

A target is what `pqc compile --target` picks. ``shift-accel`` is a machine with integer add,
shift, logic and compare and no multiplier (Cortex-M0, RV32I, shift-only accelerators): its
program is the integer IR that `lower` produces, emitted as C99.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .errors import PqcError


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    #: builds the default pipeline spec from the compile options
    pipeline: Callable[[dict[str, Any]], str]


RAPQ_ONLY_OPTIONS = ("mode", "iters", "calib_size")
"""Compile options only the ``rapq`` pass takes (dropped for ``quantize``)."""


def _shift_accel_pipeline(opts: dict[str, Any]) -> str:
    method = opts.get("method")
    if method == "uniform":
        raise PqcError("method 'uniform' reconstructs with float (non power-of-two) scales, which a shift-only "
                       "machine cannot run; it is an accuracy reference only (see benchmarks/rapq_benchmark.py). "
                       "Use --method rapq for target shift-accel")
    if method == "rapq":
        opts = {k: v for k, v in opts.items() if k != "method"}
        step = "rapq"
    else:
        opts = {k: v for k, v in opts.items() if k not in RAPQ_ONLY_OPTIONS}
        step = "quantize"
    quant = ",".join(f"{k}={v}" for k, v in opts.items() if v is not None)
    return f"canonicalize,{step}({quant}),lower"


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
