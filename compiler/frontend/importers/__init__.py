"""ONNX op importers, one small function per op type, grouped by family.

Importing this package registers them all in `pqc.frontend.registry.IMPORTERS`.
"""
from . import elementwise, nn, tensor  # noqa: F401
