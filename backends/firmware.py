"""Run the generated C bare-metal on emulated boards and prove it equal to the simulator.

The model's ``<prefix>.c``/``<prefix>.h`` are compiled untouched (only ``<PREFIX>_WEIGHT_SECTION``
is defined, to place the weights in their own flash section) and linked with the test firmware
of ``codegen_templates/firmware`` (start-up code, linker scripts, a ``main`` that runs the model on an
input table generated here). QEMU runs the image under ``-icount shift=0`` (one instruction per
virtual nanosecond) with semihosting for output and exit status; the printed outputs must match
the simulator bit for bit. Figures come from the image (section sizes), the firmware (stack
high-water mark from stack painting) and a counter read around each ``<prefix>_run`` call:
``minstret`` on RV32I, which QEMU derives from ``-icount`` (exact), and SysTick on ARMv6-M,
whose tick is a fixed number of instructions under ``-icount`` (exact to one tick).

Exit conventions follow `pqc.backends.harness`: a mismatch raises `VerificationError`; a build
failure, a fault inside the firmware or a time-out raises `BuildError`.
"""
from __future__ import annotations

import importlib.resources

import re
import subprocess
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PqcError, VerificationError
from ..ir import Graph
from .c_emitter import read_manifest
from ..intmath import value_range
from .harness import FREESTANDING, PACKAGES, BuildError, dump_dtype, input_samples, missing_tools, run_tool, tool_path
from .memory_report import STACK_ALLOWANCE, RamFit, ram_needed
from .simulator import Inputs, simulate

#: the firmware sources; they ship with the source tree, not with the Python package
FIRMWARE_DIR = Path(str(importlib.resources.files("pqc.codegen_templates"))) / "firmware"
CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-Os", *FREESTANDING,
          "-ffunction-sections", "-fdata-sections")
#: the weight tables' section; common/sections.ld collects it into the output section .weights
WEIGHT_SECTION = ".pqc_weights"
DEFAULT_TIMEOUT_S = 120
PACKAGES.update({  # the tools this module adds to the harness's "not installed" messages
    "qemu-system-arm": "qemu-system-arm", "qemu-system-riscv32": "qemu-system-misc",
    "riscv64-unknown-elf-size": "binutils-riscv64-unknown-elf",
})


@dataclass(frozen=True)
class Core:
    """A cross toolchain and the firmware sources of one instruction set."""

    tool_prefix: str
    model_flags: tuple[str, ...]   # what the model is compiled for
    support_flags: tuple[str, ...]  # the firmware's own files (may need more, e.g. CSR access)
    sources: tuple[str, ...]        # relative to FIRMWARE_DIR, besides common/
    libs: tuple[str, ...]


CORES = {
    # libgcc as any Cortex-M firmware links it (e.g. Thumb-1 switch tables; the reference
    # models use none of it); Cortex-M0 has a hardware multiplier anyway.
    "armv6m": Core("arm-none-eabi-", ("-mcpu=cortex-m0", "-mthumb"), ("-mcpu=cortex-m0", "-mthumb"),
                   ("armv6m/arch.c",), ("-lgcc",)),
    # No libgcc: a multiply or divide routine the model needed would fail the link, and a
    # multiply instruction traps on this core, so the run itself proves multiplier-freedom.
    "rv32i": Core("riscv64-unknown-elf-", ("-march=rv32i", "-mabi=ilp32"), ("-march=rv32i_zicsr", "-mabi=ilp32"),
                  ("rv32i/start.S", "rv32i/arch.c"), ()),
}


@dataclass(frozen=True)
class Board:
    """An emulated board: its core, QEMU command, RAM (flash is checked by the linker script)
    and counter."""

    name: str
    core: str
    qemu: tuple[str, ...]
    ram_bytes: int
    insns_per_tick: float  # instructions per counter tick under -icount shift=0 (1 ns each)
    counter: str


