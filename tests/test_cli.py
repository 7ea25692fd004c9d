"""The command line: results, exit codes (0 ok, 2 usage/input error) and no tracebacks."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from pqc.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pqc.cli", *args], capture_output=True, text=True)


def test_help_lists_every_command() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for cmd in ("inspect", "run"):
        assert cmd in out.stdout
    sub = run_cli("inspect", "--help")
    assert sub.returncode == 0 and "--json" in sub.stdout


def test_inspect_json_counts_macs_and_params(small_cnn_onnx: Path, capsys) -> None:
    assert main(["inspect", str(small_cnn_onnx), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    # conv1: 16*16*8 outputs x 1*3*3; conv2: 16*16*8 x 8*3*3; fc: 8*10 (batch 1)
    expected_macs = 16 * 16 * 8 * 9 + 16 * 16 * 8 * 72 + 80
    assert info["totals"]["macs"] == expected_macs
    # conv1 w+b, bn1 4x8, conv2 w, bn2 4x8, fc w+b
    expected_params = (72 + 8) + 32 + 576 + 32 + (80 + 10)
    assert info["totals"]["params"] == expected_params
    assert isinstance(info["layers"], list) and info["inputs"][0]["name"] == "input"
    assert info["outputs"][0]["shape"] == [1, 10]


def test_inspect_table(small_cnn_onnx: Path, capsys) -> None:
    assert main(["inspect", str(small_cnn_onnx)]) == 0
    text = capsys.readouterr().out
    assert "Conv" in text and "MACs" in text and "total:" in text


def test_run_matches_onnxruntime(small_cnn_onnx: Path, tmp_path: Path, rng) -> None:
    x = rng.standard_normal((5, 1, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    out = tmp_path / "out.npz"
    assert main(["run", str(small_cnn_onnx), "--inputs", str(tmp_path / "x.npz"), "-o", str(out), "-q"]) == 0
    got = np.load(out)["logits"]
    want = ort.InferenceSession(str(small_cnn_onnx)).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-4)
    # never overwrite without --force
    assert main(["run", str(small_cnn_onnx), "--inputs", str(tmp_path / "x.npz"), "-o", str(out)]) == 2


@pytest.mark.parametrize(
    "content", [b"", b"not an onnx file at all", None], ids=["empty", "garbage", "missing"]
)
def test_bad_model_file_exits_2_without_traceback(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    out = run_cli("inspect", str(path))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "pqc: error:" in out.stderr


def test_truncated_model_exits_2(small_cnn_onnx: Path, tmp_path: Path) -> None:
    data = small_cnn_onnx.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    out = run_cli("inspect", str(path))
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_run_with_wrong_input_key_exits_2(small_cnn_onnx: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", images=np.zeros((1, 1, 16, 16), np.float32))
    out = run_cli("run", str(small_cnn_onnx), "--inputs", str(tmp_path / "x.npz"), "-o", str(tmp_path / "o.npz"))
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_usage_error_exits_2() -> None:
    assert run_cli("inspect").returncode == 2
    assert run_cli("no-such-command").returncode == 2
