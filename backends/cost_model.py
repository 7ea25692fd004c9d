"""Calibrated kernel costs: a layer's flash bytes and instructions per core, estimated.

``backends/kernel_costs.json`` (written by ``benchmarks/calibrate_kernels.py`` from QEMU
measurements) holds, per kernel, non-negative coefficients on the kernel's ``cost_features``
for its instructions on each core and its Cortex-M0 code bytes. A layer's flash is its exact
constant-table bytes plus the estimated code bytes.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pqc.errors import InternalError
from pqc.ir import Graph, Node

from .c_tables import table_bytes
from .kernels import KernelDef

#: the cores the model estimates, and the emulated board each was measured on
CORES = {"cortex-m0": "mps2-an385", "rv32i": "rv32-virt"}
#: the estimated core of each architecture a firmware board has (`pqc.backends.firmware.Board.core`)
ARCH_CORE = {"armv6m": "cortex-m0", "rv32i": "rv32i"}
COSTS_PATH = Path(__file__).with_name("kernel_costs.json")
CALIBRATE = "benchmarks/calibrate_kernels.py"


@dataclass(frozen=True)
class LayerCost:
    """A layer's estimated flash (tables exact, code estimated) and instructions per core, and
    the exact bytes of its constant tables alone."""

    flash_bytes: int
    instructions: dict[str, float]
    table_bytes: int = 0


@functools.lru_cache(maxsize=1)
def calibration() -> dict[str, Any]:
    """The calibration table (package data)."""
    return json.loads(COSTS_PATH.read_text())


def coefficients(kernel: KernelDef) -> dict[str, Any]:
    """The calibrated coefficients of ``kernel``; InternalError when it was never calibrated."""
    try:
        return calibration()["kernels"][kernel.name]
    except KeyError:
        raise InternalError(f"kernel {kernel.name!r} has no calibrated cost in {COSTS_PATH.name}; "
                            f"rerun {CALIBRATE}") from None


def estimate(kernel: KernelDef, node: Node, graph: Graph) -> LayerCost:
    """``kernel``'s estimated cost for ``node``."""
    coefs = coefficients(kernel)
    ctx = kernel.c_context(node, graph)
    features = kernel.cost_features(node, graph, ctx)

    def linear(target: str) -> float:
        return sum(coefs[target].get(f, 0.0) * v for f, v in features.items())

    tables = table_bytes(ctx)
    return LayerCost(tables + round(linear("code_bytes")), {core: linear(core) for core in CORES}, tables)


def program_instructions(program: Graph, core: str = "cortex-m0") -> float:
    """The estimated instructions of one inference of ``program`` on ``core``: every node's
    kernel (as chosen) estimated and summed."""
    from .kernels import kernel_for

    return sum(estimate(kernel_for(n, program), n, program).instructions[core] for n in program.nodes)
