"""Where the RAM goes, step by step: the live set of every schedule step, the step that sets the
peak, a picture of buffer lifetimes, and the RAM a build needs against a budget.

Everything is read off the `MemoryPlan` the C emitter uses (`pqc.backends.c_emitter.planned_memory`),
so the figures are those of the emitted C:

* `step_memory`: per schedule step (a node of ``graph.nodes``), the arena buffers live there
  (storage roots and scratch, by the plan's lifetimes) and their bytes, each rounded up to the
  plan's alignment exactly as `pqc.backends.memory_plan.live_lower_bound` counts them; so the
  largest step equals ``plan.arena_lower_bound_bytes``.
* `memory_svg`: TinyEngine's picture of the plan: x the schedule, y the arena offset, each
  buffer a rectangle over its live steps at its offset, with the live bytes per step, the lower
  bound and the arena size on the same axis. Plain SVG text, same plan, same bytes.
* `RamFit` / `ram_needed`: the one account of a build's RAM (arena + the caller's input and
  output buffers + a stack allowance) that ``pqc compile --ram-budget`` and ``pqc firmware``
  check, naming the peak step when it does not fit; a schedule or kernel search under a budget
  calls `ram_needed` on each candidate program.
"""
from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from ..errors import PqcError
from ..ir import Graph
from .memory_plan import MemoryPlan, align_up, live_buffers, value_bytes

#: RAM the up-front budget check reserves for the stack; the firmware measures the real use
STACK_ALLOWANCE = 1024
#: the lifetime picture's file name in a build folder
MEMORY_SVG = "memory.svg"


@dataclass(frozen=True)
class StepMemory:
    """One schedule step: its node, the arena buffers live there as ``(name, bytes)`` and their
    bytes in total, each rounded up to the arena alignment."""

    step: int
    node: str
    op: str
    live_bytes: int
    buffers: tuple[tuple[str, int], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.buffers)


def step_memory(graph: Graph, plan: MemoryPlan) -> tuple[StepMemory, ...]:
    """The live set of every step of ``graph`` under ``plan`` (see the module docstring)."""
    rows = []
    for step, node in enumerate(graph.nodes):
        live = live_buffers(plan, step)
        rows.append(StepMemory(step, node.name, node.op, sum(align_up(plan.buffers[b][1], plan.align) for b in live),
                               tuple((b, plan.buffers[b][1]) for b in live)))
    return tuple(rows)


def peak_step(steps: tuple[StepMemory, ...]) -> StepMemory | None:
    """The first step with the most live bytes (None for an empty schedule)."""
    return max(steps, key=lambda s: (s.live_bytes, -s.step), default=None)


def describe_step(step: StepMemory) -> str:
    """``step 3, layer 'conv2' (QConv), 2,048 B live: a 1,024 B, b 1,024 B``."""
    held = ", ".join(f"{b} {size:,} B" for b, size in step.buffers) or "nothing in the arena"
    return f"step {step.step}, layer {step.node!r} ({step.op}), {step.live_bytes:,} B live: {held}"


@dataclass(frozen=True)
class RamFit:
    """Whether a model's RAM (arena, a buffer per graph input and output, a stack allowance) fits a
    budget; ``peak`` (when known) is the step with the most live bytes."""

    arena_bytes: int
    io_bytes: int
    stack_bytes: int
    budget_bytes: int
    peak: StepMemory | None = None

    @property
    def needed_bytes(self) -> int:
        return self.arena_bytes + self.io_bytes + self.stack_bytes

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.budget_bytes

    def __str__(self) -> str:
        verdict = "fits" if self.fits else "does NOT fit"
        text = (f"RAM: arena {self.arena_bytes:,} B + input/output {self.io_bytes:,} B + stack allowance "
                f"{self.stack_bytes:,} B = {self.needed_bytes:,} B; {verdict} in {self.budget_bytes:,} B")
        return text + (f"; the peak is at {describe_step(self.peak)}" if self.peak else "")


def io_bytes(graph: Graph) -> int:
    """Bytes of the caller's input and output arrays (they live outside the arena)."""
    return sum(value_bytes(graph, v) for v in (*graph.inputs, *graph.outputs))


def kernel_stack_bytes(program: Graph) -> int:
    """The most bytes of stack arrays one of ``program``'s kernels declares beyond the common few
    words (`pqc.backends.kernels.KernelDef.stack_bytes`): added to every stack allowance."""
    from .kernels import kernel_for

    return max((kernel_for(n, program).stack_bytes(n, program) for n in program.nodes), default=0)


def ram_needed(program: Graph, budget_bytes: int, stack_bytes: int = STACK_ALLOWANCE) -> RamFit:
    """The RAM the C of ``program`` needs (as `pqc.backends.c_emitter.emit_c` would plan it), against
    ``budget_bytes``, with the peak step named; nothing is written. The stack is ``stack_bytes``
    plus the largest of the kernels' own stack arrays (`kernel_stack_bytes`)."""
    from .c_emitter import planned_memory

    plan = planned_memory(program)
    return RamFit(plan.arena_bytes, io_bytes(program), stack_bytes + kernel_stack_bytes(program), budget_bytes,
                  peak_step(step_memory(program, plan)))


