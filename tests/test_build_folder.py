"""Builds appear complete or not at all: interrupts, full disks, locks, byte-identical rebuilds,
batch-1 exports (in process, with monkeypatched failures)."""
from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pqc.driver
import pqc.exporter
from pqc.build_folder import staged_folder
from pqc.cli import main
from pqc.errors import PqcError
from pqc.frontend import load_onnx

from conftest import SmallCNN


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "x.npz"
    np.savez(path, x=np.random.default_rng(0).normal(0, 1, (5, 1, 16, 16)).astype(np.float32))
    return path


def _compile(model: Path, out: Path, calib: Path, *extra: str) -> int:
    return main(["compile", str(model), "-o", str(out), "--calib", str(calib), "--no-verify", "-q", *extra])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_staged_folder_leaves_nothing_when_the_block_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with staged_folder(tmp_path / "out", force=False) as stage:
            (stage / "half.c").write_text("int")
            raise RuntimeError("late failure")
    assert list(tmp_path.iterdir()) == []


def test_staged_folder_replaces_only_at_the_end_and_with_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(PqcError, match="not empty"):
        with staged_folder(out, force=False):
            pass
    with staged_folder(out, force=True) as stage:
        (stage / "new.txt").write_text("new")
        assert (out / "old.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and _snapshot(out) == {"new.txt": b"new"}


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".out.pqc-lock").write_text(str(dead.pid))
    with staged_folder(tmp_path / "out", force=False) as stage:
        (stage / "f").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("failure", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device")])
@pytest.mark.parametrize("writer", ["save_graph", "save_onnx", "write_report"])
def test_an_interrupted_or_full_disk_compile_leaves_the_previous_build(
        small_cnn_onnx: Path, calib: Path, tmp_path: Path, monkeypatch, capsys, writer: str, failure) -> None:
    out = tmp_path / "build"
    assert _compile(small_cnn_onnx, out, calib) == 0
    before = _snapshot(out)

    written = {"save_graph": "program.json", "save_onnx": "float.onnx", "write_report": "report.json"}[writer]

    def fail(obj, path: Path):  # each writer's second argument is where it writes
        staged = Path(path).parent if writer != "write_report" else Path(path)
        if isinstance(failure, OSError):
            raise OSError(failure.errno, failure.strerror, str(staged / written))
        raise failure

    monkeypatch.setattr(pqc.exporter if writer == "save_onnx" else pqc.driver, writer, fail)
    code = _compile(small_cnn_onnx, out, calib, "--force")
    err = capsys.readouterr().err
    assert code == (130 if isinstance(failure, KeyboardInterrupt) else 2)
    if isinstance(failure, OSError):
        assert len(err.strip().splitlines()) == 1 and "disk is full" in err and str(out / written) in err
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"]  # no staging folder, no lock


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc and make")
def test_a_full_disk_during_the_c_build_is_an_input_error_not_a_mismatch(
        small_cnn_onnx: Path, calib: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import pqc.backends.harness as harness

    def full(cmd, what, **kw):
        raise harness.BuildError(f"{what} failed (exit status 1):\nmodel.c:1: fatal error: No space left on device")

    monkeypatch.setattr(harness, "run_tool", full)
    code = main(["compile", str(small_cnn_onnx), "-o", str(tmp_path / "b"), "--calib", str(calib), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no space left on device" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_two_identical_compiles_give_identical_folders_but_timings(small_cnn_onnx: Path, calib: Path,
                                                                   tmp_path: Path) -> None:
    """Verified builds included: the test binaries verify leaves in the folder are the same bytes
    too (their debug information does not name the staging folder)."""
    a, b = tmp_path / "a", tmp_path / "b"
    for out, dump in ((a, "dump_a"), (b, "dump_b")):
        assert main(["compile", str(small_cnn_onnx), "-o", str(out), "--calib", str(calib), "-q",
                     "--dump-ir", str(tmp_path / dump)]) == 0
    files_a, files_b = _snapshot(a), _snapshot(b)
    assert files_a.keys() == files_b.keys() and "timings.json" in files_a
    if shutil.which("gcc"):
        assert "model_test_gcc_san" in files_a
    assert [n for n in files_a if files_a[n] != files_b[n]] in ([], ["timings.json"])
    assert _snapshot(tmp_path / "dump_a") == _snapshot(tmp_path / "dump_b")


def test_a_batch_1_export_compiles_and_runs_any_number_of_samples(calib: Path, tmp_path: Path) -> None:
    model = tmp_path / "b1.onnx"
    torch.manual_seed(0)
    torch.onnx.export(SmallCNN().eval(), (torch.randn(1, 1, 16, 16),), str(model), dynamo=False, opset_version=13,
                      input_names=["input"], output_names=["logits"])
    assert not load_onnx(model).dynamic_batch
    assert _compile(model, tmp_path / "build", calib) == 0
    for source in (model, tmp_path / "build"):
        out = tmp_path / f"{source.stem}_out"  # no .npz suffix: exactly this name is written
        assert main(["run", str(source), "--inputs", str(calib), "-o", str(out), "-q"]) == 0
        assert np.load(out)["logits"].shape == (5, 10) and not out.with_suffix(".npz").exists()


def test_missing_parent_folders_of_a_build_are_created(small_cnn_onnx: Path, calib: Path, tmp_path: Path) -> None:
    """``-o build/r8`` on a fresh clone (no build/ yet) works, as README's commands assume."""
    out = tmp_path / "not" / "yet" / "here"
    assert _compile(small_cnn_onnx, out, calib) == 0
    assert (out / "report.json").is_file()
