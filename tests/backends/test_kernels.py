"""The kernel registry: every integer op has exactly one default kernel whose template exists,
names follow ``<op>_<variant>``, and a node's recorded kernel choice is honoured or refused."""
from __future__ import annotations

import numpy as np
import pytest

from pqc.backends.c_emitter import TEMPLATES
from pqc.backends.kernels import KERNELS, KernelDef, kernel_for
from pqc.errors import ModelError
from pqc.intops import INT_OPS
from pqc.ir import Node


def test_every_integer_op_has_one_default_kernel_with_a_template():
    for op in INT_OPS:
        defaults = [k for k in KERNELS.values() if k.op == op and k.default]
        assert len(defaults) == 1, op
    for name, kernel in KERNELS.items():
        assert kernel.op in INT_OPS, name
        assert name == f"{kernel.op.lower()}_{kernel.variant}"
        assert (TEMPLATES / kernel.template).is_file(), kernel.template


def test_kernel_for_takes_the_recorded_variant_and_refuses_a_foreign_one():
    conv = Node("QConv", ["x", "w", "b"], ["y"], {}, "c")
    assert kernel_for(conv).name == "qconv_tables"
    conv.meta["kernel"] = "qconv_tables"
    assert kernel_for(conv) is KERNELS["qconv_tables"]
    conv.meta["kernel"] = "qgemm_tables"
    with pytest.raises(ModelError, match="implements QGemm"):
        kernel_for(conv)
    conv.meta["kernel"] = "qconv_nonexistent"
    with pytest.raises(ModelError, match="unknown kernel 'qconv_nonexistent'; known: qadd_generic"):
        kernel_for(conv)


def test_registry_refuses_a_second_definition_of_a_name():
    class Again(KernelDef):
        name, op, variant = "qconv_tables", "QConv", "tables"

    with pytest.raises(RuntimeError, match="registered twice"):
        KERNELS.register(Again)


def test_channel_shifts_pack_two_per_byte_when_they_span_at_most_16_values():
    from pqc.backends.c_tables import channel_shifts

    packed = channel_shifts((7, 9, 22, 8, 7), "layer")
    assert packed["shift_base"] == 7 and packed["shift"].ctype == "uint8_t"
    raw = np.array(packed["shift"].values)
    nibbles = np.stack([raw & 15, raw >> 4], axis=1).ravel()[:5]
    assert (nibbles + 7).tolist() == [7, 9, 22, 8, 7]
    wide = channel_shifts((0, 9, 16), "layer")  # 17 values apart: a signed table
    assert wide["shift_base"] is None and wide["shift"].values == (0, 9, 16)
    assert channel_shifts((5,), "layer")["shift_base"] is None  # one channel: nothing to pack
