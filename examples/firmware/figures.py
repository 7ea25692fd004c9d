"""The firmware figures table of README: each reference model on each emulated board.

    .venv/bin/python examples/firmware/figures.py [--work DIR]

Compiles examples/models/{resnet8,mobilenetv2,vgg}.onnx at the defaults (W8A8, as `pqc compile
MODEL -o DIR --no-verify`) into DIR/<model> unless already there, runs the firmware of each
board on 3 random inputs (bit-exact with the simulator, or the run fails), and prints a
Markdown table. A board whose RAM the model cannot fit gets the up-front check's figure instead.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pqc.backends.firmware import BOARDS, Figures, get_board, ram_fit, random_inputs, run_firmware
from pqc.driver import compile_model, load_build
from pqc.summary import markdown_table

MODELS = Path(__file__).resolve().parents[1] / "models"
REFERENCE = ("resnet8", "mobilenetv2", "vgg")
SAMPLES = 3


def _row(model: str, board: str, out: Path) -> list[str]:
    fit = ram_fit(out, get_board(board).ram_bytes)
    if not fit.fits:
        return [model, board, f"does not fit: needs {fit.needed_bytes:,} B of {fit.budget_bytes:,} B RAM", "", "", ""]
    build = load_build(out)
    fig: Figures = run_firmware(build.program, out, board, random_inputs(build.program, SAMPLES), out / "firmware" / board)
    return [model, board, f"{fig.flash_bytes:,} ({fig.weights_bytes:,})",
            f"{fig.ram_bytes:,} ({fig.arena_bytes:,})", f"{fig.stack_bytes:,}", f"{fig.instructions:,}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="build/firmware-figures", help="folder of the compiled models")
    args = parser.parse_args()
    header = ["model", "board", "flash B (weights)", "RAM B (arena)", "stack B", "instructions / inference"]
    rows = []
    for model in REFERENCE:
        out = Path(args.work) / model
        if not (out / "program.json").exists():
            compile_model(MODELS / f"{model}.onnx", out, verify=False, force=True)
        rows += [_row(model, board, out) for board in BOARDS]
    print(markdown_table(rows, header))


if __name__ == "__main__":
    main()
