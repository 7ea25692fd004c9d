"""The CLI's promise on bad input: exit status 2, one line on stderr naming the culprit, no
traceback or warning, and no file that existed before touched (or created).

Every row runs through `pqc.cli.main` in process (fast); the rows in `SUBPROCESS` also run the
installed ``pqc`` script in a real subprocess (each start imports torch: seconds apiece)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqc.cli import main

from bad_models import bad_ceil_pool, bad_group, huge_bias, missing_external_data

PQC = str(Path(sys.executable).with_name("pqc"))


@pytest.fixture(scope="module")
def world(small_cnn_onnx: Path, tmp_path_factory) -> Path:
    """A folder of models, data and one finished build, as a user's project would hold them."""
    root = tmp_path_factory.mktemp("world")
    shutil.copy(small_cnn_onnx, root / "cnn.onnx")
    for make in (bad_group, bad_ceil_pool, missing_external_data, huge_bias):
        make(root)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (8, 1, 16, 16)).astype(np.float32)
    np.savez(root / "x.npz", x=x)
    np.savez(root / "wide.npz", x=np.zeros((4, 1, 20, 20), np.float32))
    np.savez(root / "label99.npz", x=x, y=np.array([0, 1, 2, 99, 0, 1, 2, 3]))
    np.savez(root / "label-1.npz", x=x, y=np.array([0, 1, 2, -1, 0, 1, 2, 3]))
    assert main(["compile", str(root / "cnn.onnx"), "-o", str(root / "build"), "--calib", str(root / "x.npz"),
                 "--no-verify", "-q"]) == 0
    shutil.copytree(root / "build", root / "no_c")
    (root / "no_c" / "model.c").unlink()
    shutil.copytree(root / "build", root / "no_report")
    (root / "no_report" / "report.json").unlink()
    (root / "user_dump").mkdir()
    (root / "user_dump" / "notes.txt").write_text("mine\n")
    (root / ".locked.pqc-lock").write_text(str(os.getpid()))  # held by a live process: this one
    return root


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def _no_cuda() -> bool:
    import torch

    return not torch.cuda.is_available()


CASES = [
    # (id, arguments, a word the one line must contain)
    ("compile into a non-empty folder", "compile cnn.onnx -o build --calib x.npz --no-verify", "build"),
    ("negative seed", "compile cnn.onnx -o fresh --seed -1", "--seed"),
    ("bogus device", "compile cnn.onnx -o fresh --device bogus", "bogus"),
    ("bogus device on train", "train cnn.onnx --data label99.npz -o t.onnx --device bogus", "bogus"),
    ("prefix main", "compile cnn.onnx -o fresh --prefix main", "main"),
    ("negative random count", "verify build --random -5", "--random"),
    ("dump-ir names a file", "compile cnn.onnx -o fresh --calib x.npz --no-verify --dump-ir x.npz", "x.npz"),
    ("dump-ir into a user's folder", "compile cnn.onnx -o fresh --calib x.npz --no-verify --dump-ir user_dump",
     "user_dump"),
    ("verify-inputs of the wrong shape", "compile cnn.onnx -o fresh --calib x.npz --verify-inputs wide.npz", "wide.npz"),
    ("calibration of the wrong shape", "compile cnn.onnx -o fresh --calib wide.npz --no-verify", "wide.npz"),
    ("a folder locked by a live run", "compile cnn.onnx -o locked --calib x.npz --no-verify", "another pqc run"),
    ("conv group not dividing channels", "inspect group.onnx", "group=3"),
    ("ceil_mode pool ONNX and torch disagree on", "inspect ceil.onnx", "MaxPool"),
    ("missing external data file", "inspect ext.onnx", "ext.bin"),
    ("bias of 1e30", "compile huge.onnx -o fresh --calib x.npz --no-verify -q", "beyond int32"),
    ("evaluate with label 99", "evaluate build --data label99.npz", "label 99"),
    ("evaluate with label -1", "evaluate build --data label-1.npz", "label -1"),
    ("train with label 99", "train cnn.onnx --data label99.npz -o t.onnx --epochs 0", "label 99"),
    ("prune with label -1", "prune cnn.onnx --flops 0.5 --train label-1.npz -o p.onnx --epochs 0", "label -1"),
    ("verify a build missing model.c", "verify no_c", "model.c"),
    ("run a build missing report.json", "run no_report --inputs x.npz -o out.npz", "report.json"),
    ("run on data of the wrong shape", "run build --inputs wide.npz -o out.npz", "wide.npz"),
]
if _no_cuda():
    CASES.append(("cuda on a CPU-only torch", "compile cnn.onnx -o fresh --device cuda", "cuda"))


