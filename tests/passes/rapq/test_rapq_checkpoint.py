"""RAPQ checkpoints: a run interrupted after any unit of either phase resumes to exactly the
integers of an uninterrupted run; checkpoints of another run are refused; `pqc compile
--resume` and the refusal to overwrite an interrupted run's checkpoints without --force."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pqc.cli import main
from pqc.errors import PqcError
from pqc.frontend import load_onnx
from pqc.passes.canonicalize import canonicalize
from pqc.passes.rapq import train
from pqc.passes.rapq.checkpoint import Checkpoint
from pqc.quant import WeightQuant

FAST = {"wbits": 4, "abits": 4, "iters": 12, "calib_size": 32}
#: the small CNN's units (stem, residual block, head) times the two phases
SAVES = 6


@pytest.fixture(scope="module")
def graph(small_cnn_onnx):
    return canonicalize(load_onnx(small_cnn_onnx))


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(32, 1, 16, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def uninterrupted(graph, x):
    return train(graph, x, **FAST)


def _stop_after(monkeypatch, saves: int) -> None:
    """Ctrl-C right after the ``saves``-th checkpoint is saved."""
    real, count = Checkpoint.save, [0]

    def save(self, *args, **kwargs):
        real(self, *args, **kwargs)
        count[0] += 1
        if count[0] == saves:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoint, "save", save)


def _same_result(a, b) -> None:
    assert a.report() == b.report()
    for name, value in a.annotated().values.items():
        qa, qb = value.meta.get("quant"), b.annotated().values[name].meta.get("quant")
        if isinstance(qa, WeightQuant):
            np.testing.assert_array_equal(qa.q, qb.q)
            np.testing.assert_array_equal(qa.exps, qb.exps)
        else:
            assert qa == qb


@pytest.mark.parametrize("saves", range(1, SAVES + 1))
def test_a_run_interrupted_after_any_unit_resumes_to_the_same_integers(graph, x, uninterrupted, saves, tmp_path,
                                                                       monkeypatch):
    path = tmp_path / "rapq.pt"
    with monkeypatch.context() as m:
        _stop_after(m, saves)
        with pytest.raises(KeyboardInterrupt):
            train(graph, x, checkpoint=path, **FAST)
    assert path.exists()
    _same_result(train(graph, x, checkpoint=path, resume=True, **FAST), uninterrupted)


def test_a_checkpoint_of_another_run_is_refused(graph, x, tmp_path, monkeypatch):
    path = tmp_path / "rapq.pt"
    with monkeypatch.context() as m:
        _stop_after(m, 2)
        with pytest.raises(KeyboardInterrupt):
            train(graph, x, checkpoint=path, **FAST)
    with pytest.raises(PqcError, match="another model, calibration data, options"):
        train(graph, x, checkpoint=path, resume=True, **{**FAST, "iters": 13})
    with pytest.raises(PqcError, match="another model, calibration data, options"):
        train(graph, x[::-1].copy(), checkpoint=path, resume=True, **FAST)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(PqcError, match="cannot read the checkpoint"):
        train(graph, x, checkpoint=path, resume=True, **FAST)


def test_compile_resume(small_cnn_onnx: Path, x, tmp_path, monkeypatch, capsys):
    np.savez(tmp_path / "calib.npz", x=x)
    out = tmp_path / "build"
    args = ["compile", str(small_cnn_onnx), "-o", str(out), "--calib", str(tmp_path / "calib.npz"), "--method", "rapq",
            "--wbits", "4", "--abits", "4", "--iters", "12", "--calib-size", "32", "--no-verify", "-q"]
    resume = tmp_path / ".build.pqc-resume"
    with monkeypatch.context() as m:
        _stop_after(m, 3)
        assert main(args) == 130
    assert (resume / "rapq.pt").exists() and not out.exists()
    capsys.readouterr()
    assert main(args) == 2  # the interrupted run's progress is not thrown away unasked
    assert "--resume continues it, --force starts over" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert out.exists() and not resume.exists()  # the build is in place: the checkpoint is gone
    fresh = tmp_path / "fresh"
    assert main([*args[:3], str(fresh), *args[4:]]) == 0
    assert (out / "model.c").read_bytes() == (fresh / "model.c").read_bytes()


def test_resume_needs_a_rapq_compile(small_cnn_onnx: Path, tmp_path, capsys):
    assert main(["compile", str(small_cnn_onnx), "-o", str(tmp_path / "b"), "--resume", "--no-verify"]) == 2
    assert "this compile runs no rapq pass" in capsys.readouterr().err
