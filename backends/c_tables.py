"""Constant tables for the generated C kernels: what the ops' ``c_context`` methods build.

A kernel template reads its weights from compact tables rather than from multiplications:

* `digit_tables`: a weighted sum ``sum_i w[c, i] * x[off_i]`` as the NAF digits of the weights
  grouped by digit position ``k``: per channel ``ngroups[c]`` groups, each ``(k, npos, nneg)``,
  followed in ``deltas`` by the input offsets of its +1 digits then of its -1 digits, each list
  ascending and delta-coded from the window origin (so the kernel walks a pointer with adds
  only, and most layers fit the deltas in 8 or 16 bits). Zero digits are simply absent. A step
  over 255 may instead be bridged by taps added to both lists (they cancel), to keep 8 bits.
* `digit_groups`: the same digits as offset lists per row, for kernels that bake them into code.
* `multiplier_codes`: constants ``m`` (reciprocals, per-channel scales) as ``[npos, nneg,
  shifts of +1 digits..., shifts of -1 digits...]`` records read by the C helper ``pqc_mulc``.
* `packed_weights`: weights as dense ``bits``-bit two's complement fields (the compact kernels
  decode each and add the shifted input per set bit of its magnitude).
* `window_geometry`: sliding windows over a zero- (or minimum-) padded copy of a conv/pool
  input, so window offsets never leave the buffer and the inner loops need no bounds checks.
* `band_geometry`: the same for convs over a band of the input rows one output row reads
  (every channel), gathered with their padding per output row into a small scratch buffer.

Every table is a `CArray`; the C emitter names it ``<layer function>_<key>`` and places it in
the weight section.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InternalError, ModelError
from ..intmath import naf
from .activation_layout import packed_bits

CTYPES = {"int8": "int8_t", "uint8": "uint8_t", "int32": "int32_t"}
#: numpy's view of each C element type on the little-endian targets the C is built for
NP_DTYPES = {"int8_t": "i1", "uint8_t": "u1", "int16_t": "<i2", "uint16_t": "<u2", "int32_t": "<i4", "uint32_t": "<u4"}
ITEMSIZE = {ctype: np.dtype(dt).itemsize for ctype, dt in NP_DTYPES.items()}
TYPE_MIN = {"int8": -128, "uint8": 0, "int32": -(1 << 31)}
_UNSIGNED = (("uint8_t", 0xFF), ("uint16_t", 0xFFFF), ("uint32_t", 0xFFFFFFFF))
_SIGNED = (("int8_t", 1 << 7), ("int16_t", 1 << 15), ("int32_t", 1 << 31))


@dataclass(frozen=True)
class CArray:
    """A constant C array: element type and flat values; ``name`` is set by the emitter."""

    ctype: str
    values: tuple[int, ...]
    name: str = ""

    @property
    def nbytes(self) -> int:
        return ITEMSIZE[self.ctype] * max(len(self.values), 1)

    def array(self) -> np.ndarray:
        """The table's elements as the C compiler lays them out (an empty table is its one 0)."""
        return np.asarray(self.values or (0,), dtype=NP_DTYPES[self.ctype])

    def declaration(self, section: str) -> str:
        """``static const T name[n] SECTION = {...};`` (an empty table holds one unused 0), the
        values in decimal, 32 to a line without spaces: about 3.6 characters per byte of uint8
        table, so the source of a large model stays a small multiple of its tables."""
        vals = [str(v) if v > -(1 << 31) else c_int(v) for v in self.values] or ["0"]
        rows = [",".join(vals[i:i + 32]) for i in range(0, len(vals), 32)]
        return f"static const {self.ctype} {self.name}[{len(vals)}] {section} = {{\n" + ",\n".join(rows) + "\n};"


def table_bytes(context: Mapping[str, Any]) -> int:
    """The bytes of the constant tables in a kernel's ``c_context`` (its `CArray` values): what
    the emitter declares in the weight section, and what kernel selection compares."""
    return sum(v.nbytes for v in context.values() if isinstance(v, CArray))


def c_int(v: int) -> str:
    """A C expression for any int32 or uint32 value, safe inside a larger expression
    (``INT32_MIN`` is not a literal in C)."""
    v = int(v)
    if v == -(1 << 31):
        return "(-2147483647 - 1)"
    if v > 0x7FFFFFFF:
        return f"{v}u"
    return f"({v})" if v < 0 else str(v)


