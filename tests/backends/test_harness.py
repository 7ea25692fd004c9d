"""The build-and-compare harness: the full proof on a graph using every kernel, and each way it
must fail (a bit mismatch named at its layer, a runtime multiply, a warning, a missing tool)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from int_graph_builder import random_int_inputs, zoo
from int_helpers import resnet_like
from pqc.backends import harness
from pqc.backends.c_emitter import emit_c
from pqc.backends.harness import BuildError, build, check_cortex_m0, check_rv32i, run_c, verify
from pqc.backends.simulator import quantize_input, simulate
from pqc.errors import DataError, PqcError, VerificationError
from pqc.passes.lower import lower

HAVE_CC = shutil.which("gcc") is not None
HAVE_RV = shutil.which("riscv64-unknown-elf-gcc") is not None
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="gcc missing")
needs_rv = pytest.mark.skipif(not HAVE_RV, reason="riscv64-unknown-elf-gcc missing")


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zoo")
    emit_c(zoo(), out)
    return out


@needs_cc
def test_verify_passes_every_check_on_every_kernel(zoo_dir: Path) -> None:
    report = verify(zoo(), zoo_dir, random_int_inputs(zoo()))
    assert report.ok
    for check in report.checks:
        tool_missing = check.status == "skipped" and "not installed" in check.details
        assert check.status == "passed" or tool_missing, str(report)
    if HAVE_RV:
        assert report.status("rv32i multiplier-free") == "passed"
    if shutil.which("arm-none-eabi-size"):
        sizes = next(c.data for c in report.checks if c.name == "cortex-m0 build")
        assert sizes["text"] > 0 and sizes["bss"] >= emit_c(zoo(), zoo_dir).memory.arena_bytes


@needs_cc
def test_mismatch_names_the_first_differing_layer(tmp_path: Path) -> None:
    graph = zoo()
    emit_c(graph, tmp_path)
    src = tmp_path / "model.c"
    # corrupt the depthwise conv's first bias (layer 2): the layers before it still agree
    text = src.read_text()
    m = re.search(r"model_l2_qconv_bias\[\d+\] MODEL_WEIGHT_SECTION = \{\n\s*(-?\d+)", text)
    assert m is not None
    src.write_text(text[:m.start(1)] + str(int(m.group(1)) + 20000) + text[m.end(1):])
    with pytest.raises(VerificationError, match=r"first at layer 'qconv_node_1', index \(0, 0, ") as err:
        verify(graph, tmp_path, random_int_inputs(graph))
    assert err.value.exit_code == 1


@needs_cc
def test_run_c_dumps_every_layer(zoo_dir: Path) -> None:
    graph, x = zoo(), random_int_inputs(zoo(), n=3)
    run = run_c(build(zoo_dir), x, dump_layers=True)
    expected = simulate(graph, x, capture=True)
    assert set(run.layers) == set(expected)
    for name in expected:
        np.testing.assert_array_equal(run.layers[name], expected[name])
    with pytest.raises(DataError, match="whole number of samples"):
        run_c(build(zoo_dir), x.reshape(-1)[:-1])


@needs_rv
def test_rv32i_check_catches_a_runtime_multiply_and_divide(tmp_path: Path) -> None:
    emit_c(zoo(), tmp_path)
    assert check_rv32i(tmp_path).status == "passed"
    src = tmp_path / "model.c"
    mul = "int model_scale(int a, int b);\nint model_scale(int a, int b) { return a * b; }\n"
    src.write_text(src.read_text() + mul)
    check = check_rv32i(tmp_path)
    assert check.status == "failed" and check.data["symbols"] == ["__mulsi3"]
    src.write_text(src.read_text() + "int model_div(int a, int b);\nint model_div(int a, int b) { return a / b; }\n")
    assert "__divsi3" in check_rv32i(tmp_path).data["symbols"]


@needs_cc
def test_warnings_fail_the_build(tmp_path: Path) -> None:
    emit_c(zoo(), tmp_path)
    src = tmp_path / "model.c"
    src.write_text(src.read_text() + "int model_extra(int unused);\nint model_extra(int unused) { return 0; }\n")
    with pytest.raises(BuildError, match="unused"):
        build(tmp_path, "gcc")
    assert issubclass(BuildError, PqcError)


def test_missing_tools_are_skipped_not_passed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emit_c(zoo(), tmp_path)
    monkeypatch.setattr(harness.shutil, "which", lambda name: None)
    for check in (check_rv32i(tmp_path), check_cortex_m0(tmp_path)):
        assert check.status == "skipped" and "not installed" in check.details
    report = verify(zoo(), tmp_path, random_int_inputs(zoo()))
    assert {c.status for c in report.checks} == {"skipped"}
    with pytest.raises(PqcError, match=r"gcc not installed \(Debian: apt-get install gcc\)"):
        build(tmp_path, "gcc")


def test_verify_needs_an_emitted_folder(tmp_path: Path) -> None:
    with pytest.raises(PqcError, match="run emit_c first"):
        verify(zoo(), tmp_path, random_int_inputs(zoo()))


@needs_cc
def test_sanitizer_build_catches_undefined_behaviour(tmp_path: Path) -> None:
    graph = zoo()
    emit_c(graph, tmp_path)
    src = tmp_path / "model.c"
    # shift the signed partial sums instead of their uint32_t images: UB for negative sums
    text = src.read_text()
    assert "acc += s << g[0];" in text
    src.write_text(text.replace("acc += s << g[0];", "acc += (uint32_t)(pqc_s32(s) << g[0]);"))
    with pytest.raises(VerificationError, match="sanitizers") as err:
        verify(graph, tmp_path, random_int_inputs(graph))
    assert err.value.report.status("sanitizers (undefined,address)") == "failed"
    assert err.value.report.status("gcc build and compare") == "passed"


@needs_cc
def test_lowered_resnet_verifies_end_to_end(tmp_path: Path) -> None:
    graph = lower(resnet_like(np.random.default_rng(0)))
    x = quantize_input(graph, np.random.default_rng(1).normal(size=(6, 1, 12, 12)))
    result = emit_c(graph, tmp_path)
    assert result.memory.arena_bytes < sum(v.size for v in map(graph.values.get, graph.activations()))
    assert verify(graph, tmp_path, x).ok


def edit_first_value(path: Path, pattern: str, delta: int) -> None:
    """Add ``delta`` to the number the first match of ``pattern``'s group 1 is."""
    text = path.read_text()
    m = re.search(pattern, text)
    assert m is not None, pattern
    path.write_text(text[:m.start(1)] + str(int(m.group(1)) + delta) + text[m.end(1):])


