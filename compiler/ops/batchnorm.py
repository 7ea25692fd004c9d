"""BatchNormalization over channel axis 1 (input rank >= 2), kept until adaprune has read it."""
from __future__ import annotations

import torch.nn.functional as F

from . import OpDef, register


@register
class BatchNormalization(OpDef):
    """``scale * (x - mean) / sqrt(var + epsilon) + bias`` per channel (axis 1).

    Inputs: ``x``, then constants ``scale``, ``bias``, ``mean``, ``var`` (each of length C);
    mean and var are running statistics, held as executor buffers. Attributes: ``epsilon``,
    ``momentum`` with ONNX's meaning, ``running = running * momentum + batch * (1 - momentum)``.

    Eval mode normalizes with the running statistics. Training mode normalizes with the batch
    statistics and updates the running buffers in place exactly as `torch.nn.BatchNorm2d` does
    (biased batch variance to normalize, unbiased to update the running variance).
    """

    name = "BatchNormalization"
    buffer_inputs = (3, 4)

    def forward(self, node, inputs):
        x, scale, bias, mean, var = inputs
        return [F.batch_norm(x, mean, var, scale, bias, training=False, eps=node.attrs["epsilon"])]

    def forward_train(self, node, inputs):
        x, scale, bias, mean, var = inputs
        a = node.attrs
        return [F.batch_norm(x, mean, var, scale, bias, training=True, momentum=1.0 - a["momentum"], eps=a["epsilon"])]

    def to_onnx(self, node, ctx):
        from onnx import helper

        a = node.attrs
        return [helper.make_node(
            "BatchNormalization", node.inputs, node.outputs, name=node.name,
            epsilon=float(a["epsilon"]), momentum=float(a["momentum"]),
        )]