def uint_table(values: Sequence[int] | np.ndarray) -> CArray:
    """Values >= 0 in the narrowest unsigned type."""
    arr = np.asarray(values, dtype=np.int64).ravel()
    top, low = (int(arr.max()), int(arr.min())) if arr.size else (0, 0)
    ctype = next((t for t, m in _UNSIGNED if top <= m), None)
    if ctype is None or low < 0:
        raise ValueError(f"table values outside uint32: {low}..{top}")
    return CArray(ctype, tuple(arr.tolist()))


def int_table(values: Sequence[int] | np.ndarray) -> CArray:
    """Signed values in the narrowest signed type."""
    arr = np.asarray(values, dtype=np.int64).ravel()
    top, low = (int(arr.max()), int(arr.min())) if arr.size else (0, 0)
    ctype = next(t for t, m in _SIGNED if -m <= low and top < m)
    return CArray(ctype, tuple(arr.tolist()))


def typed_table(values: np.ndarray, dtype: str) -> CArray:
    """Values stored in the C type of an IR dtype (LUT entries, biases)."""
    return CArray(CTYPES[dtype], tuple(np.asarray(values, dtype=np.int64).ravel().tolist()))


def digit_tables(weights: np.ndarray, offsets: np.ndarray) -> dict[str, Any]:
    """Tables of ``sum_i weights[c, i] * x[offsets[i]]`` for each row ``c`` (see module doc).

    Returns ``ngroups``, ``groups`` (flat ``(k, npos, nneg)`` triples) and ``deltas``. When a
    delta would pass 255, the table with `_bridged` groups is taken if it is smaller: uint8
    deltas plus a few bridging taps instead of every delta in 16 bits. Results are kept
    (`_DIGIT_TABLES`, up to `_DIGIT_TABLES_KEPT` table entries): kernel selection asks for
    each layer's tables for several kernels and for every candidate schedule, and on an
    ImageNet-size network each takes a second.
    """
    w = np.ascontiguousarray(weights, dtype=np.int64)
    o = np.ascontiguousarray(offsets, dtype=np.int64)
    key = (w.shape, o.shape, hashlib.blake2b(w.tobytes() + o.tobytes(), digest_size=16).digest())
    if key not in _DIGIT_TABLES:
        tables = _digit_tables(w, o)
        while _DIGIT_TABLES and _kept_entries() + _entries(tables) > _DIGIT_TABLES_KEPT:
            _DIGIT_TABLES.pop(next(iter(_DIGIT_TABLES)))  # the oldest
        _DIGIT_TABLES[key] = tables
    return dict(_DIGIT_TABLES[key])


#: `digit_tables` results by content, oldest first (their `CArray` values are immutable)
_DIGIT_TABLES: dict[tuple, dict[str, CArray]] = {}
#: the most table entries kept (about 8 bytes each: tuples of shared small ints)
_DIGIT_TABLES_KEPT = 32_000_000


def _entries(tables: Mapping[str, CArray]) -> int:
    return sum(len(t.values) for t in tables.values())


def _kept_entries() -> int:
    return sum(_entries(t) for t in _DIGIT_TABLES.values())


def _digit_tables(weights: np.ndarray, offsets: np.ndarray) -> dict[str, CArray]:
    rows = digit_groups(weights, offsets)
    ngroups = [len(row) for row in rows]
    # (k, +1 offsets, -1 offsets), ascending, row after row
    lists = [(k, pos, neg) for row in rows for k, pos, neg in row]
    groups, deltas = _delta_code(lists)
    if deltas.ctype != "uint8_t":
        bridged = _delta_code([(k, *_bridged(pos.tolist(), neg.tolist(), 0xFF)) for k, pos, neg in lists])
        if sum(t.nbytes for t in bridged) < groups.nbytes + deltas.nbytes:
            groups, deltas = bridged
    return {"ngroups": uint_table(ngroups), "groups": groups, "deltas": deltas}


def _delta_code(lists: Sequence[tuple[int, Sequence[int], Sequence[int]]]) -> tuple[CArray, CArray]:
    """The ``groups`` and ``deltas`` tables of (k, +1 offsets, -1 offsets) groups: each list's
    offsets as steps from 0, list after list."""
    groups = [v for k, pos, neg in lists for v in (k, len(pos), len(neg))]
    sels = [np.asarray(sel, dtype=np.int64) for _, pos, neg in lists for sel in (pos, neg)]
    flat = np.concatenate(sels) if sels else np.zeros(0, dtype=np.int64)
    deltas = np.diff(flat, prepend=0)
    lengths = np.fromiter(map(len, sels), dtype=np.int64, count=len(sels))
    starts = (np.cumsum(lengths) - lengths)[lengths > 0]
    deltas[starts] = flat[starts]  # every list restarts from 0
    return uint_table(groups), uint_table(deltas)