BOARDS = {
    b.name: b for b in (
        Board("microbit", "armv6m", ("qemu-system-arm", "-M", "microbit"), 16 << 10, 1e9 / 16e6,
              "SysTick at the 16 MHz core clock under -icount shift=0 (62.5 instructions a tick)"),
        Board("mps2-an385", "armv6m", ("qemu-system-arm", "-M", "mps2-an385"), 4 << 20, 1e9 / 25e6,
              "SysTick at the 25 MHz core clock under -icount shift=0 (40 instructions a tick)"),
        Board("rv32-virt", "rv32i", ("qemu-system-riscv32", "-M", "virt", "-bios", "none", "-cpu",
                                     "rv32,m=false,a=false,f=false,d=false,c=false"), 16 << 20, 1.0,
              "minstret, counted by QEMU -icount shift=0 (exact)"),
    )
}
QEMU_COMMON = ("-display", "none", "-monitor", "none", "-serial", "none", "-icount", "shift=0",
               "-semihosting-config", "enable=on,target=native")


@dataclass(frozen=True)
class Figures:
    """What one firmware run measured. Flash is text + rodata + weights + the .data image (the
    test input table excluded, given as ``inputs_bytes``); RAM is data + bss + stack high-water."""

    board: str
    samples: int
    flash_bytes: int
    weights_bytes: int
    inputs_bytes: int
    ram_bytes: int
    data_bss_bytes: int
    stack_bytes: int
    arena_bytes: int
    instructions: int
    counter: str
    #: the calibrated cost model's estimate of ``instructions`` (`with_estimate`), None until asked
    estimated_instructions: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_estimate(self, program: Graph) -> "Figures":
        """These figures with the cost model's estimate for the board's core beside the measurement."""
        from .cost_model import ARCH_CORE, program_instructions

        core = ARCH_CORE[get_board(self.board).core]
        return replace(self, estimated_instructions=round(program_instructions(program, core)))

    def __str__(self) -> str:
        text = (f"{self.board}: {self.samples} samples bit-exact with the simulator; flash {self.flash_bytes:,} B "
                f"(weights {self.weights_bytes:,} B), RAM {self.ram_bytes:,} B (data+bss {self.data_bss_bytes:,} B, "
                f"stack high-water {self.stack_bytes:,} B), {self.instructions:,} instructions per inference")
        if self.estimated_instructions:
            text += (f" (cost model estimate {self.estimated_instructions:,}: measured / estimated "
                     f"{self.instructions / self.estimated_instructions:.3f})")
        return text


