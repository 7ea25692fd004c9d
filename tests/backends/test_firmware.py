"""The generated C bare-metal: built into the firmware of codegen_templates/firmware for a Cortex-M0
(microbit), the same image on a Cortex-M3 (mps2-an385) and an RV32I core without multiplier
(rv32-virt), run in QEMU, bit-exact with the simulator; and each way a run must fail."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import MODELS
from int_graph_builder import random_int_inputs, zoo
from pqc.backends.c_emitter import emit_c
from pqc.backends.firmware import BOARDS, CORES, RamFit, _parse, parse_bytes, ram_fit, random_inputs, run_firmware
from pqc.backends.harness import BuildError, missing_tools
from pqc.cli import main
from pqc.driver import compile_model
from pqc.passes.quantize import QuantizeOptions
from pqc.errors import PqcError, VerificationError


def _board_tools(board: str) -> tuple[str, ...]:
    prefix = CORES[BOARDS[board].core].tool_prefix
    return prefix + "gcc", prefix + "size", BOARDS[board].qemu[0]


def needs(board: str) -> pytest.MarkDecorator:
    missing = missing_tools(_board_tools(board))
    return pytest.mark.skipif(bool(missing), reason=f"{board} firmware: {missing}")


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fw_zoo")
    emit_c(zoo(), out, prefix="kws")  # not the default prefix: the firmware must follow it
    return out


@pytest.mark.parametrize("board", [pytest.param(b, marks=needs(b)) for b in ("microbit", "rv32-virt")])
def test_every_kernel_runs_bit_exact_on_the_board(board: str, zoo_dir: Path, tmp_path: Path) -> None:
    figures = run_firmware(zoo(), zoo_dir, board, random_int_inputs(zoo(), n=3), tmp_path)
    assert figures.samples == 3
    assert figures.data_bss_bytes >= figures.arena_bytes > 0
    assert 0 < figures.stack_bytes < 1024  # within the allowance the up-front RAM check assumes
    assert figures.ram_bytes == figures.data_bss_bytes + figures.stack_bytes <= BOARDS[board].ram_bytes
    assert figures.weights_bytes > 0 and figures.flash_bytes > figures.weights_bytes
    assert figures.inputs_bytes >= 3 * 3 * 12 * 12
    assert figures.instructions > 100_000


@needs("microbit")
@needs("mps2-an385")
def test_both_arm_boards_count_the_same_instructions(zoo_dir: Path, tmp_path: Path) -> None:
    """The same ARMv6-M image on two SysTick clocks: the tick-to-instruction factors are right."""
    x = random_int_inputs(zoo(), n=1)
    m0 = run_firmware(zoo(), zoo_dir, "microbit", x, tmp_path / "m0")
    m3 = run_firmware(zoo(), zoo_dir, "mps2-an385", x, tmp_path / "m3")
    assert abs(m0.instructions - m3.instructions) <= 63  # one tick of the slower clock


@needs("rv32-virt")
def test_corrupted_model_is_a_mismatch(tmp_path: Path) -> None:
    emit_c(zoo(), tmp_path)
    src = tmp_path / "model.c"
    text = src.read_text()
    m = re.search(r"model_l2_qconv_bias\[\d+\] MODEL_WEIGHT_SECTION = \{\n\s*(-?\d+)", text)
    assert m is not None
    src.write_text(text[:m.start(1)] + str(int(m.group(1)) + 20000) + text[m.end(1):])
    with pytest.raises(VerificationError, match="rv32-virt: the firmware's output differs from the simulator at sample 0") as err:
        run_firmware(zoo(), tmp_path, "rv32-virt", random_int_inputs(zoo(), n=2), tmp_path / "fw")
    assert err.value.exit_code == 1


@needs("rv32-virt")
def test_a_multiply_instruction_traps_on_the_rv32i_core(tmp_path: Path) -> None:
    emit_c(zoo(), tmp_path)
    src = tmp_path / "model.c"
    entry = "int model_run_ws(const model_input_t *input, model_output_t *output, void *workspace)\n{\n"
    mul = ("static uint32_t model_mul(uint32_t a, uint32_t b)\n{\n    uint32_t r;\n"
           "    __asm__ volatile(\".insn r 0x33, 0, 1, %0, %1, %2\" : \"=r\"(r) : \"r\"(a), \"r\"(b));\n"
           "    return r;\n}\n\n")
    text = src.read_text()
    assert entry in text
    src.write_text(text.replace(entry, mul + entry + "    (void)model_mul(3u, 5u);\n"))
    with pytest.raises(BuildError, match="illegal instruction"):
        run_firmware(zoo(), tmp_path, "rv32-virt", random_int_inputs(zoo(), n=1), tmp_path / "fw")


@needs("rv32-virt")
def test_time_limit_is_an_error(zoo_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="did not finish within 0.01 s"):
        run_firmware(zoo(), zoo_dir, "rv32-virt", random_int_inputs(zoo(), n=1), tmp_path, timeout_s=0.01)


def test_a_model_too_large_for_the_board_is_refused_before_building(zoo_dir: Path, tmp_path: Path) -> None:
    manifest = json.loads((zoo_dir / "manifest.json").read_text())
    big = tmp_path / "big"
    big.mkdir()
    (big / "manifest.json").write_text(json.dumps({**manifest, "arena_bytes": 52032}))
    with pytest.raises(PqcError, match=r"microbit has 16,384 B of RAM.*does NOT fit.*mps2-an385"):
        run_firmware(zoo(), big, "microbit", random_int_inputs(zoo(), n=1), tmp_path / "fw")
    assert not (tmp_path / "fw").exists()


def test_ram_fit_counts_arena_io_and_stack(zoo_dir: Path) -> None:
    manifest = json.loads((zoo_dir / "manifest.json").read_text())
    io = manifest["input"]["size"] + manifest["output"]["size"]  # int8 in, int8 out
    fit = ram_fit(zoo_dir, 16 << 10, stack_bytes=512)
    assert fit == RamFit(manifest["arena_bytes"], io, 512, 16 << 10) and fit.fits
    tight = ram_fit(zoo_dir, manifest["arena_bytes"] + io + 511, stack_bytes=512)
    assert not tight.fits and "does NOT fit" in str(tight)


@pytest.mark.parametrize("text, value", [("16K", 16384), ("16KiB", 16384), ("1M", 1 << 20), ("300", 300), ("4kB", 4096)])
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text) == value


def test_parse_bytes_rejects_garbage() -> None:
    with pytest.raises(PqcError, match="cannot read '16 apples' as a size"):
        parse_bytes("16 apples")


@pytest.fixture(scope="module")
def small_build(small_cnn_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fw_build")
    calib = np.random.default_rng(0).normal(size=(16, 1, 16, 16)).astype(np.float32)
    compile_model(small_cnn_onnx, out, calib=calib, verify=False, force=True)
    return out


@needs("mps2-an385")
def test_cli_runs_a_build_and_records_the_figures(small_build: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["firmware", str(small_build), "--board", "mps2-an385", "--samples", "2", "--json", "-q"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["board"] == "mps2-an385" and printed["samples"] == 2
    # the cost model's estimate beside the measurement (its errors per kernel are in README)
    assert 0.5 < printed["instructions"] / printed["estimated_instructions"] < 2
    report = json.loads((small_build / "report.json").read_text())
    assert report["firmware"]["mps2-an385"] == printed
    assert (small_build / "firmware" / "mps2-an385" / "firmware.elf").exists()
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(1).normal(size=(5, 1, 16, 16)).astype(np.float32))
    assert main(["firmware", str(small_build), "--board", "mps2-an385", "--inputs", str(tmp_path / "x.npz"), "-q"]) == 0
    assert "mps2-an385: 3 samples bit-exact" in capsys.readouterr().out


def test_cli_ram_budget_and_usage_errors(small_build: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["firmware", str(small_build), "--ram-budget", "16K"]) == 0
    assert "fits in 16,384 B" in capsys.readouterr().out
    assert main(["firmware", str(small_build), "--ram-budget", "1K"]) == 1
    assert "does NOT fit" in capsys.readouterr().out
    assert main(["firmware", str(small_build)]) == 2
    assert "give --board" in capsys.readouterr().err
    assert main(["firmware", str(small_build), "--ram-budget", "lots"]) == 2


def test_truncated_firmware_output_is_a_clear_error() -> None:
    with pytest.raises(BuildError, match="cannot read the rv32-virt firmware's output .expected 2 samples of 3 outputs"):
        _parse("qemu: warning\npqc-firmware 00000002 00000003\nticks 10\ny 1 2 3\n", BOARDS["rv32-virt"])
    run = _parse("pqc-firmware 1 2\nticks 28\ny ffffffff 7f\nadler32 abc\nstack c0\n", BOARDS["rv32-virt"])
    assert run.outputs.tolist() == [[-1, 127]] and run.ticks == [40] and run.stack_bytes == 192


@pytest.mark.slow
@needs("mps2-an385")
@needs("rv32-virt")
def test_resnet8_w4a4_runs_bit_exact_on_both_cores(tmp_path: Path) -> None:
    calib = np.random.default_rng(0).normal(size=(32, 1, 28, 28)).astype(np.float32)
    build = compile_model(MODELS / "resnet8.onnx", tmp_path / "b", calib=calib, quant=QuantizeOptions(wbits=4, abits=4),
                          verify=False)
    x = np.concatenate([random_inputs(build.program, 1), np.zeros((1, 1, 28, 28), np.int8)])
    for board in ("mps2-an385", "rv32-virt"):
        figures = run_firmware(build.program, build.out_dir, board, x, tmp_path / board)
        assert figures.samples == 2 and figures.arena_bytes > 16 << 10


@pytest.mark.slow
@needs("microbit")
def test_resnet8_w4a4_runs_bit_exact_on_the_microbit_in_16_kib(tmp_path: Path) -> None:
    """Issue 11's goal: the reference ResNet-8 at W4A4 (its first layer's output at 4 bits too)
    in the micro:bit's 16 KiB, arena, input/output and the measured stack together."""
    calib = np.random.default_rng(0).normal(size=(32, 1, 28, 28)).astype(np.float32)
    build = compile_model(MODELS / "resnet8.onnx", tmp_path / "b", calib=calib, verify=False, ram_budget=16 << 10,
                          quant=QuantizeOptions(wbits=4, abits=4, first_output_bits=4))
    assert build.report["totals"]["packed_activations"] > 0  # auto: bytes do not fit 16 KiB
    x = np.concatenate([random_inputs(build.program, 1), np.zeros((1, 1, 28, 28), np.int8)])
    figures = run_firmware(build.program, build.out_dir, "microbit", x, tmp_path / "fw")
    assert figures.samples == 2 and figures.ram_bytes <= BOARDS["microbit"].ram_bytes == 16 << 10
    assert figures.flash_bytes <= 256 << 10