def _bridged(pos: list[int], neg: list[int], limit: int) -> tuple[list[int], list[int]]:
    """Ascending offset lists with the same ``sum x[pos] - sum x[neg]`` and no step over
    ``limit`` (from 0): every bridging offset goes into both lists, so its tap cancels."""
    def bridges(sel: list[int]) -> list[int]:
        out, prev = [], 0
        for v in sel:
            while v - prev > limit:
                prev += limit
                out.append(prev)
            prev = v
        return out

    while True:  # a bridge can open a new step in the other list, past its last offset
        hops = bridges(pos) + bridges(neg)
        if not hops:
            return pos, neg
        pos, neg = sorted(pos + hops), sorted(neg + hops)


def digit_groups(weights: np.ndarray, offsets: np.ndarray) -> list[list[tuple[int, np.ndarray, np.ndarray]]]:
    """Per row of ``weights`` the ``(k, pos, neg)`` of each NAF digit position ``k`` holding a
    nonzero digit: the ascending ``offsets`` of the row's +1 and of its -1 digits there (what
    straight-line kernels write out as constant offsets instead of `digit_tables`)."""
    w = np.asarray(weights, dtype=np.int64).reshape(len(weights), -1)
    offsets = np.asarray(offsets, dtype=np.int64).ravel()
    rows = []
    for row in naf(w):
        groups = [(k, np.sort(offsets[row[:, k] == 1]), np.sort(offsets[row[:, k] == -1])) for k in range(row.shape[1])]
        rows.append([g for g in groups if len(g[1]) + len(g[2])])
    return rows


def multiplier_codes(ms: Sequence[int]) -> dict[str, CArray]:
    """``codes``: one ``[npos, nneg, +shifts..., -shifts...]`` record per constant of ``ms``;
    ``starts``: where each record begins."""
    codes: list[int] = []
    starts: list[int] = []
    for digits in naf(np.asarray(ms, dtype=np.int64)):
        starts.append(len(codes))
        pos, neg = np.flatnonzero(digits == 1), np.flatnonzero(digits == -1)
        codes += [len(pos), len(neg), *pos.tolist(), *neg.tolist()]
    return {"codes": uint_table(codes), "starts": uint_table(starts)}


def requant_shifts(shift: Sequence[int] | int, where: str) -> CArray:
    """Per-channel rounding shifts as a signed table; the C shifts need ``|s| <= 31``."""
    vals = np.atleast_1d(np.asarray(shift, dtype=np.int64))
    if np.any(np.abs(vals) > 31):
        raise ModelError(f"{where}: requantization shift {int(vals[np.abs(vals).argmax()])} is outside -31..31")
    return int_table(vals)


def _padded_plane(x_shape: Sequence[int], x_dtype: str, pads: Sequence[int], fill: int) -> dict[str, Any]:
    """Geometry of the padded input copy: ``pads`` is ``(left, right, top, bottom)``.

    ``padded`` is False when no padding is needed (the kernel then reads the input in place).
    """
    _, c, h, w = x_shape
    l, r, t, b = pads
    hp, wp = h + t + b, w + l + r
    return {
        "padded": any(pads),
        "pad_t": t,
        "pad_l": l,
        "h": h,
        "w": w,
        "hp": hp,
        "wp": wp,
        "plane": hp * wp,
        "fill": fill,
        "scratch_bytes": c * hp * wp * ITEMSIZE[CTYPES[x_dtype]] if any(pads) else 0,
    }


def _window_offsets(kh: int, kw: int, dh: int, dw: int, wp: int) -> np.ndarray:
    """Offsets of a ``kh x kw`` dilated window's taps in a row-major plane ``wp`` wide."""
    return (np.arange(kh)[:, None] * dh * wp + np.arange(kw)[None, :] * dw).ravel()


