"""The firmware figures table of README: each reference model on each emulated board.

    .venv/bin/python examples/firmware/figures.py [--work DIR]

Compiles examples/models/{resnet8,mobilenetv2,vgg}.onnx at the defaults (W8A8, as `pqc compile
MODEL -o DIR --no-verify`) and ResNet-8 in its micro:bit build (RAPQ W4A4 with the first layer's
output at 4 bits, `--ram-budget 16K`: packed activations, row-streamed residual blocks) into
DIR/<label> unless already there, runs
the firmware of each board on 3 random inputs (bit-exact with the simulator, or the run fails),
and prints a Markdown table. A board whose RAM the model cannot fit gets the up-front check's
figure instead.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pqc.backends.firmware import BOARDS, Figures, get_board, ram_fit, random_inputs, run_firmware
from pqc.driver import compile_model, load_build
from pqc.passes.rapq import RapqOptions
from pqc.summary import markdown_table

MODELS = Path(__file__).resolve().parents[1] / "models"
#: label -> (model, compile options): the reference models at the defaults, and ResNet-8 as built
#: for the micro:bit (`make firmware-demo` runs that one on the board)
CONFIGS = {
    "resnet8": ("resnet8", {}),
    "mobilenetv2": ("mobilenetv2", {}),
    "vgg": ("vgg", {}),
    "resnet8 RAPQ W4A4/o4": ("resnet8", {"quant": RapqOptions(wbits=4, abits=4, first_output_bits=4),
                                         "ram_budget": 16 << 10}),
}
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
    for label, (model, options) in CONFIGS.items():
        out = Path(args.work) / label.replace(" ", "_").replace("/", "_")
        if not (out / "program.json").exists():
            compile_model(MODELS / f"{model}.onnx", out, verify=False, force=True, **options)
        rows += [_row(label, board, out) for board in BOARDS]
    print(markdown_table(rows, header))


if __name__ == "__main__":
    main()