@needs_cc
def test_a_bias_edited_by_one_fails_naming_its_table(tmp_path: Path) -> None:
    graph = zoo()
    emit_c(graph, tmp_path)
    edit_first_value(tmp_path / "model.c", r"model_l2_qconv_bias\[\d+\] MODEL_WEIGHT_SECTION = \{\n\s*(-?\d+)", 1)
    with pytest.raises(VerificationError, match=r"table model_l2_qconv_bias differs at element 0: C -?\d+, program") as err:
        verify(graph, tmp_path, random_int_inputs(graph, n=1))
    assert err.value.exit_code == 1
    assert err.value.report.status("constants match the program") == "failed"


@needs_cc
def test_an_edited_header_define_fails_naming_it(tmp_path: Path) -> None:
    graph = zoo()
    emit_c(graph, tmp_path)
    edit_first_value(tmp_path / "model.h", r"#define MODEL_INPUT_EXP \((-?\d+)\)", 1)
    with pytest.raises(VerificationError, match="MODEL_INPUT_EXP is -3 in the header, -4 in the program"):
        verify(graph, tmp_path, random_int_inputs(graph, n=1))


@needs_cc
def test_constants_check_passes_on_untouched_output(zoo_dir: Path) -> None:
    check = harness.check_constants(zoo(), build(zoo_dir))
    assert check.status == "passed" and "tables" in check.details


def test_probe_inputs_reach_both_extremes_and_every_value() -> None:
    for dtype, lo, hi in (("int8", -128, 127), ("uint8", 0, 255)):
        info = {"dtype": dtype, "shape": [1, 3, 12, 12], "size": 432, "qmin": lo, "qmax": hi}
        x = harness.probe_inputs(info)
        assert x.dtype == np.dtype(dtype) and x.shape[1:] == (3, 12, 12)
        assert (x[0] == lo).all() and (x[1] == hi).all() and set(np.unique(x)) == set(range(lo, hi + 1))
        np.testing.assert_array_equal(x, harness.probe_inputs(info))  # seeded


@needs_cc
def test_verify_shows_progress_unless_quiet(zoo_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from pqc import console

    verify(zoo(), zoo_dir, random_int_inputs(zoo(), n=1))
    assert "verifying the C" in capsys.readouterr().err
    before = console.verbosity()
    console.set_verbosity(console.QUIET)
    try:
        verify(zoo(), zoo_dir, random_int_inputs(zoo(), n=1))
    finally:
        console.set_verbosity(before)
    assert capsys.readouterr().err == ""


@needs_cc
def test_verify_past_its_time_limit_stops_with_exit_2(zoo_dir: Path) -> None:
    with harness.time_limit(0.05), pytest.raises(harness.VerifyTimeout, match=r"past its 0.05 s time limit") as err:
        verify(zoo(), zoo_dir, random_int_inputs(zoo()))
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    assert verify(zoo(), zoo_dir, random_int_inputs(zoo(), n=1)).ok  # the limit ends with the block


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc missing")
def test_cortex_m0_check_fails_on_an_external_symbol(tmp_path: Path) -> None:
    emit_c(zoo(), tmp_path)
    src = tmp_path / "model.c"
    src.write_text(src.read_text() + "void *memcpy(void *d, const void *s, unsigned int n);\n"
                   "void model_copy(void *d, const void *s);\nvoid model_copy(void *d, const void *s) { memcpy(d, s, 4u); }\n")
    check = check_cortex_m0(tmp_path)
    assert check.status == "failed" and check.data["undefined"] == ["memcpy"]
