"""Transpose (a permutation of the axes) and ChannelPermute (of the channels; ShuffleNet's channel
shuffle, Reshape-Transpose-Reshape, canonicalizes to one). Their own module because they reorder
data, which the reshape family never does."""
from __future__ import annotations

import numpy as np

from . import OpDef, register


@register
class Transpose(OpDef):
    """Permute the axes: output axis ``i`` is input axis ``perm[i]``. Attribute ``perm`` (a
    permutation of the input's axes, always explicit); mirrors ONNX, so the default export fits."""

    name = "Transpose"

    def forward(self, node, inputs):
        return [inputs[0].permute(*node.attrs["perm"])]


@register
class ChannelPermute(OpDef):
    """Reorder the channels (axis 1): output channel ``c`` is input channel ``perm[c]``. Attribute
    ``perm`` (a permutation of the channels). Not an ONNX op: the canonical form of a channel
    shuffle (`pqc.passes.canonicalize.channel_permute`); exported as ONNX Gather on axis 1."""

    name = "ChannelPermute"

    def forward(self, node, inputs):
        return [inputs[0][:, list(node.attrs["perm"])]]

    def to_onnx(self, node, ctx):
        from onnx import helper

        indices = ctx.constant(f"{node.name}_perm", np.array(node.attrs["perm"], np.int64))
        return [helper.make_node("Gather", [node.inputs[0], indices], node.outputs, name=node.name, axis=1)]
