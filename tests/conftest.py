"""Shared fixtures: small ONNX models built on the fly (no files needed) and the reference models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"

torch.set_num_threads(2)


class SmallCNN(torch.nn.Module):
    """Conv-BN-ReLU, a residual add, max pool, global pool, FC: the everyday shapes of a CNN."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(8)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(y + self.bn2(self.conv2(y)))
        y = self.pool(y)
        y = torch.nn.functional.adaptive_avg_pool2d(y, 1).flatten(1)
        return self.fc(y)


def export_legacy(model: torch.nn.Module, path: Path, shape=(1, 1, 16, 16)) -> Path:
    """Export with torch's legacy exporter, BN kept as nodes, dynamic batch (as the reference models are)."""
    torch.manual_seed(0)
    model.eval()
    for m in model.modules():  # non-trivial BN statistics so folding mistakes show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    torch.onnx.export(model, (torch.randn(*shape),), str(path), dynamo=False, opset_version=13,
                      input_names=["input"], output_names=["logits"], do_constant_folding=False,
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    return path


class SqueezeExcite(torch.nn.Module):
    """Conv-ReLU scaled per channel by a gate computed from itself (pool, two 1x1 convs,
    hard-sigmoid): the product of two activations of squeeze-excite blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc1, self.fc2 = torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Conv2d(4, 2, 1), torch.nn.Conv2d(2, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        gate = torch.nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
        return (y * gate).mean((2, 3))


@pytest.fixture
def se_model(tmp_path: Path) -> Path:
    """The squeeze-excite model as ONNX (opset 13, input [1, 1, 8, 8], fixed seed)."""
    torch.manual_seed(0)
    path = tmp_path / "se.onnx"
    torch.onnx.export(SqueezeExcite().eval(), (torch.randn(1, 1, 8, 8),), str(path), dynamo=False, opset_version=13)
    return path


@pytest.fixture(scope="session")
def small_cnn_onnx(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return export_legacy(SmallCNN(), tmp_path_factory.mktemp("models") / "small_cnn.onnx")


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
