"""The reference CNNs pqc is measured on (1x28x28 grey input, 10 classes).

Each exercises a different channel-dependency case for pruning and quantization:

* `ResNet8` (MLPerf-Tiny style): residual adds, identity and 1x1-conv+BN shortcuts.
* `TinyMobileNetV2`: depthwise convs, ReLU6 (exported as Clip), linear bottlenecks with adds.
* `VGGSmall`: a plain conv stack with max pooling whose feature map is flattened into a Linear
  (the flatten-into-Gemm case).
* `TinyMobileNetV3`: MobileNetV3-small-style blocks: squeeze-excite (a product of two
  activations), depthwise 3x3 and 5x5, ReLU and hard-swish in three exported forms.

Convs carry no bias because a BatchNormalization follows each one; `train_reference.py` exports
them with the BN nodes kept, since pruning ranks channels by BN scales before BN is folded.
"""
from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

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


# ---------------------------------------------------------------- MobileNetV3-small style
# Hard-swish reaches ONNX in several forms and pqc must recognise each: nn.Hardswish exports as
# the HardSwish op (opset >= 14); the two modules below write the decompositions out so that the
# export carries them node by node.

class HardSwishClip(nn.Module):
    """hswish written as ``x * clip(x + 3, 0, 6) / 6``: exports as Add, Clip, Mul, Div."""

    def forward(self, x: Tensor) -> Tensor:
        return x * (x + 3).clamp(0, 6) / 6


class HardSwishGate(nn.Module):
    """hswish written as ``x * hardsigmoid(x)``: exports as HardSigmoid, Mul."""

    def forward(self, x: Tensor) -> Tensor:
        return x * F.hardsigmoid(x)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "hswish": nn.Hardswish, "hswish-clip": HardSwishClip, "hswish-gate": HardSwishGate,
}


class SqueezeExcite(nn.Module):
    """Scale each channel by a gate computed from the whole map: GAP, 1x1, ReLU, 1x1, HardSigmoid, Mul."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, squeezed, 1), nn.ReLU(),
            nn.Conv2d(squeezed, channels, 1), nn.Hardsigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class InvertedResidualV3(nn.Module):
    """MobileNetV3 block: expand 1x1 (skipped when hidden == cin), depthwise k x k, optional
    squeeze-excite, linear project 1x1; the input is added back when the shape is kept."""

    def __init__(self, cin: int, kernel: int, hidden: int, cout: int, se: bool, act: str, stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if hidden != cin:
            layers += [conv_bn(cin, hidden, 1), ACTIVATIONS[act]()]
        layers += [conv_bn(hidden, hidden, kernel, stride, groups=hidden), ACTIVATIONS[act]()]
        if se:
            layers.append(SqueezeExcite(hidden, max(8, hidden // 4)))
        layers.append(conv_bn(hidden, cout, 1))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class TinyMobileNetV3(nn.Module):
    """Stem 3x3 s2 16 + hswish (28 -> 14); six V3 blocks (14 -> 7); 1x1 to 144 + hswish; GAP; FC (~75k params).

    Blocks use ReLU early and hard-swish late as MobileNetV3-small does; the hard-swish blocks
    alternate between the three forms of `ACTIVATIONS`, so one export holds all of them.
    """

    # (kernel, hidden, output channels, squeeze-excite, activation, stride)
    BLOCKS = (
        (3, 16, 16, True, "relu", 1),
        (3, 64, 24, False, "relu", 2),
        (3, 72, 24, False, "relu", 1),
        (5, 96, 40, True, "hswish-clip", 1),
        (5, 120, 40, True, "hswish-gate", 1),
        (5, 120, 48, True, "hswish", 1),
    )

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(IN_CHANNELS, 16, 3, 2), nn.Hardswish()]
        cin = 16
        for kernel, hidden, cout, se, act, stride in self.BLOCKS:
            layers.append(InvertedResidualV3(cin, kernel, hidden, cout, se, act, stride))
            cin = cout
        layers += [conv_bn(cin, 144, 1), HardSwishClip()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(144, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


MODELS: dict[str, type[nn.Module]] = {
    "resnet8": ResNet8, "mobilenetv2": TinyMobileNetV2, "vgg": VGGSmall, "mobilenetv3": TinyMobileNetV3,
}


def build(name: str) -> nn.Module:
    """A freshly initialized reference model by name: one of `MODELS` (resnet8, mobilenetv2, vgg, mobilenetv3)."""
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"unknown reference model {name!r}; expected one of {sorted(MODELS)}") from None