def parse_bytes(text: str) -> int:
    """``"16K"``, ``"16KiB"``, ``"1M"`` or ``"16384"`` -> bytes (K and M are binary)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)(?:i?B)?\s*", text)
    if m is None:
        raise PqcError(f"cannot read {text!r} as a size: expected e.g. 16K, 256KiB, 1M or 16384")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20}[m.group(2).lower()]


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise PqcError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}") from None


def ram_fit(out_dir: str | Path, budget_bytes: int, stack_bytes: int = STACK_ALLOWANCE,
            program: Graph | None = None) -> RamFit:
    """Whether the model emitted into ``out_dir`` fits ``budget_bytes`` of RAM (before any build),
    by its manifest; with the ``program`` it was emitted from, a misfit names the peak step
    (`pqc.backends.memory_report.ram_needed`). The stack allowance grows by the kernels' own
    stack arrays (the manifest's ``kernel_stack_bytes``)."""
    manifest = read_manifest(out_dir)
    io = sum(int(t["size"]) * dump_dtype(t["dtype"]).itemsize for t in manifest["inputs"] + manifest["outputs"])
    fit = RamFit(int(manifest["arena_bytes"]), io, stack_bytes + int(manifest.get("kernel_stack_bytes", 0)), budget_bytes)
    if fit.fits or program is None:
        return fit
    return replace(fit, peak=ram_needed(program, budget_bytes, stack_bytes).peak)


def random_inputs(program: Graph, samples: int, seed: int = 0) -> Inputs:
    """Seeded random integers over the program's whole input format: test inputs that need no
    data set and reach the saturating corners of every layer (a dict by input name for a
    program with several inputs)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in program.inputs:
        value = program.values[name]
        lo, hi = value_range(value)
        out[name] = rng.integers(lo, hi + 1, size=(samples, *value.shape[1:])).astype(value.dtype)
    return out if len(out) > 1 else out[program.inputs[0]]


def _write_inputs(work: Path, manifest: dict[str, Any], xs: dict[str, np.ndarray]) -> None:
    """The generated part of the firmware: ``fw_model.h`` (what main.c calls, under fixed
    names: a pointer per input walking its sample table, the output buffers, printing them) and
    ``fw_inputs.c`` (the samples as const tables, the output buffers)."""
    prefix = manifest["prefix"]
    ins, outs = manifest["inputs"], manifest["outputs"]
    samples = len(next(iter(xs.values())))
    args = [f"fw_x{k}" for k in range(len(ins))] + [f"fw_y{k}" for k in range(len(outs))]
    header = [
        "/* fw_model.h: generated by pqc firmware. The model under the names main.c uses. */",
        "#ifndef FW_MODEL_H", "#define FW_MODEL_H", f'#include "{prefix}.h"', "",
        f"#define FW_SAMPLES {samples}u",
        f"#define FW_OUTPUT_SIZE ({' + '.join(t['macro'] + '_SIZE' for t in outs)}) /* values printed per sample */",
        f"#define FW_NUM_OUTPUTS {len(outs)}u",
        "typedef struct { const uint8_t *data; uint32_t bytes; } fw_buffer_t;",
        *(f"extern const {t['type']} fw_in{k}[FW_SAMPLES * {t['macro']}_SIZE];" for k, t in enumerate(ins)),
        *(f"extern {t['type']} fw_y{k}[{t['macro']}_SIZE];" for k, t in enumerate(outs)),
        "extern const fw_buffer_t fw_outputs[FW_NUM_OUTPUTS];",
        "/* Print every output value of the last run as \" <hex>\" (32-bit two's complement). */",
        "void fw_put_outputs(void);",
        "/* In main: a pointer per input to the current sample; the run; the step to the next sample. */",
        "#define FW_DECLARE_INPUTS " + " ".join(f"const {t['type']} *fw_x{k} = fw_in{k};" for k, t in enumerate(ins)),
        f"#define FW_RUN() {prefix}_run({', '.join(args)})",
        "#define FW_NEXT_SAMPLE() (" + ", ".join(f"fw_x{k} += {t['macro']}_SIZE" for k, t in enumerate(ins)) + ")",
        "#endif", "",
    ]
    (work / "fw_model.h").write_text("\n".join(header))
    body = [f"/* fw_inputs.c: generated by pqc firmware. {samples} test samples and the output buffers. */",
            '#include "firmware.h"', '#include "fw_model.h"', ""]
    for k, (t, x) in enumerate(zip(ins, xs.values())):
        flat = x.reshape(-1).astype(np.int64)
        rows = ",\n".join("    " + ", ".join(map(str, flat[i:i + 16])) for i in range(0, flat.size, 16))
        body += [f"const {t['type']} fw_in{k}[FW_SAMPLES * {t['macro']}_SIZE] = {{", rows, "};", ""]
    body += [f"{t['type']} fw_y{k}[{t['macro']}_SIZE];" for k, t in enumerate(outs)]
    body += ["", "const fw_buffer_t fw_outputs[FW_NUM_OUTPUTS] = {",
             *(f"    {{ (const uint8_t *)fw_y{k}, (uint32_t)sizeof fw_y{k} }}," for k in range(len(outs))), "};", "",
             "void fw_put_outputs(void)", "{", "    uint32_t i;"]
    for k, t in enumerate(outs):
        body += [f"    for (i = 0; i < {t['macro']}_SIZE; ++i) {{", '        fw_puts(" ");',
                 f"        fw_put_hex((uint32_t)(int32_t)fw_y{k}[i], 8);", "    }"]
    body += ["}", ""]
    (work / "fw_inputs.c").write_text("\n".join(body))


def build_image(out_dir: str | Path, board: Board, x: Inputs, work: str | Path,
                sources: Path = FIRMWARE_DIR, extra_libs: tuple[str, ...] = ()) -> Path:
    """Compile the model in ``out_dir`` and the firmware for ``board`` with the samples ``x``
    (the model's integer inputs; a dict by input name for several) into ``work``; returns the
    ELF image. ``extra_libs`` are linked after the core's (the int8 yardstick needs libgcc's
    ``__mulsi3`` on RV32I)."""
    out, work = Path(out_dir), Path(work)
    manifest = read_manifest(out)
    core = CORES[board.core]
    cc = core.tool_prefix + "gcc"
    gone = missing_tools((cc, core.tool_prefix + "size", board.qemu[0]))
    if gone:
        raise PqcError(gone)
    if not (sources / "common" / "main.c").exists():
        raise PqcError(f"firmware sources not found in {sources}: reinstall pqc (they ship as package data)")
    work.mkdir(parents=True, exist_ok=True)
    _write_inputs(work, manifest, input_samples(x, manifest["inputs"]))
    weight_macro = f"-D{manifest['prefix'].upper()}_WEIGHT_SECTION=__attribute__((section(\"{WEIGHT_SECTION}\")))"
    units = [(out / f"{manifest['prefix']}.c", core.model_flags + (weight_macro,)),
             (work / "fw_inputs.c", core.model_flags)]
    support = core.support_flags + ("-fno-tree-loop-distribute-patterns",)
    units += [(sources / "common" / name, support) for name in ("crt.c", "main.c")]
    units += [(sources / name, support) for name in core.sources]
    objects = []
    for src, flags in units:
        obj = work / (src.stem + ".o")
        run_tool([cc, *flags, *CFLAGS, f"-I{out}", f"-I{work}", f"-I{sources / 'common'}", "-c", str(src), "-o", str(obj)],
             f"compiling {src.name} for {board.name}")
        objects.append(str(obj))
    elf = work / "firmware.elf"
    run_tool([cc, *core.model_flags, "-nostdlib", "-nostartfiles", "-Wl,--gc-sections",
          f"-L{sources / 'common'}", "-T", str(sources / "boards" / f"{board.name}.ld"),
          *objects, *core.libs, *extra_libs, "-o", str(elf)], f"linking the {board.name} firmware")
    return elf


def section_sizes(elf: Path, board: Board) -> dict[str, int]:
    """Bytes of each allocated output section of ``elf`` (``size -A``)."""
    listing = run_tool([tool_path(CORES[board.core].tool_prefix + "size"), "-A", str(elf)], "size").stdout
    sizes = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


@dataclass(frozen=True)
class FirmwareRun:
    """What the firmware printed: outputs ``[samples, output size]`` (int64), counter ticks per
    sample, the Adler-32 of the output bytes and the stack high-water mark."""

    outputs: np.ndarray
    ticks: list[int]
    adler32: int
    stack_bytes: int


def run_image(elf: Path, board: Board, timeout_s: float = DEFAULT_TIMEOUT_S) -> FirmwareRun:
    """Run ``elf`` in QEMU within ``timeout_s`` seconds and parse what it printed."""
    cmd = [tool_path(board.qemu[0]), *board.qemu[1:], *QEMU_COMMON, "-kernel", str(elf)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BuildError(f"the {board.name} firmware did not finish within {timeout_s:g} s "
                         f"(raise --timeout for a large model)") from None
    if proc.returncode != 0:
        raise BuildError(f"the {board.name} firmware failed (exit status {proc.returncode}):\n"
                         f"{(proc.stdout + proc.stderr)[-3000:]}")
    return _parse(proc.stderr, board)


def _parse(text: str, board: Board) -> FirmwareRun:
    """Read the lines common/main.c prints (QEMU writes the semihosting console to stderr,
    after any warnings of its own)."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    try:
        lines = lines[next(i for i, words in enumerate(lines) if words[0] == "pqc-firmware"):]
        samples, size = int(lines[0][1], 16), int(lines[0][2], 16)
        ticks = [int(words[1], 16) for words in lines if words[0] == "ticks"]
        rows = [[int(w, 16) for w in words[1:]] for words in lines if words[0] == "y"]
        fields = {words[0]: int(words[1], 16) for words in lines if words[0] in ("adler32", "stack")}
        outputs = np.array(rows, dtype=np.uint32).view(np.int32).astype(np.int64)
        if len(ticks) != samples or outputs.shape != (samples, size) or len(fields) != 2:
            raise ValueError(f"expected {samples} samples of {size} outputs")
    except (IndexError, ValueError, StopIteration) as exc:
        raise BuildError(f"cannot read the {board.name} firmware's output ({exc}):\n{text[-2000:]}") from None
    return FirmwareRun(outputs, ticks, fields["adler32"], fields["stack"])


def run_firmware(program: Graph, out_dir: str | Path, board: str | Board, x_int: Inputs, work: str | Path,
                 timeout_s: float = DEFAULT_TIMEOUT_S, sources: Path = FIRMWARE_DIR,
                 extra_libs: tuple[str, ...] = ()) -> Figures:
    """Build the firmware for ``board`` around the C that `emit_c` wrote for ``program`` into
    ``out_dir``, run it on the integer samples ``x_int`` (a dict by input name for several
    inputs) and compare every output with the simulator.

    Raises `PqcError` up front when the model cannot fit the board's RAM (the link fails when
    it overflows flash), `VerificationError` on any differing output, `BuildError` when a tool
    or the run fails or takes longer than ``timeout_s``.
    """
    board = board if isinstance(board, Board) else get_board(board)
    manifest = read_manifest(out_dir)
    fit = ram_fit(out_dir, board.ram_bytes, program=program)
    if not fit.fits:
        raise PqcError(f"{board.name} has {board.ram_bytes:,} B of RAM; {fit}. Use a board with more RAM "
                       f"(mps2-an385 runs the same ARMv6-M image with 4 MiB)")
    x = input_samples(x_int, manifest["inputs"])
    n = len(next(iter(x.values())))
    elf = build_image(out_dir, board, x, work, sources, extra_libs)
    run = run_image(elf, board, timeout_s)
    simulated = simulate(program, x)
    outs = manifest["outputs"]
    expected = [simulated[t["name"]].reshape(n, -1).astype(dump_dtype(t["dtype"])) for t in outs]
    got, at = [], 0
    for e in expected:
        got.append(run.outputs[:, at:at + e.shape[1]])
        at += e.shape[1]
    for t, g, e in zip(outs, got, expected):
        diff = np.argwhere(g != e.astype(np.int64))
        if diff.size:
            s, i = diff[0]
            which = f"output {t['name']!r}" if len(outs) > 1 else "output"
            raise VerificationError(f"{board.name}: the firmware's {which} differs from the simulator at sample {s}, "
                                    f"index {i}: firmware {g[s, i]}, simulator {e[s, i]} "
                                    f"({len(diff)} values differ; `pqc verify` names the first differing layer)")
    if run.adler32 != zlib.adler32(b"".join(b"".join(e[s].tobytes() for e in expected) for s in range(n))):
        raise VerificationError(f"{board.name}: the outputs match but the firmware's checksum of its output "
                                f"buffer does not (the printed values are not the stored bytes)")
    sizes = section_sizes(elf, board)
    data_bss = sizes.get(".data", 0) + sizes.get(".bss", 0)
    return Figures(
        board=board.name, samples=n,
        flash_bytes=sum(sizes.get(s, 0) for s in (".text", ".rodata", ".weights", ".data")),
        weights_bytes=sizes.get(".weights", 0), inputs_bytes=sizes.get(".inputs", 0),
        ram_bytes=data_bss + run.stack_bytes, data_bss_bytes=data_bss, stack_bytes=run.stack_bytes,
        arena_bytes=int(manifest["arena_bytes"]),
        instructions=round(float(np.mean(run.ticks)) * board.insns_per_tick), counter=board.counter,
    )
