"""The schedule a build deploys: how activations sit in RAM and in what order rows are computed,
chosen against the RAM budget.

Two independent choices give four candidate programs, all computing the same integers:

* layout (``--activations``): ``bytes``, one activation per byte, or ``packed``, activations of at
  most 4 (2) bits two (four) per byte (`pqc.backends.activation_layout`);
* execution (``--schedule``): ``plain``, layer by layer, or ``streamed``, every chain
  `pqc.backends.streaming.stream_candidates` finds run row by row, its intermediate tensors
  reduced to band rows.

Kernels are selected once, on the program as it comes (`pqc.backends.kernel_select`), and kept
in every candidate: every conv kernel reads and writes both layouts and runs fed in a stream,
and a selection per candidate let the cost model's rough split of the packed fields' cost
(`benchmarks/calibrate_kernels.py`) trade fast kernels for slow ones (measured: 1.5x the
instructions on a 24-wide ResNet). ``auto`` leaves a choice open: under a
RAM budget the candidate with the fewest estimated Cortex-M0 instructions (the calibrated cost
model, `pqc.backends.cost_model`) among those whose RAM fits wins; with none fitting, or without
a budget, the one of the smallest arena (then the fewest instructions). A candidate identical to
another (nothing to pack, no chain to stream) is not built twice.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import PqcError
from ..ir import Graph

LAYOUTS = ("auto", "packed", "bytes")
SCHEDULES = ("auto", "plain", "streamed")


@dataclass(frozen=True)
class Candidate:
    """One layout and execution order of the program, its kernels selected."""

    layout: str
    schedule: str
    program: Graph
    arena_bytes: int
    #: arena + input/output buffers + stack allowance, as `pqc.backends.memory_report.RamFit` counts
    ram_bytes: int

    @property
    def label(self) -> str:
        return f"{self.layout}/{self.schedule}"


def check_schedule(activations: str, schedule: str) -> None:
    """Refuse an unknown layout or execution order (one line, exit status 2)."""
    if activations not in LAYOUTS:
        raise PqcError(f"unknown activation layout {activations!r}; known: {', '.join(LAYOUTS)}")
    if schedule not in SCHEDULES:
        raise PqcError(f"unknown schedule {schedule!r}; known: {', '.join(SCHEDULES)}")


def candidates(program: Graph, optimize: str, flash_budget: int | None, activations: str = "auto",
               schedule: str = "auto") -> list[Candidate]:
    """The distinct candidates ``activations`` x ``schedule`` allow, kernels selected."""
    from .activation_layout import pack_activations, packed_bits
    from .c_emitter import planned_memory
    from .kernel_select import select_kernels
    from .memory_report import STACK_ALLOWANCE, io_bytes, kernel_stack_bytes
    from .streaming import stream_candidates, stream_layers

    check_schedule(activations, schedule)
    program = select_kernels(program, optimize, flash_budget)
    chains = stream_candidates(program)
    orders = {"plain": program, **({"streamed": stream_layers(program, chains)} if chains else {})}
    out = []
    for order in [o for o in orders if schedule in ("auto", o)] or ["plain"]:  # nothing to stream: plain
        packed = pack_activations(orders[order])
        layouts = {"bytes": orders[order], **({"packed": packed} if any(map(packed_bits, packed.values.values())) else {})}
        for layout in [lay for lay in layouts if activations in ("auto", lay)] or ["bytes"]:  # nothing to pack
            g = layouts[layout]
            arena = planned_memory(g).arena_bytes
            out.append(Candidate(layout, order, g, arena, arena + io_bytes(g) + STACK_ALLOWANCE + kernel_stack_bytes(g)))
    return out


def choose_schedule(program: Graph, optimize: str, flash_budget: int | None, activations: str = "auto",
                    schedule: str = "auto", ram_budget: int | None = None) -> Candidate:
    """The candidate a build deploys (module docstring)."""
    from .cost_model import program_instructions

    options = candidates(program, optimize, flash_budget, activations, schedule)
    if len(options) == 1:
        return options[0]
    fitting = [c for c in options if ram_budget is not None and c.ram_bytes <= ram_budget]
    if fitting:
        return min(fitting, key=lambda c: program_instructions(c.program))
    smallest = min(c.arena_bytes for c in options)
    return min((c for c in options if c.arena_bytes == smallest), key=lambda c: program_instructions(c.program))
