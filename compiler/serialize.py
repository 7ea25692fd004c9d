"""Save and load a Graph as JSON (structure, attributes, metadata) plus .npz (constants).

The build folder keeps the integer program this way, so `pqc verify`, `pqc run` and
`pqc evaluate` work from the folder alone, exactly on what was compiled. Sequences in
attributes and metadata load back as tuples (the IR's convention for attribute vectors).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PqcError
from .ir import Graph, Node, Value

FORMAT = "pqc-graph-1"


def _encode(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__array__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot serialize {type(obj).__name__} in graph metadata")


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__array__" in obj:
            return np.asarray(obj["__array__"], dtype=obj["dtype"])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return tuple(_decode(v) for v in obj)
    return obj


def save_graph(graph: Graph, path: str | Path) -> tuple[Path, Path]:
    """Write ``<path>.json`` and ``<path>.npz``; return both paths."""
    path = Path(path)
    consts = {f"c{i}": v.data for i, v in enumerate(graph.values.values()) if v.data is not None}
    names = {v.name: f"c{i}" for i, v in enumerate(graph.values.values()) if v.data is not None}
    doc = {
        "format": FORMAT,
        "name": graph.name,
        "dynamic_batch": graph.dynamic_batch,
        "inputs": graph.inputs,
        "outputs": graph.outputs,
        "meta": _encode(graph.meta),
        "values": [
            {"name": v.name, "shape": list(v.shape), "dtype": v.dtype, "const": names.get(v.name), "meta": _encode(v.meta)}
            for v in graph.values.values()
        ],
        "nodes": [
            {"op": n.op, "name": n.name, "inputs": n.inputs, "outputs": n.outputs,
             "attrs": _encode(n.attrs), "meta": _encode(n.meta)}
            for n in graph.nodes
        ],
    }
    json_path, npz_path = path.with_suffix(".json"), path.with_suffix(".npz")
    json_path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    with open(npz_path, "wb") as f:  # np.savez on a handle: no automatic suffix, byte-stable
        np.savez(f, **consts)
    return json_path, npz_path


def load_graph(path: str | Path) -> Graph:
    """Read a graph written by `save_graph` (``path`` with or without suffix)."""
    path = Path(path)
    json_path, npz_path = path.with_suffix(".json"), path.with_suffix(".npz")
    try:
        doc = json.loads(json_path.read_text())
        consts = dict(np.load(npz_path))
    except (OSError, ValueError) as exc:
        raise PqcError(f"cannot read compiled graph {json_path}: {exc}") from exc
    if doc.get("format") != FORMAT:
        raise PqcError(f"{json_path} is not a pqc graph (format {doc.get('format')!r})")
    values = [
        Value(v["name"], tuple(v["shape"]), v["dtype"], consts[v["const"]] if v["const"] else None, _decode(v["meta"]))
        for v in doc["values"]
    ]
    nodes = [
        Node(n["op"], list(n["inputs"]), list(n["outputs"]), _decode(n["attrs"]), n["name"], _decode(n["meta"]))
        for n in doc["nodes"]
    ]
    return Graph(doc["name"], values, nodes, doc["inputs"], doc["outputs"], doc["dynamic_batch"], _decode(doc["meta"]))
