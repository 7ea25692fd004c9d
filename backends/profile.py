"""Instruction counts of the generated C, measured with callgrind.

`valgrind --tool=callgrind` counts executed instructions (Ir), which is deterministic for a
given binary and input: a repeatable speed figure on a machine where wall-clock timing is not.
Only instructions inside ``<prefix>_run`` (and what it calls) are counted (``--toggle-collect``),
so the harness's file I/O does not pollute the figure.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from ..errors import PqcError
from .c_emitter import read_manifest
from .harness import run_tool, tool_path

_SUMMARY = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def instructions_per_inference(binary: str | Path, x_int8: np.ndarray) -> float:
    """Mean instructions executed by one call of the model's run function on the samples of
    ``x_int8`` (one sample per call), under callgrind."""
    valgrind = tool_path("valgrind")
    binary = Path(binary)
    manifest = read_manifest(binary.parent)
    x = np.ascontiguousarray(x_int8)
    with tempfile.TemporaryDirectory(prefix="pqc_cg_") as tmp:
        inp, out, log = Path(tmp, "in.bin"), Path(tmp, "out.bin"), Path(tmp, "callgrind.out")
        inp.write_bytes(x.tobytes())
        cmd = [valgrind, "--tool=callgrind", f"--toggle-collect={manifest['prefix']}_run",
               f"--callgrind-out-file={log}", str(binary), str(inp), str(out)]
        run_tool(cmd, f"callgrind run of {binary.name}")
        match = _SUMMARY.search(log.read_text())
    if match is None:
        raise PqcError(f"callgrind wrote no instruction total for {binary.name}")
    return int(match.group(1)) / len(x)
