"""pqc.passes: one module per graph transformation, plus the public entry points below.

Importing this package stays light (numpy and the IR; no torch, no onnx): pass modules import
torch-backed code (op forwards, the float executor) inside the functions that need it.
"""
from __future__ import annotations

from .canonicalize import canonicalize
from .quantize import quantize

__all__ = ["canonicalize", "quantize"]
