"""Pass ``rapq``: power-of-two post-training quantization by block reconstruction (rapq.md).

Establishes the same annotation invariant as the baseline ``quantize`` pass (`pqc.quant`,
`quantize_pot`), so lowering, the simulator and the C need nothing new: it starts from the
``lp`` annotation of the same options (which fixes every format's bits and sign, the sharing
groups, the 8-bit first and last layers and the int32 logits), then replaces the weight
integers and exponents of every layer but the first, and the exponent of every activation
group outside the first layer, with the hardened results of `rapq_reconstruct.reconstruct`.
Every exponent is asserted to be an integer and every scale an exact power of two.

``method="uniform"`` runs the same reconstruction with float scales; its result cannot be
expressed as annotations (no shift-only program runs it), so use `train` and
`fake_quant_logits` to evaluate it as an accuracy reference.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from pqc.errors import ModelError, PqcError
from pqc.ir import Graph
from pqc.pipeline import PassContext, register_pass
from pqc.quant import ActQuant, WeightQuant, get_quant

from pqc.passes.quantize.calibrate import CalibData, calibrate, check_calibration_data
from pqc.passes.quantize.pot_scales import int_grid, lp_scales
from pqc.passes.quantize import ACCUMULATOR_BITS, LAYER_OPS, quantize, sharing_groups
from pqc.passes.rapq.network import QuantNetwork
from pqc.passes.rapq.quantizers import WeightQuantizer
from pqc.passes.rapq.reconstruct import Schedule, UnitLog, reconstruct
from pqc.passes.rapq.units import MODE_C, find_units, loss_exponent

METHODS = ("rapq", "uniform")
MODE_ITERS = {"quick": 500, "full": 2000}
"""Weight-phase iterations per unit by mode (the activation phase runs half as many)."""
DEPTHWISE_LAM = 0.1
"""The rounding regularizer weight for nets with depthwise convs (MobileNetV2-style), else 0.01."""


@dataclass
class RapqModel:
    """A reconstructed network: the trained fake-quant model and what the training did."""

    net: QuantNetwork
    method: str
    mode: str
    logs: list[UnitLog]

    def annotated(self) -> Graph:
        """The graph with the hardened PoT annotations (refused for ``uniform``)."""
        if self.method != "rapq":
            raise PqcError(f"method {self.method!r} uses float scales: it cannot be annotated for an integer program")
        graph = self.net.annotate()
        check_power_of_two(graph)
        return graph

    def report(self) -> dict[str, Any]:
        """Per unit: layers, p, reconstruction losses; per layer: exponents and floor/ceil choices."""
        layers = {}
        for node in self.net.graph.nodes:
            q = self.net.weight(node) if node.op in LAYER_OPS else None
            if isinstance(q, WeightQuantizer) and q.pot:
                layers[node.name] = {"exps": q.exponents().tolist(), "floor_won": q.floor_chosen().tolist(),
                                     **q.error_stats()}
        return {"method": self.method, "mode": self.mode,
                "units": [asdict(log) for log in self.logs], "layers": layers}


def check_power_of_two(graph: Graph) -> None:
    """Assert every annotation has integer exponents (so every scale is an exact power of two)."""
    for name, value in graph.values.items():
        q = value.meta.get("quant")
        if isinstance(q, ActQuant):
            exps = np.array([q.exp])
        elif isinstance(q, WeightQuant):
            exps = np.asarray(q.exps)
        else:
            continue
        mantissa, _ = np.frexp(np.exp2(exps.astype(np.float64)))
        assert np.issubdtype(exps.dtype, np.integer) and np.all(mantissa == 0.5), f"{name}: scale not a power of two"


def train(
    graph: Graph,
    calib: CalibData | None,
    *,
    method: str = "rapq",
    mode: str = "quick",
    wbits: int = 4,
    abits: int = 4,
    first_last_bits: int = 8,
    iters: int = 0,
    calib_size: int = 256,
    batch_size: int = 32,
    lam: float | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> RapqModel:
    """Reconstruct a canonical graph's quantization on calibration data (see the module doc).

    ``iters``: weight-phase iterations per unit (0: `MODE_ITERS` of ``mode``); ``calib_size``: the
    calibration samples used (the first ones); ``lam``: the rounding regularizer weight (None:
    0.1 with depthwise convs, else 0.01).
    """
    _check_options(method, mode, iters, calib_size, batch_size)
    if len(graph.inputs) != 1 or not graph.dynamic_batch:
        raise ModelError(f"rapq: graph {graph.name!r} must have a single input with a dynamic batch dimension "
                         f"(it has inputs {graph.inputs}, dynamic batch {graph.dynamic_batch})")
    x = check_calibration_data(graph, calib)[graph.inputs[0]][:calib_size]
    base = quantize(graph, x, method="lp", wbits=wbits, abits=abits, first_last_bits=first_last_bits,
                    seed=seed, device=device)
    units = find_units(base)
    if lam is None:
        depthwise = any(n.op == "Conv" and n.attrs.get("group", 1) > 1 for n in base.nodes)
        lam = DEPTHWISE_LAM if depthwise else 0.01
    weight_iters = iters or MODE_ITERS[mode]
    schedule = Schedule(weight_iters, max(1, weight_iters // 2), batch_size=batch_size, lam=lam)
    net = QuantNetwork(base, pot=method == "rapq",
                       act_log2_scales=None if method == "rapq" else _uniform_act_init(base, x, seed, device))
    logs = reconstruct(net, units, [loss_exponent(u.gamma, mode) for u in units], x, schedule,
                       seed=seed, device=device)
    return RapqModel(net.cpu(), method, mode, logs)


def _uniform_act_init(base: Graph, x: np.ndarray, seed: int, device: str) -> dict[str, float]:
    """log2 of each activation group's Lp(2.4) scale (the uniform reference's starting point)."""
    roots = [r for r in dict.fromkeys(sharing_groups(base).values())
             if get_quant(base, r).bits < ACCUMULATOR_BITS and r not in base.inputs]
    stats = calibrate(base, x, roots, seed=seed, device=device)
    init = {}
    for root in roots:
        q = get_quant(base, root)
        grid = int_grid(q.bits, q.signed)
        st = stats[root]
        extreme = max(st.hi, -st.lo) if q.signed else max(st.hi, 0.0)
        scale = lp_scales(st.sample[None, :], grid, np.array([extreme]))[0]
        init[root] = float(np.log2(scale)) if scale > 0 else float(q.exp)
    return init


def fake_quant_logits(model: RapqModel, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The trained fake-quant network's output on float inputs, computed in float64 (for PoT
    quantizers: exactly the integer program's real-valued output)."""
    net = model.net.double()
    try:
        with torch.no_grad():
            parts = [net(torch.from_numpy(x[i:i + batch_size]).double()).numpy() for i in range(0, len(x), batch_size)]
    finally:
        model.net.float()
    return np.concatenate(parts)


