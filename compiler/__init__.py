"""pqc: a hardware-aware compression compiler from ONNX CNNs to multiplier-free C."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import DataError, ModelError, PqcError, VerificationError  # noqa: F401
from .ir import Graph, Node, Value  # noqa: F401
from .driver import Build, CompileOptions, compile_model, load_build  # noqa: E402,F401

compile = compile_model  # the one-call API: pqc.compile(model, out_dir, ...)