def packed_weights(weights: np.ndarray, bits: int) -> dict[str, Any]:
    """Each row of ``weights`` as ``bits``-bit two's complement fields packed LSB first into
    bytes, every row starting on a byte (so a kernel restarts a row with a pointer, and the
    overhead is under one byte per row).

    Returns ``weights`` (uint8 table), ``row_bytes`` and ``bits``.
    """
    w = np.asarray(weights, dtype=np.int64).reshape(len(weights), -1)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if w.size and (w.min() < lo or w.max() > hi):
        raise InternalError(f"weights {int(w.min())}..{int(w.max())} do not fit {bits} bits")
    fields = (w & ((1 << bits) - 1))[:, :, None] >> np.arange(bits)  # [rows, K, bits]
    stream = (fields & 1).astype(np.uint8).reshape(len(w), -1)
    row_bytes = -(-stream.shape[1] // 8)
    stream = np.pad(stream, ((0, 0), (0, 8 * row_bytes - stream.shape[1])))
    packed = np.packbits(stream, axis=1, bitorder="little")
    return {"weights": CArray("uint8_t", tuple(int(v) for v in packed.ravel())), "row_bytes": row_bytes, "bits": bits}


def channel_shifts(shift: Sequence[int] | int, where: str) -> dict[str, Any]:
    """A layer's per-channel requantization shifts as ``shift`` (the table) and ``shift_base``:
    when they span at most 16 values, their offsets from the least (``shift_base``) packed two
    per byte, low nibble first (half the bytes of a signed table: on a network of many narrow
    channels the shifts are a few percent of its tables); else `requant_shifts` and None. The
    templates read channel ``c``'s shift through the ``channel_shift`` macro."""
    table = requant_shifts(shift, where)
    vals = np.asarray(table.values, dtype=np.int64)
    if len(vals) < 2 or vals.max() - vals.min() > 15:
        return {"shift": table, "shift_base": None}
    offsets = np.pad(vals - vals.min(), (0, len(vals) % 2))
    return {"shift": CArray("uint8_t", tuple((offsets[0::2] | offsets[1::2] << 4).tolist())),
            "shift_base": int(vals.min())}


def requant_context(node: Any, graph: Any) -> dict[str, Any]:
    """What every QConv and QGemm kernel reads besides its weights: the bias (narrowest signed
    type), the per-channel shifts (`channel_shifts`) and the clamp."""
    return {
        "bias": int_table(graph.values[node.inputs[2]].data),
        **channel_shifts(node.attrs["shift"], node.name),
        "lo": node.attrs["lo"],
        "hi": node.attrs["hi"],
    }


def linear_tables(node: Any, graph: Any, offsets: np.ndarray) -> dict[str, Any]:
    """The tables kernels' context: digit tables of ``w`` over ``offsets`` and `requant_context`."""
    w = graph.values[node.inputs[1]].data
    return {**digit_tables(w.reshape(len(w), -1), offsets), **requant_context(node, graph)}


def group_taps(taps: np.ndarray, plane: int, cin_g: int) -> np.ndarray:
    """The offsets of a channel group's ``cin_g`` planes (``plane`` elements apart) of one
    window's ``taps``, channel-major: what a conv kernel's digit offsets index."""
    return (np.arange(cin_g)[:, None] * plane + np.asarray(taps)[None, :]).ravel()


def window_geometry(x: Any, y: Any, attrs: dict[str, Any], pads: Sequence[int], fill: int) -> dict[str, Any]:
    """Sliding-window geometry of conv and pool kernels over a padded copy of ``x``.

    ``pads`` is ``(left, right, top, bottom)`` including any ceil-mode overhang; the result has
    the `_padded_plane` keys, the output size, the element steps between windows, and
    ``offsets``: the ndarray of a window's tap offsets within one plane.
    """
    kh, kw = attrs["kernel_shape"]
    dh, dw = attrs.get("dilations", (1, 1))
    plane = _padded_plane(x.shape, x.dtype, pads, fill)
    return {
        **plane,
        "c": x.shape[1], "kh": kh, "kw": kw, "oh": y.shape[2], "ow": y.shape[3],
        "row_step": attrs["strides"][0] * plane["wp"], "col_step": attrs["strides"][1],
        "offsets": _window_offsets(kh, kw, dh, dw, plane["wp"]),
    }


def conv_band(node: Any, graph: Any, always: bool = False) -> dict[str, Any]:
    """`band_geometry` of a QConv node (zero fill, its pads), in its schedule: in a row-streamed
    chain (`pqc.backends.streaming`) a node after the head is ``fed`` (its producer fills its
    band) and no node writes over its input."""
    from .streaming import is_fed, stream_position

    t, l, b, r = node.attrs["pads"]
    return band_geometry(graph.values[node.inputs[0]], graph.values[node.outputs[0]], node.attrs, (l, r, t, b), 0,
                         always=always, fed=is_fed(node), streamed=stream_position(node) is not None)


def band_geometry(x: Any, y: Any, attrs: dict[str, Any], pads: Sequence[int], fill: int,
                  always: bool = False, fed: bool = False, streamed: bool = False) -> dict[str, Any]:
    """Sliding-window geometry of conv kernels over a band: per output row, the
    ``dh*(kh-1)+1`` input rows its windows read, of every channel, gathered with their padding
    (``fill``) into a scratch buffer of ``c`` planes of ``band_rows x wp``.

    Against a padded copy of the whole input (`window_geometry`) the scratch shrinks from
    ``c*hp*wp`` to ``c*band_rows*wp`` elements and the channel planes move closer, so a tap
    table's deltas stay small (mostly 8-bit). ``pads`` is ``(left, right, top, bottom)``; an
    unpadded input is read in place (``band`` False, planes of ``h x w``) unless ``always``.
    ``row_step`` is the window origin's step between output rows (0 in the band, which is
    refilled for every row), ``in_row_step`` the input's (``sh*w``); ``offsets`` are a window's
    tap offsets within one plane. A packed input (`pqc.backends.activation_layout`) always
    comes through the band, whose gather unpacks it.

    At stride 1 the band is a ring (``ring``: each later output row moves it down one input row
    and reads only that row, see ``band_gather`` in ``_macros.c.j2``), so output row ``r`` is
    written after the last read of input row ``r``: an output of the input's shape and element
    size may then be written over the input (``writes_over_input``, which the arena planner
    honours when nothing reads the input later; `pqc.backends.memory_plan.plan_memory`).

    ``fed``: the band is filled row by row by the input's producer (a row-streamed schedule), so
    there is always a band, of unpacked elements, and it is no ring (the kernel gathers nothing);
    ``streamed``: the node runs in such a schedule, where it never writes over its input.
    """
    kh, kw = attrs["kernel_shape"]
    dh, dw = attrs.get("dilations", (1, 1))
    sh, sw = attrs["strides"]
    _, c, h, w = x.shape
    l, r, t, b = pads
    packed_in = 0 if fed else packed_bits(x)
    band = bool(any(pads) or always or packed_in or fed)  # packed fields are read only by the gather
    rows, wp = (dh * (kh - 1) + 1, w + l + r) if band else (h, w)
    ring = band and not fed and sh == 1 and y.shape[2] > 1
    return {
        "band": band, "c": c, "h": h, "w": w, "pad_t": t, "pad_l": l, "pad_r": r, "wp": wp,
        "band_rows": rows, "plane": rows * wp, "fill": fill,
        "kh": kh, "kw": kw, "oh": y.shape[2], "ow": y.shape[3],
        "row_step": 0 if band else sh * w, "in_row_step": sh * w, "col_step": sw,
        "offsets": _window_offsets(kh, kw, dh, dw, wp),
        "scratch_bytes": c * rows * wp * ITEMSIZE[CTYPES[x.dtype]] if band else 0,
        "ring": ring, "fed": fed, "packed_in": packed_in, "packed_out": packed_bits(y), "signed_in": x.dtype == "int8",
        "writes_over_input": ring and not streamed and tuple(y.shape) == tuple(x.shape)
        and ITEMSIZE[CTYPES[y.dtype]] == ITEMSIZE[CTYPES[x.dtype]],
    }


def _band_moves(geo: Mapping[str, Any]) -> int:
    """Elements a conv's band moves per inference: the rows it gathers for every output row, or,
    fed in a row-streamed schedule, the rows its shift keeps (its producer writes the rest)."""
    oh, c, rows, w = geo["oh"], geo["c"], geo["band_rows"], geo["w"]
    if geo["fed"]:
        sh = geo["in_row_step"] // w
        return (oh - 1) * c * max(rows - sh, 0) * geo["wp"]
    return oh * c * rows * w if geo["band"] else 0


def band_features(geo: Mapping[str, Any], cout: int) -> dict[str, float]:
    """The counts of a conv kernel's loops over `band_geometry` ``geo`` with ``cout`` output
    channels that its cost is about linear in, whatever its inner walk: output rows, channel
    rows, outputs (each requantized once), the elements the band moves (`_band_moves`), and the
    packed fields read from the input (``packed_loads``: a ring reads each input row once) and
    written (``packed_stores``); with an int8 input also its multiply-accumulates (``signed_macs``:
    Thumb-1 loads a signed byte only from a register offset, an instruction more per load), from
    ``geo["cin_g"]`` when the kernel's context has it."""
    oh, ow, c, rows, w = geo["oh"], geo["ow"], geo["c"], geo["band_rows"], geo["w"]
    reads = c * w * (rows + oh - 1) if geo["ring"] else oh * c * rows * w
    macs = cout * oh * ow * geo.get("cin_g", c) * geo["kh"] * geo["kw"]
    return {
        "rows": float(oh),
        "channel_rows": float(cout * oh),
        "outputs": float(cout * oh * ow),
        "band_elements": float(_band_moves(geo)),
        "packed_loads": float(reads if geo["packed_in"] else 0),
        "packed_stores": float(cout * oh * ow if geo["packed_out"] else 0),
        "signed_macs": float(macs if geo["signed_in"] else 0),
    }
