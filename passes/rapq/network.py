"""The annotated float graph as a trainable fake-quant torch model that follows the integer rules.

`QuantNetwork` starts from a graph the baseline ``quantize`` pass annotated (so bits, signs,
sharing groups, first/last-layer rules and the int32 logits are exactly the baseline's) and
replaces each layer's weight with a `WeightQuantizer` (the first layer keeps its baseline
integers: `FixedWeight`) and each activation group's format with an `ActQuantizer`.

With activations quantized, the forward pass computes what the integer program computes
(`pqc.passes.lower`): the input is rounded half away from zero, biases are rounded half away at
the accumulator's scale, every requantization rounds half up, a global average pool sums and
multiplies by the same reciprocal ``m / 2^k`` lowering picks, a product of two activations
(QMul) is the exact float product rounded once. In float64 every such value is
exact, so the fake-quant logits equal the simulator's (tested). Ops lowered to constant
multipliers or lookup tables (Add/Mul of a constant, standalone BN, Sigmoid, AveragePool) run as
float ops followed by the output rounding: there the two may differ by one unit at ties.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import numpy as np
import torch

from pqc.intmath import format_range
from pqc.ir import Graph, Node
from pqc.ops import get_op
from pqc.quant import LAYER_OPS, ActQuant, WeightQuant, get_quant, set_quant

from pqc.passes.lower import pool_reciprocal  # the reciprocal lowering gives each global average pool
from pqc.passes.quantize import ACCUMULATOR_BITS, sharing_groups
from pqc.passes.quantize.dead import bury, fit_dead_biases
from pqc.passes.rapq.quantizers import ActQuantizer, FixedWeight, WeightQuantizer, round_half_away


class QuantNetwork(torch.nn.Module):
    """Fake-quant model of a baseline-annotated canonical graph (see the module doc).

    ``pot=False`` gives the uniform reference (float scales). ``act_log2_scales`` overrides the
    initial log2 scale of activation groups by root name (default: the annotation's exponent).
    """

    def __init__(self, graph: Graph, pot: bool = True, act_log2_scales: dict[str, float] | None = None) -> None:
        super().__init__()
        self.graph = graph
        self.groups = sharing_groups(graph)
        layers = [n for n in graph.nodes if n.op in LAYER_OPS]
        self.first = layers[0]
        self._wkeys: dict[str, str] = {}  # layer name -> key in weights
        self._akeys: dict[str, str] = {}  # group root -> key in acts
        self._ckeys: dict[str, str] = {}  # constant name -> buffer name in consts
        self.weights = torch.nn.ModuleDict()
        for i, layer in enumerate(layers):
            wq = get_quant(graph, layer.inputs[1])
            key = self._wkeys[layer.name] = f"w{i}"
            if layer is self.first:
                self.weights[key] = FixedWeight(wq.q, wq.exps)
            else:
                self.weights[key] = WeightQuantizer(graph.const(layer.inputs[1]), wq.bits, pot)
        self.acts = torch.nn.ModuleDict()
        self.input = graph.inputs[0]
        init = act_log2_scales or {}
        for j, root in enumerate(dict.fromkeys(self.groups.values())):
            q = get_quant(graph, root)
            if root != self.input and q.bits < ACCUMULATOR_BITS:
                key = self._akeys[root] = f"a{j}"
                self.acts[key] = ActQuantizer(q.bits, q.signed, init.get(root, q.exp), pot)
        self.input_quant: ActQuant = get_quant(graph, self.input)
        self.consts = torch.nn.Module()
        for k, name in enumerate(sorted({i for n in graph.nodes for i in n.inputs if i and graph.values[i].is_const})):
            self._ckeys[name] = f"c{k}"
            self.consts.register_buffer(f"c{k}", torch.from_numpy(np.array(graph.const(name))))
        self._recips = {
            n.name: pool_reciprocal(n, int(np.prod(graph.values[n.inputs[0]].shape[2:])), self._format_range(n.inputs[0]))
            for n in graph.nodes if n.op == "GlobalAveragePool"
        }

    def _format_range(self, name: str) -> tuple[int, int]:
        q = get_quant(self.graph, self.groups[name])
        return format_range(q.bits, q.signed)

    # ------------------------------------------------------------------ parts
    def weight(self, layer: Node) -> WeightQuantizer | FixedWeight:
        return self.weights[self._wkeys[layer.name]]

    @contextmanager
    def baseline_weights(self, layers: Iterable[Node]) -> Iterator[None]:
        """Within the block, ``layers`` use the baseline annotation's integers and exponents."""
        saved = {n.name: self.weight(n) for n in layers}
        try:
            for n in layers:
                wq = get_quant(self.graph, n.inputs[1])
                self.weights[self._wkeys[n.name]] = FixedWeight(wq.q, wq.exps).to(self._const(n.inputs[1]).device)
            yield
        finally:
            for name, module in saved.items():
                self.weights[self._wkeys[name]] = module

    def act(self, name: str) -> ActQuantizer | None:
        """The quantizer of ``name``'s group (None: the graph input or the int32 logits)."""
        key = self._akeys.get(self.groups.get(name, ""))
        return self.acts[key] if key is not None else None

    def learnable_acts(self, nodes: Iterable[Node]) -> list[ActQuantizer]:
        """The quantizers of the groups whose root ``nodes`` compute (the first layer's excluded)."""
        found = []
        for node in nodes:
            if node is self.first:
                continue
            for out in node.outputs:
                q = self.act(out)
                if q is not None and self.groups[out] == out:
                    found.append(q)
        return found

    def _scale_of(self, name: str, dtype: torch.dtype) -> torch.Tensor:
        q = self.act(name)
        if q is None:
            return torch.tensor(self.input_quant.scale, dtype=dtype)
        return torch.exp2(q.log2_scale().detach().to(dtype))

    # ------------------------------------------------------------------ running
    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The integer program's input rounding (`simulator.quantize_input`), as real values."""
        s = self.input_quant.scale
        q = torch.clamp(round_half_away(x.to(torch.float64) / s), self.input_quant.qmin, self.input_quant.qmax)
        return (q * s).to(x.dtype)

    def run(
        self, nodes: Iterable[Node], env: dict[str, torch.Tensor], *, weights: bool, acts: bool
    ) -> dict[str, torch.Tensor]:
        """Run ``nodes`` (in order) on ``env`` (activations by name, updated and returned) with
        quantized weights and/or activations."""
        for node in nodes:
            args = [env[i] if i in env else self._const(i) if i else None for i in node.inputs]
            dtype = args[0].dtype
            if node.op in LAYER_OPS and weights:
                wq = self.weight(node)
                args[1] = wq().to(dtype)
                if acts and len(args) > 2 and args[2] is not None:
                    s_acc = (self._scale_of(node.inputs[0], torch.float64) * wq.scale().detach().to(torch.float64))
                    args[2] = (round_half_away(args[2].to(torch.float64) / s_acc) * s_acc).to(dtype)
            if acts and node.op == "GlobalAveragePool":
                m, k = self._recips[node.name]
                outs = [args[0].sum(dim=(2, 3), keepdim=True) * (m / 2.0 ** k)]
            else:
                outs = get_op(node.op).forward(node, args)
            for out, y in zip(node.outputs, outs):
                q = self.act(out) if acts and self.groups.get(out) == out else None
                env[out] = q(y) if q is not None else y
        return env

    def forward(self, x: torch.Tensor, *, weights: bool = True, acts: bool = True) -> torch.Tensor:
        """The whole network's (single) output."""
        env = {self.input: self.quantize_input(x) if acts else x}
        return self.run(self.graph.nodes, env, weights=weights, acts=acts)[self.graph.outputs[0]]

    def _const(self, name: str) -> torch.Tensor:
        return getattr(self.consts, self._ckeys[name])

    # ------------------------------------------------------------------ export
    def annotate(self) -> Graph:
        """A copy of the graph annotated with the hardened formats (PoT quantizers only)."""
        g = self.graph.copy()
        exps_of: dict[str, np.ndarray] = {}
        for node in g.nodes:
            if node.op not in LAYER_OPS:
                continue
            wq = get_quant(g, node.inputs[1])
            quantizer = self.weight(node)
            if isinstance(quantizer, WeightQuantizer):
                exps, q = bury(quantizer.exponents(), quantizer.integers(), wq.dead)
                wq = WeightQuant(wq.bits, "int", exps, q, 0, wq.dead)
                set_quant(g, node.inputs[1], wq)
            exps_of[node.name] = np.asarray(wq.exps)
        formats: dict[str, ActQuant] = {}
        for root in dict.fromkeys(self.groups.values()):
            q = get_quant(g, root)
            quantizer = self.act(root)
            formats[root] = ActQuant(q.bits, q.signed, quantizer.exponent()) if quantizer is not None else q
        last = [n for n in g.nodes if n.op in LAYER_OPS][-1]
        out_root = self.groups[last.outputs[0]]
        if formats[out_root].bits == ACCUMULATOR_BITS:
            e_x = formats[self.groups[last.inputs[0]]].exp
            formats[out_root] = ActQuant(ACCUMULATOR_BITS, True, int(e_x + exps_of[last.name].min()))
        for name, root in self.groups.items():
            set_quant(g, name, formats[root])
        fit_dead_biases(g)
        return g
