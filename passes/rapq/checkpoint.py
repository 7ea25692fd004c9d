"""Unit-by-unit checkpoints of a RAPQ run, so that an interrupted run continues (``--resume``).

RAPQ on an ImageNet-size network takes tens of minutes; a run killed near the end should not
start over. After every unit of each phase `reconstruct` saves what the rest of the run
depends on: which phase and unit come next, every quantizer parameter and hardening flag, the
batch sampler's state and the unit logs so far. The unit inputs are not saved: a resumed run
recomputes them from the calibration data through the units already done, which gives the same
tensors (the same parameters through the same ops), so a resumed run ends with the same
integers as one that was never interrupted. That is far smaller than 224x224 activations.

Each checkpoint carries a key, a hash of everything the run depends on (graph, calibration
data, options, seed, device); a checkpoint of another run is refused, never silently mixed in.
A file is written next to its final name and renamed over it, so a kill while saving leaves the
previous checkpoint intact.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pqc.errors import PqcError
from pqc.ir import Graph

from .network import QuantNetwork
from .quantizers import WeightQuantizer

#: the phases of `reconstruct`, in order
PHASES = ("weights", "activations")


def run_key(graph: Graph, x: np.ndarray, options: dict[str, Any], seed: int, device: str) -> str:
    """A hash of what a RAPQ run's result depends on: the graph (ops, attributes, wiring,
    constants), the calibration inputs, the options, the seed and the device."""
    h = hashlib.sha256()
    h.update(json.dumps({"options": options, "seed": seed, "device": device}, sort_keys=True, default=str).encode())
    for node in graph.nodes:
        h.update(json.dumps([node.op, node.inputs, node.outputs, node.attrs], sort_keys=True, default=str).encode())
    for name in sorted(graph.values):
        data = graph.values[name].data
        if data is not None:
            h.update(name.encode())
            h.update(np.ascontiguousarray(data).tobytes())
    h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """The file a RAPQ run saves to after every unit (``path``), the run's ``key``, and whether
    to continue from what the file holds (``resume``) or start over."""

    path: Path
    key: str
    resume: bool = False

    def save(self, phase: str, next_unit: int, net: QuantNetwork, rng: np.random.Generator, logs: list[Any]) -> None:
        """Record that ``phase`` continues at unit ``next_unit`` with ``net``'s parameters."""
        state = {
            "key": self.key, "phase": phase, "next_unit": next_unit,
            "params": {n: p.detach().cpu().clone() for n, p in net.named_parameters()},
            "hard": {n: [m.exponent_hard, m.rounding_hard] for n, m in net.named_modules()
                     if isinstance(m, WeightQuantizer)},
            "rng": json.dumps(rng.bit_generator.state), "logs": [asdict(log) for log in logs],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        torch.save(state, partial)
        os.replace(partial, self.path)

    def restore(self, net: QuantNetwork, rng: np.random.Generator, logs: list[Any]) -> tuple[str, int]:
        """The phase and unit to continue from, with ``net``, ``rng`` and ``logs`` set as saved;
        ``("weights", 0)`` without ``resume`` or a checkpoint file. PqcError for a checkpoint of
        another run or one that cannot be read."""
        if not self.resume or not self.path.exists():
            return PHASES[0], 0
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file: torch raises many kinds
            raise PqcError(f"--resume: cannot read the checkpoint {self.path} ({exc}); "
                           "run without --resume (with --force) to start over") from None
        if state.get("key") != self.key:
            raise PqcError(f"--resume: the checkpoint {self.path} is of a run with another model, calibration "
                           "data, options, seed or device; run without --resume (with --force) to start over")
        params = dict(net.named_parameters())
        with torch.no_grad():
            for name, value in state["params"].items():
                params[name].copy_(value)
        modules = dict(net.named_modules())
        for name, (exponent_hard, rounding_hard) in state["hard"].items():
            q = modules[name]
            q.exponent_hard, q.rounding_hard = exponent_hard, rounding_hard
            q.v.requires_grad_(q.pot and not exponent_hard)
            q.alpha.requires_grad_(not rounding_hard)
        rng.bit_generator.state = json.loads(state["rng"])
        for log, saved in zip(logs, state["logs"]):
            log.__dict__.update(saved)
        return state["phase"], state["next_unit"]

    def remove(self) -> None:
        """Delete the checkpoint (the run finished)."""
        self.path.unlink(missing_ok=True)