def check_ram_budget(program: Graph, budget_bytes: int, stack_bytes: int = STACK_ALLOWANCE) -> RamFit:
    """`ram_needed`, or a one-line `PqcError` (exit status 2) when the program does not fit."""
    fit = ram_needed(program, budget_bytes, stack_bytes)
    if not fit.fits:
        raise PqcError(f"the model does not fit the RAM budget of {budget_bytes:,} B: {fit}")
    return fit


# ----------------------------------------------------------------------------- the picture
_COL, _PLOT_H, _LEFT, _TOP, _RIGHT = 28, 360, 78, 44, 150
_LABEL_CHARS = 36
_PALETTE = ("#8dd3c7", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5", "#bc80bd",
            "#ccebc5", "#ffed6f")
_SCRATCH = "#d9d9d9"


def _text(s: str) -> str:
    return escape(s, {'"': "&quot;"})


def _short(name: str, chars: int) -> str:
    return name if len(name) <= chars else "\u2026" + name[len(name) - chars + 1:]


def memory_svg(graph: Graph, plan: MemoryPlan) -> str:
    """The lifetime picture of ``plan`` for ``graph`` as SVG text (see the module docstring)."""
    steps = step_memory(graph, plan)
    n = max(len(steps), 1)
    peak = peak_step(steps)
    top_bytes = max(plan.arena_bytes, max((s.live_bytes for s in steps), default=0), 1)
    label_h = int(_LABEL_CHARS * 6.2 * 0.71) + 20
    width, height = _LEFT + n * _COL + _RIGHT, _TOP + _PLOT_H + label_h

    def x(step: float) -> str:
        return f"{_LEFT + step * _COL:.1f}"

    def y(nbytes: float) -> str:
        return f"{_TOP + _PLOT_H - nbytes * _PLOT_H / top_bytes:.1f}"

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">',
           f'<title>{_text(f"arena of {graph.name}: buffer lifetimes")}</title>',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
           f'<text x="{_LEFT}" y="18" font-size="13">{_text(graph.name)}: arena {plan.arena_bytes:,} B, '
           f'lower bound {plan.arena_lower_bound_bytes:,} B'
           + (_text(f", peak at step {peak.step} ({peak.node})") if peak else "") + "</text>",
           f'<text x="{_LEFT}" y="34">x: schedule step (layer), y: arena offset in bytes; a box is a buffer '
           f'over the steps it is live; the black line is the live bytes per step</text>']
    for i in range(5):  # the byte axis
        v = top_bytes * i // 4
        out.append(f'<line x1="{_LEFT - 4}" y1="{y(v)}" x2="{x(n)}" y2="{y(v)}" stroke="#eeeeee"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y(v)}" text-anchor="end" dominant-baseline="middle">{v:,}</text>')
    if peak is not None:
        out.append(f'<rect x="{x(peak.step)}" y="{_TOP}" width="{_COL}" height="{_PLOT_H}" fill="#fff3c4"/>')
    ordered = sorted(plan.lifetimes, key=lambda b: (plan.buffers[b][0], plan.lifetimes[b][0], b))
    for i, name in enumerate(ordered):
        offset, size = plan.buffers[name]
        first, last = max(plan.lifetimes[name][0], 0), min(plan.lifetimes[name][1], n - 1)
        w, h = (last - first + 1) * _COL, size * _PLOT_H / top_bytes
        color = _SCRATCH if name not in plan.roots else _PALETTE[i % len(_PALETTE)]
        tip = f"{name}: bytes {offset:,}..{offset + size - 1:,} ({size:,} B), live at steps {first}..{last}"
        out.append(f'<rect x="{x(first)}" y="{y(offset + size)}" width="{w}" height="{h:.1f}" fill="{color}" '
                   f'stroke="#555555" stroke-width="0.6"><title>{_text(tip)}</title></rect>')
        chars = int((w - 4) / 6)
        label = name if name in plan.roots else "scratch"
        if h >= 11 and chars >= 3:
            out.append(f'<text x="{_LEFT + first * _COL + 2}" y="{float(y(offset + size / 2)):.1f}" '
                       f'dominant-baseline="middle">{_text(_short(label, chars))}</text>')
    line = " ".join(f"{x(s.step)},{y(s.live_bytes)} {x(s.step + 1)},{y(s.live_bytes)}" for s in steps)
    if line:
        out.append(f'<polyline points="{line}" fill="none" stroke="black" stroke-width="2"/>')
    for nbytes, color, what in ((plan.arena_bytes, "#1f78b4", "arena"),
                                (plan.arena_lower_bound_bytes, "#e31a1c", "lower bound")):
        out.append(f'<line x1="{x(0)}" y1="{y(nbytes)}" x2="{x(n)}" y2="{y(nbytes)}" stroke="{color}" '
                   f'stroke-dasharray="6,3"/>')
        out.append(f'<text x="{float(x(n)) + 4:.1f}" y="{y(nbytes)}" fill="{color}" dominant-baseline="middle">'
                   f'{what} {nbytes:,} B</text>')
    out.append(f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(n)}" y2="{y(0)}" stroke="black"/>')
    for s in steps:
        cx, cy = _LEFT + (s.step + 0.5) * _COL, _TOP + _PLOT_H + 8
        label = f"{s.step} {_short(s.node, _LABEL_CHARS)}" + (" (peak)" if s == peak else "")
        out.append(f'<text x="{cx:.1f}" y="{cy}" text-anchor="end" transform="rotate(-45 {cx:.1f} {cy})">'
                   f'<title>{_text(f"{s.node} ({s.op}): {s.live_bytes:,} B live")}</title>{_text(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
