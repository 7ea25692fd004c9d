"""The calibrated cost model: every kernel is calibrated, estimates are sane and refuse an
uncalibrated kernel by naming the script to rerun."""
from __future__ import annotations

import pytest

from int_graph_builder import zoo
from pqc.backends.cost_model import CALIBRATE, CORES, calibration, estimate
from pqc.backends.kernel_select import kernel_table_bytes
from pqc.backends.kernels import KERNELS, KernelDef
from pqc.errors import InternalError


def test_every_registered_kernel_is_calibrated_with_non_negative_coefficients():
    table = calibration()["kernels"]
    assert set(KERNELS) <= set(table), f"rerun {CALIBRATE}"
    for name, entry in table.items():
        for target in ("code_bytes", *CORES):
            assert all(c >= 0 for c in entry[target].values()), (name, target)


def test_estimate_is_the_exact_tables_plus_code_and_grows_with_work():
    graph = zoo()
    for node in graph.nodes:
        for kernel in (k for k in KERNELS.values() if k.op == node.op and k.supports(node, graph)):
            cost = estimate(kernel, node, graph)
            assert cost.flash_bytes >= kernel_table_bytes(kernel, node, graph)
            assert set(cost.instructions) == set(CORES)
            if node.op in ("QConv", "QGemm"):
                assert all(v > 0 for v in cost.instructions.values())
    conv = graph.nodes[0]
    assert estimate(KERNELS["qconv_tables"], conv, graph).instructions["cortex-m0"] > \
        estimate(KERNELS["qgemm_tables"], graph.nodes[-1], graph).instructions["cortex-m0"]


def test_an_uncalibrated_kernel_is_an_internal_error_naming_the_script():
    class Uncalibrated(KernelDef):
        name, op, variant = "qconv_uncalibrated", "QConv", "uncalibrated"

    graph = zoo()
    with pytest.raises(InternalError, match=CALIBRATE):
        estimate(Uncalibrated(), graph.nodes[0], graph)
