"""Transpose: a permutation of the axes (ShuffleNet's channel shuffle is Reshape, Transpose,
Reshape). Its own module because it reorders data, which the reshape family never does."""
from __future__ import annotations

from . import OpDef, register


@register
class Transpose(OpDef):
    """Permute the axes: output axis ``i`` is input axis ``perm[i]``. Attribute ``perm`` (a
    permutation of the input's axes, always explicit); mirrors ONNX, so the default export fits."""

    name = "Transpose"

    def forward(self, node, inputs):
        return [inputs[0].permute(*node.attrs["perm"])]
