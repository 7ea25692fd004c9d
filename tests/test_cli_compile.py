"""`pqc compile`, `verify`, `evaluate` and `run` on a build folder: results, reports, exit codes."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from pqc.cli import main

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (make sysdeps)")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("data")
    x = rng.normal(0, 1, (24, 1, 16, 16)).astype(np.float32)
    np.savez(folder / "calib.npz", x=x)
    np.savez(folder / "labelled.npz", x=x, y=rng.integers(0, 10, 24))
    return folder


@pytest.fixture(scope="module")
def build_dir(small_cnn_onnx: Path, data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build") / "b"
    dump = out.parent / "dump"
    code = main(["compile", str(small_cnn_onnx), "-o", str(out), "--calib", str(data / "calib.npz"), "--wbits", "4",
                 "--eval", str(data / "labelled.npz"), "--dump-ir", str(dump), "-q"])
    assert code == 0
    return out


def test_compile_writes_c_program_and_report(build_dir: Path) -> None:
    for name in ("model.c", "model.h", "main.c", "Makefile", "program.json", "program.npz", "float.onnx",
                 "report.json", "report.md"):
        assert (build_dir / name).exists(), name
    report = json.loads((build_dir / "report.json").read_text())
    assert {c["status"] for c in report["verification"]["checks"]} <= {"passed", "skipped"}
    layers = {l["op"] for l in report["layers"]}
    assert {"QConv", "QGemm"} <= layers
    conv = next(l for l in report["layers"] if l["op"] == "QConv" and l.get("wbits") == 4)
    assert conv["sqnr_db"] > 5 and 0 <= conv["clip_ratio"] <= 1 and conv["digits"] > 0
    assert report["totals"]["ideal_adds"] > 0 and report["totals"]["arena_bytes"] > 0
    assert report["accuracy"]["n"] == 24
    assert "## Layers" in (build_dir / "report.md").read_text()
    snapshots = sorted(p.name for p in (build_dir.parent / "dump").iterdir())
    assert snapshots == ["01_canonicalize.txt", "02_quantize.txt", "03_lower.txt"]


def test_compile_is_deterministic(small_cnn_onnx: Path, data: Path, build_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert main(["compile", str(small_cnn_onnx), "-o", str(again), "--calib", str(data / "calib.npz"),
                 "--wbits", "4", "--no-verify", "-q"]) == 0
    for name in ("model.c", "model.h", "program.json", "program.npz"):
        assert (again / name).read_bytes() == (build_dir / name).read_bytes(), name


def test_compile_refuses_non_empty_output(small_cnn_onnx: Path, data: Path, build_dir: Path, capsys) -> None:
    assert main(["compile", str(small_cnn_onnx), "-o", str(build_dir), "--calib", str(data / "calib.npz")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_compile_refuses_calibration_of_wrong_shape(small_cnn_onnx: Path, tmp_path: Path, capsys) -> None:
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 3, 16, 16), np.float32))
    assert main(["compile", str(small_cnn_onnx), "-o", str(tmp_path / "o"), "--calib", str(tmp_path / "bad.npz")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_verify_passes_and_evaluate_reports_json(build_dir: Path, data: Path, capsys) -> None:
    assert main(["verify", str(build_dir), "--inputs", str(data / "calib.npz")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"passed\s+gcc build and compare", out)
    assert main(["evaluate", str(build_dir), "--data", str(data / "labelled.npz"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"float_top1", "int_top1", "n"} and result["n"] == 24


def test_run_build_gives_dequantized_and_integer_outputs(build_dir: Path, data: Path, tmp_path: Path) -> None:
    from pqc.backends.simulator import quantize_input, simulate
    from pqc.driver import load_build

    out = tmp_path / "out.npz"
    assert main(["run", str(build_dir), "--inputs", str(data / "calib.npz"), "-o", str(out), "-q"]) == 0
    got = np.load(out)
    program = load_build(build_dir).program
    x = np.load(data / "calib.npz")["x"]
    expected = simulate(program, quantize_input(program, x))[program.outputs[0]]
    np.testing.assert_array_equal(got["logits_int"], expected)
    np.testing.assert_allclose(got["logits"], expected * 2.0 ** program.values[program.outputs[0]].meta["exp"])


def test_tampered_c_fails_verification_with_exit_1(build_dir: Path, data: Path, tmp_path: Path, capsys) -> None:
    """Flip one bias in the generated C: verify must exit 1 and name the layer."""
    bad = tmp_path / "bad"
    shutil.copytree(build_dir, bad)
    source = (bad / "model.c").read_text()
    match = re.search(r"(static const int(8|16|32)_t \w*b\w*\[\d+\][^=]*= \{\s*)(-?\d+)", source)
    assert match, "no bias table found in the generated C"
    far = (1 << int(match.group(2)) - 1) - 1  # the far end of the table's type: a large change that still fits
    tampered = source[: match.start(3)] + str(far if int(match.group(3)) < 0 else -far) + source[match.end(3):]
    (bad / "model.c").write_text(tampered)
    assert main(["verify", str(bad), "--inputs", str(data / "calib.npz")]) == 1
    assert "first at layer" in capsys.readouterr().err


def test_verify_of_a_folder_that_is_not_a_build_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["verify", str(tmp_path)]) == 2
    assert "not a complete pqc build folder" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed (make sysdeps)")
def test_callgrind_instruction_count_is_deterministic_and_covers_the_adds(build_dir: Path, data: Path) -> None:
    """The benchmark's speed figure: same binary and inputs, same count; and the C cannot do a
    layer's work in fewer instructions than its ideal shift-add count."""
    from pqc.backends.harness import build
    from pqc.backends.profile import instructions_per_inference
    from pqc.backends.simulator import quantize_input
    from pqc.driver import load_build

    program = load_build(build_dir).program
    x = quantize_input(program, np.load(data / "calib.npz")["x"][:2])
    binary = build(build_dir, "gcc")
    first = instructions_per_inference(binary, x)
    assert first == instructions_per_inference(binary, x)
    ideal = json.loads((build_dir / "report.json").read_text())["totals"]["ideal_adds"]
    assert first >= ideal


