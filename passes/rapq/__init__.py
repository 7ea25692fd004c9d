"""Pass ``rapq``: power-of-two post-training quantization by block reconstruction (rapq.md).

Establishes the same annotation invariant as the baseline ``quantize`` pass (`pqc.quant`,
`pqc.passes.quantize`), so lowering, the simulator and the C need nothing new: it starts from the
``lp`` annotation of the same options (which fixes every format's bits and sign, the sharing
groups, the 8-bit first and last layers and the int32 logits), then replaces the weight
integers and exponents of every layer but the first, and the exponent of every activation
group outside the first layer, with the hardened results of `reconstruct.reconstruct`. Dead
channels (`pqc.passes.quantize.dead`) stay as the baseline made them: zero weights, an exponent
that fits their bias.
Every exponent is asserted to be an integer and every scale an exact power of two.

``method="uniform"`` runs the same reconstruction with float scales; its result cannot be
expressed as annotations (no shift-only program runs it), so use `train` and
`fake_quant_logits` to evaluate it as an accuracy reference.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pqc.errors import ModelError, PqcError
from pqc.ir import Graph
from pqc.pipeline import PassContext, register_pass
from pqc.quant import LAYER_OPS, ActQuant, BitWidths, WeightQuant, get_quant

from pqc.passes.quantize.calibrate import CalibData, calibrate, check_calibration_data
from pqc.passes.quantize.pot_scales import int_grid, lp_scales
from pqc.passes.quantize import ACCUMULATOR_BITS, quantize, sharing_groups
from pqc.passes.rapq.checkpoint import Checkpoint, run_key
from pqc.passes.rapq.network import QuantNetwork
from pqc.passes.rapq.quantizers import WeightQuantizer
from pqc.passes.rapq.reconstruct import Schedule, UnitLog, reconstruct
from pqc.passes.rapq.units import MODE_C, find_units, loss_exponent
from pqc.passes.rebatch import rebatch

METHODS = ("rapq", "uniform")
#: the rapq pass's checkpoint file in the pipeline's ``checkpoint_dir``
CHECKPOINT_FILE = "rapq.pt"
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


@dataclass(frozen=True)
class RapqOptions(BitWidths):
    """Options of RAPQ: the bit widths (weights ``int`` only), ``method`` (``rapq``, or the
    ``uniform`` float-scale reference, which only `train` runs), ``mode`` (``quick`` or
    ``full``), ``iters`` weight-phase iterations per unit (0: `MODE_ITERS` of the mode),
    ``calib_size`` calibration samples used (the first ones), ``batch_size``, and ``lam`` the
    rounding regularizer weight (None: 0.1 with depthwise convs, else 0.01)."""

    method: str = "rapq"
    mode: str = "quick"
    iters: int = 0
    calib_size: int = 256
    batch_size: int = 32
    lam: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise PqcError(f"rapq: unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.mode not in MODE_C:
            raise PqcError(f"rapq: unknown mode {self.mode!r}; known: {', '.join(MODE_C)}")
        for name, low in (("iters", 0), ("calib_size", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise PqcError(f"rapq: {name} must be an integer >= {low}, got {value!r}")
        if self.weight_format != "int":
            raise PqcError(f"rapq: weight_format {self.weight_format!r} is not supported (only 'int'); "
                           "use the quantize pass")
        self.check("rapq")


def train(graph: Graph, calib: CalibData | None, options: RapqOptions | None = None, *, seed: int = 0,
          device: str = "cpu", checkpoint: Path | None = None, resume: bool = False, **overrides: Any) -> RapqModel:
    """Reconstruct a canonical graph's quantization on calibration data (see the module doc):
    ``options`` (default `RapqOptions()`) with ``overrides`` of its fields. With a ``checkpoint``
    file the state is saved there after every unit, and ``resume`` continues the run it holds
    (`pqc.passes.rapq.checkpoint`; the file stays for the caller to delete once the result is safe)."""
    opts = replace(options or RapqOptions(), **overrides)
    method, mode, iters, calib_size, lam = opts.method, opts.mode, opts.iters, opts.calib_size, opts.lam
    batched = rebatch(graph)
    if len(graph.inputs) != 1 or batched is None:
        raise ModelError(f"rapq: graph {graph.name!r} must have a single input and run on batches (it has inputs "
                         f"{graph.inputs}; a fixed batch of 1 is taken when no op depends on it, see pqc.passes.rebatch)")
    graph = batched
    x = check_calibration_data(graph, calib)[graph.inputs[0]][:calib_size]
    saver = (Checkpoint(Path(checkpoint), run_key(graph, x, asdict(opts), seed, device), resume)
             if checkpoint is not None else None)
    base = quantize(graph, x, method="lp", wbits=opts.wbits, abits=opts.abits, first_last_bits=opts.first_last_bits,
                    layer_bits=opts.layer_bits, first_output_bits=opts.first_output_bits, seed=seed, device=device)
    units = find_units(base)
    if lam is None:
        depthwise = any(n.op == "Conv" and n.attrs.get("group", 1) > 1 for n in base.nodes)
        lam = DEPTHWISE_LAM if depthwise else 0.01
    weight_iters = iters or MODE_ITERS[mode]
    schedule = Schedule(weight_iters, max(1, weight_iters // 2), batch_size=opts.batch_size, lam=lam)
    net = QuantNetwork(base, pot=method == "rapq",
                       act_log2_scales=None if method == "rapq" else _uniform_act_init(base, x, seed, device))
    logs = reconstruct(net, units, [loss_exponent(u.gamma, mode) for u in units], x, schedule,
                       seed=seed, device=device, checkpoint=saver)
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


def rapq(graph: Graph, calib: CalibData | None, options: RapqOptions | None = None, *, seed: int = 0,
         device: str = "cpu", checkpoint: Path | None = None, resume: bool = False,
         **overrides: Any) -> tuple[Graph, dict[str, Any]]:
    """`train`, then the annotated graph and the training report."""
    model = train(graph, calib, options, seed=seed, device=device, checkpoint=checkpoint, resume=resume, **overrides)
    return model.annotated(), model.report()


@register_pass("rapq", options=RapqOptions)
def rapq_pass(graph: Graph, ctx: PassContext, options: RapqOptions) -> Graph:
    """RAPQ power-of-two quantization by block reconstruction; leaves its report in
    ``ctx.state["rapq"]``; checkpoints into ``ctx.checkpoint_dir`` when the context has one."""
    if options.method != "rapq":
        raise PqcError(f"rapq: method {options.method!r} uses float scales and cannot become an integer program; "
                       "evaluate it with pqc.passes.rapq.train and fake_quant_logits")
    checkpoint = ctx.checkpoint_dir / CHECKPOINT_FILE if ctx.checkpoint_dir is not None else None
    graph, report = rapq(graph, ctx.calib, options, seed=ctx.seed, device=ctx.device, checkpoint=checkpoint,
                         resume=ctx.resume)
    ctx.state["rapq"] = report
    return graph
