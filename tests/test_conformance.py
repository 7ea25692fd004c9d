"""ONNX conformance cases through the frontend and the float executor (see `pqc.conformance`).

Every case of a supported op must pass or be refused with a `PqcError`; none may fail. The case
list is built once per session (about 10 s); each case then takes milliseconds.
"""
from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from pqc.conformance import Result, load_cases, markdown, run_case

torch.set_num_threads(1)

CASES = load_cases()
REPORT = Path(__file__).resolve().parents[1] / "SUPPORTED_OPS.md"


@functools.lru_cache(maxsize=None)
def result_of(name: str) -> Result:
    return run_case(next(case for case in CASES if case.name == name))


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_case_passes_or_is_refused_cleanly(name):
    result = result_of(name)
    assert result.status in ("pass", "refused"), f"{result.status}: {result.detail}"


def test_every_importer_op_passes_some_case():
    passing = {op for case in CASES if result_of(case.name).status == "pass" for op in case.op_types}
    never = sorted({op for case in CASES for op in case.op_types} - passing - {"Shape", "ConstantOfShape"})  # fold-only
    assert never == [], f"ops with no passing conformance case: {never}"


def test_supported_ops_table_is_up_to_date():
    text = markdown([result_of(case.name) for case in CASES])
    assert REPORT.read_text(encoding="utf-8") == text, (
        "SUPPORTED_OPS.md is stale: run `python -m pqc.conformance --write SUPPORTED_OPS.md`"
    )