def test_default_verify_catches_a_bias_changed_by_one(build_dir: Path, tmp_path: Path, capsys) -> None:
    """One unit in one conv bias, no --inputs, default random count: exit 1 naming the table."""
    bad = tmp_path / "bad"
    shutil.copytree(build_dir, bad)
    source = (bad / "model.c").read_text()
    match = re.search(r"static const int(?:8|16|32)_t (\w*qconv_bias)\[\d+\][^=]*= \{\s*(-?\d+)", source)
    assert match, "no conv bias table found in the generated C"
    (bad / "model.c").write_text(source[: match.start(2)] + str(int(match.group(2)) + 1) + source[match.end(2):])
    assert main(["verify", str(bad), "-q"]) == 1
    assert f"table {match.group(1)} differs at element 0" in capsys.readouterr().err


def test_verify_timeout_exits_2_with_one_line(build_dir: Path, capsys) -> None:
    assert main(["verify", str(build_dir), "--timeout", "0.01", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "time limit" in err
    assert main(["verify", str(build_dir), "--timeout", "-1"]) == 2  # argparse's usage error, one line


def test_compile_verify_timeout_exits_2(small_cnn_onnx: Path, data: Path, tmp_path: Path, capsys) -> None:
    code = main(["compile", str(small_cnn_onnx), "-o", str(tmp_path / "b"), "--calib", str(data / "calib.npz"),
                 "--verify-timeout", "0.01", "-q"])
    assert code == 2 and "time limit" in capsys.readouterr().err


def test_default_verification_samples_fit_a_work_budget() -> None:
    """A compile verifies on all 64 calibration samples of a small model and on fewer, never
    under 8, of a network whose harness runs take seconds each."""
    from pqc.driver import ERROR_SAMPLES, MIN_VERIFY_SAMPLES, verify_samples

    assert verify_samples(9_345_920) == ERROR_SAMPLES == 64  # ResNet-8
    assert verify_samples(219_000_000) == 9  # MobileNetV3-Large at 224x224
    assert verify_samples(4_100_000_000) == MIN_VERIFY_SAMPLES  # ResNet-50
    assert verify_samples(None) == ERROR_SAMPLES


def test_error_measurement_in_smaller_batches_gives_the_same_errors(build_dir: Path, data: Path, monkeypatch) -> None:
    """`measure_errors` bounds its captured bytes by running fewer samples at once (DenseNet-121
    took 5.1 GB at 8): batches of 1 give the errors of batches of 8."""
    from pqc import driver

    build = driver.load_build(build_dir)
    x = np.load(data / "calib.npz")["x"][:16]
    names = [n for n in build.program.activations() if n in build.float_graph.values]
    assert driver.error_batch(build.float_graph, build.program, names) == 8
    whole = driver.measure_errors(build.float_graph, build.program, x)
    monkeypatch.setattr(driver, "ERROR_CAPTURE_BYTES", 1)
    assert driver.error_batch(build.float_graph, build.program, names) == 1
    ones = driver.measure_errors(build.float_graph, build.program, x)
    assert whole.keys() == ones.keys()
    for name, err in whole.items():
        for key, value in err.items():
            assert ones[name][key] == pytest.approx(value, rel=1e-9, abs=1e-12), (name, key)
