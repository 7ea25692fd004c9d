"""The float executor: a float IR graph as a differentiable `torch.nn.Module`.

It is both the float reference (checked against onnxruntime through the exporter) and the model
that reconstruction and fine-tuning train: every float constant is a `torch.nn.Parameter`, except
an op's ``buffer_inputs`` (BN running statistics) and non-float constants, which are buffers.
Training writes back into a graph with `FloatExecutor.to_graph`.
"""
from __future__ import annotations

import itertools
import re
from typing import Iterable, Iterator, Mapping

import numpy as np
import torch

from .data_checks import fixed_batch
from .errors import DataError, ModelError
from .ir import Graph, fresh_name
from .ops import get_op


class FloatExecutor(torch.nn.Module):
    """Runs a float IR graph with torch; each IR constant is addressable by its IR name.

    Parameters live in ``self.params`` and buffers in ``self.state`` under sanitized keys (IR
    names may contain characters torch refuses); use `param` and `named_ir_parameters` to
    address them by IR name. ``self.graph`` is the executor's own copy of the graph's structure
    (its constants' live values are the parameters and buffers). Unlike a fresh `torch.nn.Module` it starts in eval mode, so that
    calling it computes the float reference; call ``.train()`` to train it.
    """

    def __init__(self, graph: Graph, device: str | torch.device | None = None) -> None:
        super().__init__()
        self.graph = graph.copy()
        self._plan = [(node, get_op(node.op)) for node in self.graph.nodes]
        self.params = torch.nn.ParameterDict()
        self.state = torch.nn.Module()
        self._keys: dict[str, str] = {}
        buffer_names = {
            node.inputs[i] for node, op in self._plan for i in op.buffer_inputs if i < len(node.inputs) and node.inputs[i]
        }
        for name in self._constants_in_use():
            data = torch.from_numpy(np.array(self.graph.values[name].data))
            key = self._keys[name] = _sanitize(name, taken=set(self._keys.values()))
            if name in buffer_names or not data.is_floating_point():
                self.state.register_buffer(key, data)
            else:
                self.params[key] = torch.nn.Parameter(data)
        self._dead_after = self._last_uses()
        self.eval()
        if device is not None:
            self.to(device)

    # ----------------------------------------------------------------- constants by IR name
    def _constants_in_use(self) -> list[str]:
        used = [i for node in self.graph.nodes for i in node.inputs if i] + self.graph.outputs
        return [name for name in dict.fromkeys(used) if self.graph.values[name].is_const]

    def _last_uses(self) -> list[list[str]]:
        """For each node, the activations no later node reads (freed after it when not needed)."""
        last: dict[str, int] = {}
        for index, node in enumerate(self.graph.nodes):
            for name in node.inputs:
                if name and name not in self._keys:
                    last[name] = index
        dead: list[list[str]] = [[] for _ in self.graph.nodes]
        for name, index in last.items():
            dead[index].append(name)
        return dead

    def param(self, name: str) -> torch.Tensor:
        """The live Parameter (or buffer) holding IR constant ``name``."""
        key = self._keys.get(name)
        if key is None:
            raise ModelError(f"graph {self.graph.name!r} has no constant {name!r} in use")
        return self.params[key] if key in self.params else getattr(self.state, key)

    def named_ir_parameters(self) -> Iterator[tuple[str, torch.nn.Parameter]]:
        """``(IR value name, Parameter)`` for every trainable constant, in graph order."""
        for name, key in self._keys.items():
            if key in self.params:
                yield name, self.params[key]

    @property
    def device(self) -> torch.device:
        tensor = next(itertools.chain(self.params.values(), self.state.buffers()), None)
        return torch.device("cpu") if tensor is None else tensor.device

    # ----------------------------------------------------------------- running
    def forward(
        self, *inputs: torch.Tensor, capture: Iterable[str] = ()
    ) -> tuple[torch.Tensor, ...] | tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
        """Run the graph on one tensor per graph input, in ``graph.inputs`` order.

        Returns the tuple of graph outputs when ``capture`` is empty; otherwise the pair
        ``(outputs, captured)`` where ``captured`` maps each name in ``capture`` (any activation
        or constant of the graph) to its tensor. In training mode stateful ops use their training
        semantics (BN: batch statistics, running buffers updated).
        """
        graph = self.graph
        capture = list(capture)
        unknown = [name for name in capture if name not in graph.values]
        if unknown:
            raise ModelError(f"cannot capture {unknown}: graph {graph.name!r} has no such values")
        if len(inputs) != len(graph.inputs):
            raise DataError(f"graph {graph.name!r} takes {len(graph.inputs)} inputs {graph.inputs}, got {len(inputs)}")
        env: dict[str, torch.Tensor] = dict(zip(graph.inputs, inputs))
        env.update((name, self.param(name)) for name in self._keys)
        keep = set(graph.outputs) | set(capture)
        for (node, op), dead in zip(self._plan, self._dead_after):
            args = [env[name] if name else None for name in node.inputs]
            run = op.forward_train if self.training else op.forward
            try:
                outs = run(node, args)
            except RuntimeError as exc:
                shapes = [None if a is None else tuple(a.shape) for a in args]
                raise ModelError(f"node {node.name!r} ({node.op}) failed on input shapes {shapes}: {exc}") from exc
            env.update(zip(node.outputs, outs))
            for name in dead:
                if name not in keep:
                    del env[name]
        outputs = tuple(env[name] for name in graph.outputs)
        if not capture:
            return outputs
        return outputs, {name: env[name] for name in capture}

    def run(
        self,
        feeds: np.ndarray | Mapping[str, np.ndarray],
        batch_size: int = 256,
        capture: Iterable[str] = (),
    ) -> dict[str, np.ndarray]:
        """Inference on numpy data: the graph outputs and the ``capture``d values, by name.

        ``feeds`` is one array (single-input graphs) or a dict by input name, each of the
        input's declared dtype, with any number of samples on axis 0. With ``graph.dynamic_batch``
        they run in chunks of ``batch_size`` (rows must be independent, as in inference); a
        fixed-batch graph runs its declared batch at a time (the sample count a multiple of it). Captured activations are
        concatenated over the chunks, captured constants returned once. Runs in eval mode under
        no_grad, and restores the previous mode.
        """
        feeds = self._checked_feeds(feeds)
        names = list(dict.fromkeys([*self.graph.outputs, *capture]))
        if feeds and not self._as_declared(feeds):  # fixed batch: its declared batch at a time
            step = max(1, int(batch_size)) if self.graph.dynamic_batch else fixed_batch(self.graph)
            rows = next(iter(feeds.values())).shape[0]
            slices = [slice(start, start + step) for start in range(0, max(rows, 1), step)]
        else:
            slices = [slice(None)]
        chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                for chunk in slices:
                    args = [torch.from_numpy(np.array(feeds[name][chunk])).to(self.device) for name in self.graph.inputs]
                    _, captured = self.forward(*args, capture=names)
                    for name in names:
                        chunks[name].append(captured[name].detach().cpu().numpy())
        finally:
            self.train(was_training)
        return {
            name: parts[0] if len(parts) == 1 or self.graph.values[name].is_const else np.concatenate(parts)
            for name, parts in chunks.items()
        }

    def _checked_feeds(self, feeds: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``feeds`` as a dict by input name, refusing wrong names, dtypes, shapes or batch sizes."""
        graph = self.graph
        if not isinstance(feeds, Mapping):
            if len(graph.inputs) != 1:
                raise DataError(f"graph {graph.name!r} has inputs {graph.inputs}: pass a dict of arrays by name")
            feeds = {graph.inputs[0]: feeds}
        missing = [name for name in graph.inputs if name not in feeds]
        extra = [name for name in feeds if name not in graph.inputs]
        if missing or extra:
            raise DataError(f"graph {graph.name!r} takes inputs {graph.inputs}; missing {missing}, unexpected {extra}")
        checked: dict[str, np.ndarray] = {}
        for name in graph.inputs:
            value, array = graph.values[name], feeds[name]
            if not isinstance(array, np.ndarray):
                raise DataError(f"input {name!r}: expected a numpy array, got {type(array).__name__}")
            if str(array.dtype) != value.dtype:
                raise DataError(f"input {name!r}: dtype {array.dtype}, the graph expects {value.dtype}")
            ok = array.ndim == len(value.shape) > 0 and array.shape[1:] == tuple(value.shape[1:])
            expected = "(N, " + ", ".join(map(str, value.shape[1:])) + ")"
            batch = fixed_batch(graph)
            if batch > 1:
                ok, expected = ok and array.shape[0] % batch == 0, expected + f", N a multiple of {batch}"
            if not ok and not graph.dynamic_batch:
                ok = array.shape == tuple(value.shape)
            if not ok:
                raise DataError(f"input {name!r}: shape {array.shape}, the graph expects {expected}")
            checked[name] = array
        batches = {array.shape[0] for array in checked.values() if array.ndim}
        if not self._as_declared(checked) and len(batches) > 1:
            raise DataError(f"inputs of graph {graph.name!r} have different batch sizes {sorted(batches)}")
        return checked

    def _as_declared(self, feeds: Mapping[str, np.ndarray]) -> bool:
        """Whether a fixed-batch graph is fed exactly its declared shapes (one call, inputs may
        broadcast); otherwise axis 0 of every feed is the sample axis."""
        graph = self.graph
        return not graph.dynamic_batch and all(feeds[n].shape == tuple(graph.values[n].shape) for n in graph.inputs)

    # ----------------------------------------------------------------- back to IR
    def to_graph(self) -> Graph:
        """A copy of the graph whose constants hold the current parameter and buffer values."""
        graph = self.graph.copy()
        for name in self._keys:
            value = graph.values[name]
            value.data = self.param(name).detach().cpu().numpy().astype(value.dtype, copy=True)
        return graph


def _sanitize(name: str, taken: set[str]) -> str:
    """A torch-safe attribute name for an IR value name, unique among ``taken``."""
    return fresh_name("v_" + re.sub(r"\W", "_", name), taken)
