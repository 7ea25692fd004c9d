"""Fused activations: the ``act`` attribute that canonicalization attaches to Conv, Gemm and Add.

``act`` is None (identity), ``"relu"``, or ``("clip", lo, hi)`` with float bounds (ReLU6 is
``("clip", 0.0, 6.0)``). Kept tiny and shared so every op that can carry an activation applies
and exports it identically.
"""
from __future__ import annotations

from typing import Any

import torch


def apply_act(x: torch.Tensor, act: Any) -> torch.Tensor:
    if act is None:
        return x
    if act == "relu":
        return torch.relu(x)
    if isinstance(act, (tuple, list)) and act[0] == "clip":
        return torch.clamp(x, act[1], act[2])
    raise ValueError(f"unknown fused activation {act!r}")


def export_act(node, ctx) -> tuple[str, list]:
    """For an op with fused ``act``: the name its main ONNX node should write, and the extra
    activation node(s) that produce the IR output from it."""
    from onnx import helper
    import numpy as np

    act = node.attrs.get("act")
    if act is None:
        return node.outputs[0], []
    tmp = ctx.fresh(node.outputs[0] + "_preact")
    if act == "relu":
        return tmp, [helper.make_node("Relu", [tmp], [node.outputs[0]], name=ctx.fresh(node.name + "_relu"))]
    lo = ctx.constant(node.name + "_min", np.array(act[1], np.float32))
    hi = ctx.constant(node.name + "_max", np.array(act[2], np.float32))
    return tmp, [helper.make_node("Clip", [tmp, lo, hi], [node.outputs[0]], name=ctx.fresh(node.name + "_clip"))]