def rapq(graph: Graph, calib: CalibData | None, **options: Any) -> tuple[Graph, dict[str, Any]]:
    """`train` with method ``rapq``, then the annotated graph and the training report."""
    model = train(graph, calib, **options)
    return model.annotated(), model.report()


@register_pass("rapq")
def rapq_pass(
    graph: Graph,
    ctx: PassContext,
    *,
    method: str = "rapq",
    mode: str = "quick",
    wbits: int = 4,
    abits: int = 4,
    weight_format: str = "int",
    first_last_bits: int = 8,
    iters: int = 0,
    calib_size: int = 256,
    batch_size: int = 32,
    lam: float | None = None,
) -> Graph:
    """RAPQ power-of-two quantization by block reconstruction; leaves its report in
    ``ctx.state["rapq"]``."""
    if method != "rapq":
        raise PqcError(f"rapq: method {method!r} uses float scales and cannot become an integer program; "
                       "evaluate it with pqc.passes.rapq.train and fake_quant_logits")
    if weight_format != "int":
        raise PqcError(f"rapq: weight_format {weight_format!r} is not supported (only 'int'); use the quantize pass")
    graph, report = rapq(graph, ctx.calib, method=method, mode=mode, wbits=wbits, abits=abits,
                         first_last_bits=first_last_bits, iters=iters, calib_size=calib_size,
                         batch_size=batch_size, lam=lam, seed=ctx.seed, device=ctx.device)
    ctx.state["rapq"] = report
    return graph


def _check_options(method: str, mode: str, iters: int, calib_size: int, batch_size: int) -> None:
    if method not in METHODS:
        raise PqcError(f"rapq: unknown method {method!r}; known: {', '.join(METHODS)}")
    if mode not in MODE_C:
        raise PqcError(f"rapq: unknown mode {mode!r}; known: {', '.join(MODE_C)}")
    for name, value, low in (("iters", iters, 0), ("calib_size", calib_size, 1), ("batch_size", batch_size, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise PqcError(f"rapq: {name} must be an integer >= {low}, got {value!r}")
