"""`pqc firmware`: run a build's C bare-metal on an emulated board, or check it fits a RAM budget.

A thin layer over `pqc.backends.firmware`: it picks the inputs (a few quantized samples of the
given data, or seeded random integers), runs the board, prints the figures and records them in
the build's report.json under ``firmware.<board>``. Exit status: 0 bit-exact (or fits), 1 a
mismatch with the simulator (or the model does not fit ``--ram-budget``), 2 a usage error, a
missing tool, a failed build or run, or a time-out.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import arg_types, console
from .cli import EXIT_OK, EXIT_VERIFY
from .errors import PqcError

if TYPE_CHECKING:
    import numpy as np

    from pqc.backends.firmware import Figures

    from .driver import Build

DEFAULT_SAMPLES = 3


def _inputs(build: Build, data: str | None, samples: int, seed: int) -> "np.ndarray | dict[str, np.ndarray]":
    """The integer samples the firmware embeds: ``data`` quantized as firmware would quantize a
    sensor reading, else random integers over the whole input format."""
    from pqc.backends.firmware import random_inputs
    from pqc.backends.simulator import quantize_input

    from .data_checks import checked_inputs, take_samples

    if data is None:
        return random_inputs(build.program, samples, seed)
    return quantize_input(build.program, take_samples(checked_inputs(build.program, data, "--inputs"), samples))


def _record(out_dir: Path, figures: Figures) -> None:
    """Add the figures to the build's report (``firmware.<board>`` in report.json, and report.md)."""
    from .report import write_report

    path = out_dir / "report.json"
    if not path.exists():
        return
    report = json.loads(path.read_text())
    report.setdefault("firmware", {})[figures.board] = figures.to_dict()
    write_report(report, out_dir)


def cmd_firmware(args: argparse.Namespace) -> int:
    from pqc.backends.firmware import parse_bytes, ram_fit, run_firmware

    from .driver import load_build

    if args.board is None and args.ram_budget is None:
        raise PqcError("pqc firmware: give --board to build and run the firmware, or --ram-budget to check the RAM")
    if args.timeout <= 0:
        raise PqcError("pqc firmware: --timeout must be positive")
    build = load_build(args.build)
    if args.ram_budget is not None:
        fit = ram_fit(build.out_dir, parse_bytes(args.ram_budget), parse_bytes(args.stack), program=build.program)
        print(fit)
        if not fit.fits:
            return EXIT_VERIFY
    if args.board is None:
        return EXIT_OK
    x = _inputs(build, args.inputs, args.samples, args.seed)
    figures = run_firmware(build.program, build.out_dir, args.board, x, build.out_dir / "firmware" / args.board,
                           timeout_s=args.timeout).with_estimate(build.program)
    _record(build.out_dir, figures)
    print(json.dumps(figures.to_dict(), indent=1) if args.json else figures)
    console.info(f"image: {build.out_dir / 'firmware' / args.board / 'firmware.elf'}; counter: {figures.counter}")
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    from pqc.backends.firmware import BOARDS, DEFAULT_TIMEOUT_S, STACK_ALLOWANCE

    p = sub.add_parser(
        "firmware", help="run a build's C bare-metal in QEMU (Cortex-M0, RV32I) bit-exact, or check a RAM budget",
        description="Build bare-metal firmware around the build's untouched model C (start-up code and linker scripts shipped in pqc.codegen_templates/firmware), run it in "
                    "QEMU on a few embedded inputs, compare the outputs bit-exactly with the simulator, and report "
                    "flash, RAM (with the stack high-water mark) and instructions per inference; the figures are "
                    "added to report.json. With --ram-budget, first say whether arena, input/output buffers and a "
                    "stack allowance fit that much RAM.",
        epilog="Exit status: 0 bit-exact (or fits), 1 mismatch with the simulator (or does not fit the budget), "
               "2 usage error, missing tool, failed build or run, or time-out.")
    p.add_argument("build", help="build folder written by pqc compile")
    p.add_argument("--board", choices=sorted(BOARDS), help="emulated board: microbit (Cortex-M0, 16 KiB RAM), "
                   "mps2-an385 (the same ARMv6-M image on a Cortex-M3 with 4 MiB), rv32-virt (RV32I, no multiplier)")
    p.add_argument("--inputs", help="float inputs to quantize (.npz with 'x', or a data set such as fashion-mnist:test); "
                   "default: random integer inputs")
    p.add_argument("--samples", type=arg_types.positive, default=DEFAULT_SAMPLES, help=f"samples embedded (default {DEFAULT_SAMPLES})")
    p.add_argument("--seed", type=arg_types.seed, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"seconds QEMU may run (default {DEFAULT_TIMEOUT_S})")
    p.add_argument("--ram-budget", metavar="SIZE", help="RAM of the part, e.g. 16K: check that the model fits it")
    p.add_argument("--stack", metavar="SIZE", default=str(STACK_ALLOWANCE),
                   help=f"stack allowance of the --ram-budget check (default {STACK_ALLOWANCE} bytes)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    add_common(p)
    p.set_defaults(func=cmd_firmware)
