"""Models with several inputs and outputs: the C entry point, verification, firmware, data and CLI.

The ONNX model fuses an image branch (Conv, ReLU, global pool) with a feature vector (Gemm) by
Concat and ends in two heads, one of them a ReLU'd regression head whose output stays int32: the
inputs get different exponents and the outputs different C types.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from int_graph_builder import IntGraphBuilder
from onnx_builder import make_model
from pqc.backends.c_emitter import emit_c, io_tensors
from pqc.backends.firmware import random_inputs, run_firmware
from pqc.backends.harness import FAILED, _compare, build, run_c
from pqc.backends.simulator import simulate
from pqc.cli import main
from pqc.driver import load_build

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (make sysdeps)")
INPUTS, OUTPUTS = ["image", "feat"], ["logits", "box.out"]


def two_headed_model(path: Path) -> Path:
    rng = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.3, shape).astype(np.float32)

    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["f"]),
        helper.make_node("Gemm", ["feat", "wf", "bf"], ["fe"], transB=1),
        helper.make_node("Concat", ["f", "fe"], ["cat"], axis=1),
        helper.make_node("Relu", ["cat"], ["rc"]),
        helper.make_node("Gemm", ["rc", "wa", "ba"], ["logits"], transB=1),
        helper.make_node("Gemm", ["rc", "wb", "bb"], ["box"], transB=1),
        helper.make_node("Relu", ["box"], ["box.out"]),
    ]
    model = make_model(nodes, [("image", [1, 1, 8, 8]), ("feat", [1, 5])], [("logits", [1, 4]), ("box.out", [1, 3])],
                       {"w1": w(6, 1, 3, 3), "b1": w(6), "wf": w(6, 5), "bf": w(6), "wa": w(4, 12), "ba": w(4),
                        "wb": w(3, 12), "bb": w(3)})
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("multi_io")
    two_headed_model(d / "m.onnx")
    rng = np.random.default_rng(1)
    image = rng.normal(0, 1, (24, 1, 8, 8)).astype(np.float32)
    feat = rng.normal(0, 8, (24, 5)).astype(np.float32)  # another range: another input exponent
    np.savez(d / "calib.npz", image=image, feat=feat)
    np.savez(d / "labelled.npz", image=image, feat=feat, y=rng.integers(0, 3, 24))
    np.savez(d / "no_feat.npz", image=image)
    np.savez(d / "bad_feat.npz", image=image, feat=feat[:, :4])
    return d


@pytest.fixture(scope="module")
def build_dir(folder: Path) -> Path:
    out = folder / "build"
    assert main(["compile", str(folder / "m.onnx"), "-o", str(out), "--calib", str(folder / "calib.npz"),
                 "--eval", str(folder / "labelled.npz"), "-q"]) == 0
    return out


def test_compile_verifies_every_output_on_every_toolchain(build_dir: Path) -> None:
    report = json.loads((build_dir / "report.json").read_text())
    checks = {c["name"]: c for c in report["verification"]["checks"]}
    assert checks["gcc build and compare"]["status"] == "passed"
    assert "(2 outputs)" in checks["gcc build and compare"]["details"]
    assert {c["status"] for c in checks.values()} <= {"passed", "skipped"}
    assert [i["name"] for i in report["inputs"]] == INPUTS
    assert len({i["exp"] for i in report["inputs"]}) == 2  # each input quantized with its own exponent
    assert [o["name"] for o in report["outputs"]] == OUTPUTS
    assert [o["dtype"] for o in report["outputs"]] == ["int8", "int32"]
    assert all(o["sqnr_db"] > 10 for o in report["outputs"])
    assert "box.out" in (build_dir / "report.md").read_text().split("## Outputs")[1].split("## Layers")[0]
    assert report["accuracy"]["n"] == 24


def test_header_has_a_pointer_and_defines_per_tensor(build_dir: Path) -> None:
    header = (build_dir / "model.h").read_text()
    assert ("int model_run(const model_image_t *image, const model_feat_t *feat, model_logits_t *logits, "
            "model_box_out_t *box_out);") in header
    assert "typedef int32_t model_box_out_t;" in header
    for name in ("IMAGE", "FEAT", "LOGITS", "BOX_OUT"):
        for what in ("RANK", "SHAPE", "SIZE", "EXP", "BITS", "MIN", "MAX"):
            assert re.search(rf"^#define MODEL_{name}_{what} ", header, re.M), (name, what)
    assert "MODEL_INPUT_SIZE" not in header  # the single-I/O names would describe one tensor of four


def test_a_wrong_second_output_is_caught(build_dir: Path) -> None:
    build_ = load_build(build_dir)
    x = random_inputs(build_.program, 3)
    expected = simulate(build_.program, x)
    expected["box.out"] = expected["box.out"] + 1  # the C is right: only the second output's reference is off
    check = _compare(build_.program, build(build_dir), x, expected, "compare")
    assert check.status == FAILED


def test_rv32_firmware_is_bit_exact(build_dir: Path, tmp_path: Path) -> None:
    if shutil.which("qemu-system-riscv32") is None or shutil.which("riscv64-unknown-elf-gcc") is None:
        pytest.skip("qemu-system-riscv32 or riscv64-unknown-elf-gcc not installed")
    program = load_build(build_dir).program
    figures = run_firmware(program, build_dir, "rv32-virt", random_inputs(program, 2, seed=3), tmp_path)
    assert figures.samples == 2 and figures.instructions > 0


def test_run_writes_every_output_and_evaluate_picks_one(build_dir: Path, folder: Path, tmp_path: Path,
                                                        capsys) -> None:
    out = tmp_path / "o.npz"
    assert main(["run", str(build_dir), "--inputs", str(folder / "calib.npz"), "-o", str(out), "-q"]) == 0
    got = np.load(out)
    assert sorted(got.files) == sorted(OUTPUTS + [f"{o}_int" for o in OUTPUTS])
    assert got["box.out_int"].dtype == np.int32 and got["logits"].shape == (24, 4)
    capsys.readouterr()
    assert main(["evaluate", str(build_dir), "--data", str(folder / "labelled.npz"), "--output", "box.out",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == "box.out"


@pytest.mark.parametrize("args, names", [
    (["run", "{build}", "--inputs", "{d}/no_feat.npz", "-o", "{d}/x.npz"], "no array 'feat'"),
    (["run", "{build}", "--inputs", "{d}/bad_feat.npz", "-o", "{d}/x.npz"], "array 'feat': shape [24, 4]"),
    (["run", "{d}/m.onnx", "--inputs", "{d}/bad_feat.npz", "-o", "{d}/x.npz"], "array 'feat': shape [24, 4]"),
    (["compile", "{d}/m.onnx", "-o", "{d}/b2"], "has inputs ['image', 'feat']"),
    (["evaluate", "{build}", "--data", "{d}/labelled.npz", "--output", "nope"], "outputs logits, box.out"),
])
def test_bad_input_arrays_are_one_line_and_exit_2(build_dir: Path, folder: Path, args: list[str], names: str,
                                                  capsys) -> None:
    capsys.readouterr()
    assert main([a.format(build=build_dir, d=folder) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert names in err and "\n" not in err


def test_entry_point_names_are_c_identifiers_unique_and_not_reserved() -> None:
    b = IntGraphBuilder()
    names = ["int", "a", "A", "model_x", "1st", "box.out"]
    xs = [b.input(n, (1, 4), dtype="uint8" if i % 2 else "int8") for i, n in enumerate(names)]
    outs = [b.op("QAdd", [x, xs[0]], shift_a=0, shift_b=1, shift=1, lo=-128, hi=127, negate_b=False) for x in xs[1:3]]
    ins, outs_ = io_tensors(b.build(*outs), "model")
    ids = [t["id"] for t in ins + outs_]
    assert ids[:6] == ["x_int", "a", "A_2", "x_model_x", "x_1st", "box_out"]
    assert len({i.upper() for i in ids}) == len(ids)
    assert [t["type"] for t in ins[:2]] == ["model_x_int_t", "model_a_t"]


def test_inputs_of_different_dtypes_run_bit_exact(tmp_path: Path) -> None:
    b = IntGraphBuilder()
    x = b.input("x", (1, 2, 3, 3), exp=-3)
    u = b.input("u.8", (1, 2, 3, 3), dtype="uint8", exp=-5)
    s = b.op("QAdd", [x, u], shift_a=2, shift_b=0, shift=1, lo=-128, hi=127, negate_b=False)
    c = b.op("QConcat", [u, s], axis=1, shifts=(1, 0), lo=-128, hi=127)
    graph = b.build(c, s)
    emit_c(graph, tmp_path)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.integers(-128, 128, (4, 2, 3, 3)).astype(np.int8),
             "u.8": rng.integers(0, 256, (4, 2, 3, 3)).astype(np.uint8)}
    run = run_c(build(tmp_path), feeds)
    want = simulate(graph, feeds)
    for name in graph.outputs:
        np.testing.assert_array_equal(run.named[name], want[name])


def test_readme_example_compiles_against_the_header(build_dir: Path, tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("**Several inputs or outputs**")[1]
    example = section.split("```c\n")[1].split("```")[0]
    declarations, calls = example.split("\n\n", 1)
    (tmp_path / "use.c").write_text(f'#include "model.h"\n{declarations}\n\nint use(void);\n\nint use(void)\n{{\n'
                                    f"{calls}    return 0;\n}}\n")
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wno-empty-body", f"-I{build_dir}", "-c",
                    str(tmp_path / "use.c"), "-o", str(tmp_path / "use.o")], check=True)
