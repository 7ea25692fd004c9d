"""The three reference CNNs pqc is measured on (1x28x28 grey input, 10 classes).

Each exercises a different channel-dependency case for pruning and quantization:

* `ResNet8` (MLPerf-Tiny style): residual adds, identity and 1x1-conv+BN shortcuts.
* `TinyMobileNetV2`: depthwise convs, ReLU6 (exported as Clip), linear bottlenecks with adds.
* `VGGSmall`: a plain conv stack with max pooling whose feature map is flattened into a Linear
  (the flatten-into-Gemm case).

Convs carry no bias because a BatchNormalization follows each one; `train_reference.py` exports
them with the BN nodes kept, since pruning ranks channels by BN scales before BN is folded.
"""
from __future__ import annotations

from torch import Tensor, nn

NUM_CLASSES = 10
IN_CHANNELS = 1


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (no bias, 'same' padding) followed by BatchNorm: the unit every model is built from."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    )


class BasicBlock(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN plus a shortcut (1x1 conv+BN when the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride), nn.ReLU(), conv_bn(cout, cout, 3))
        self.shortcut = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet8(nn.Module):
    """Stem conv 16, basic blocks 16 / 32 (stride 2) / 64 (stride 2), global average pool, FC (~78k params)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(IN_CHANNELS, 16),
            nn.ReLU(),
            BasicBlock(16, 16, 1),
            BasicBlock(16, 32, 2),
            BasicBlock(32, 64, 2),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1x1 (skipped when expansion is 1), depthwise 3x3, linear project 1x1.

    The input is added back when the block keeps both resolution and channel count.
    """

    def __init__(self, cin: int, cout: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [conv_bn(cin, hidden, 1), nn.ReLU6()]
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(), conv_bn(hidden, cout, 1)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class TinyMobileNetV2(nn.Module):
    """Stem 16; blocks e1-16, e4-24 s2 x2, e4-32 s2 x2, e4-64; 1x1 to 128; GAP; FC (~50k params)."""

    # (expansion, output channels, repeats, stride of the first repeat)
    BLOCKS = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 1, 1))

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(IN_CHANNELS, 16), nn.ReLU6()]
        cin = 16
        for expansion, cout, repeats, stride in self.BLOCKS:
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, expansion, stride if i == 0 else 1))
                cin = cout
        layers += [conv_bn(cin, 128, 1), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class VGGSmall(nn.Module):
    """Conv-BN-ReLU 16,16 / pool / 32,32 / pool / 64 / pool (28 -> 3), flatten 64*3*3 -> FC 64 -> ReLU -> FC."""

    STAGES = ((16, 16), (32, 32), (64,))

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = IN_CHANNELS
        for stage in self.STAGES:
            for cout in stage:
                layers += [conv_bn(cin, cout), nn.ReLU()]
                cin = cout
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * 3 * 3, 64), nn.ReLU(), nn.Linear(64, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


MODELS: dict[str, type[nn.Module]] = {"resnet8": ResNet8, "mobilenetv2": TinyMobileNetV2, "vgg": VGGSmall}


def build(name: str) -> nn.Module:
    """A freshly initialized reference model by name: one of `MODELS` (resnet8, mobilenetv2, vgg)."""
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"unknown reference model {name!r}; expected one of {sorted(MODELS)}") from None