#: one row per mechanism: argparse types, data checks, model import, lowering, the build folder
SUBPROCESS = {"negative seed", "verify-inputs of the wrong shape", "ceil_mode pool ONNX and torch disagree on",
              "bias of 1e30", "verify a build missing model.c", "a folder locked by a live run"}


def _check(world: Path, before: dict[str, str], code: int, stderr: str, culprit: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and culprit in lines[0], stderr
    assert "Traceback" not in stderr and "Warning" not in stderr
    assert _tree_hash(world) == before


@pytest.mark.parametrize("args, culprit", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_touches_nothing(world: Path, args: str, culprit: str,
                                                            monkeypatch, capsys) -> None:
    before = _tree_hash(world)
    monkeypatch.chdir(world)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked warning fails the row
        code = main(args.split())
    _check(world, before, code, capsys.readouterr().err, culprit)


@pytest.mark.parametrize("args, culprit", [c[1:] for c in CASES if c[0] in SUBPROCESS],
                         ids=[c[0] for c in CASES if c[0] in SUBPROCESS])
def test_bad_input_in_a_subprocess(world: Path, args: str, culprit: str) -> None:
    before = _tree_hash(world)
    proc = subprocess.run([PQC, *args.split()], cwd=world, capture_output=True, text=True, timeout=120)
    _check(world, before, proc.returncode, proc.stderr, culprit)


#: flags and generators of values each refuses before any work (fuzzed below)
_BAD_VALUES = {
    "--seed": st.integers(max_value=-1).map(str) | st.integers(min_value=1 << 32).map(str),
    "--wbits": st.sampled_from(["0", "1", "9", "-4", "four", "4.5"]),
    "--abits": st.sampled_from(["0", "3", "9", "32", "x"]),
    "--first-last-bits": st.sampled_from(["1", "9", "-1"]),
    "--iters": st.integers(max_value=-1).map(str),
    "--calib-size": st.integers(max_value=0).map(str),
    "--prefix": st.text(alphabet="0123456789-+. é$", min_size=1, max_size=6),
    "--layer-bits": st.sampled_from(["conv1", "=8", "nosuchlayer=4", "/conv1/Conv=x"]),
    "--optimize": st.text(alphabet="abcxyz", min_size=1, max_size=5),
    "--verify-timeout": st.sampled_from(["0", "-1", "never"]),
}


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_bad_flag_values_exit_2_with_one_line(world: Path, data, monkeypatch, capsys) -> None:
    """Any one bad value among valid compile flags: exit 2, one line naming the flag or value."""
    flag = data.draw(st.sampled_from(sorted(_BAD_VALUES)))
    value = data.draw(_BAD_VALUES[flag])
    method = ["--method", "rapq"] if flag in ("--iters", "--calib-size") else []
    before = _tree_hash(world)
    monkeypatch.chdir(world)
    code = main(["compile", "cnn.onnx", "-o", "fresh", "--calib", "x.npz", "--no-verify", "-q", *method, f"{flag}={value}"])
    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1, stderr
    assert "Traceback" not in stderr and _tree_hash(world) == before
