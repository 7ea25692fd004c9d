"""Build the generated C, run it, and prove it equal to the simulator and free of multiplies.

`verify` is the whole proof for one emitted folder: the test harness built with gcc and clang
(``-std=c99 -Wall -Wextra -Wpedantic -Werror -O2``) must reproduce the simulator bit for bit on
the given inputs; a sanitizer build (``-fsanitize=undefined,address``, with the arena poisoned
before every layer by `pqc.backends.memory_plan.poison_ranges`) must run clean and bit-exact; the
model source must compile for RV32I (no multiply/divide instruction) without calling a libgcc
multiply or divide routine; it must build for Cortex-M0 with no external symbol, and its sizes
are reported; and every constant table and header define the binary holds must equal the
program's (so a table edited after emission fails by name even where no input shows it). The
given inputs are completed by `probe_inputs` (extreme and structured samples). A program with
several inputs takes them as a dict by input name (the test binary reads each sample's inputs
back to back, in graph order, and writes its outputs likewise); every output is compared. A check whose tool
is missing is ``skipped`` with the reason, never ``passed``. Any failure raises
`VerificationError` after every check ran (a bit mismatch names the first differing layer),
with the report attached as ``error.report``. Inside `time_limit` a run that takes too long
stops with `VerifyTimeout`.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import numpy as np

from .. import console
from ..errors import DataError, PqcError, VerificationError
from ..ir import Graph
from .activation_layout import packed_nbytes, unpack
from .c_emitter import emitted_constants, read_manifest
from .simulator import Inputs, first_mismatch, simulate

CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2")
#: what a firmware build of the model needs: without them gcc and clang turn the copy and fill
#: loops into memcpy/memset calls, which a bare-metal image may not have
FREESTANDING = ("-ffreestanding", "-fno-builtin")
#: libgcc helpers a multiply, divide or modulo turns into on a core without those instructions
FORBIDDEN_SYMBOLS = (
    "__mulsi3", "__divsi3", "__udivsi3", "__modsi3", "__umodsi3", "__muldi3",
    "__mulsf3", "__divdi3", "__udivdi3", "__moddi3", "__umoddi3",
)
_RV_MULDIV = re.compile(r"^\s*[0-9a-f]+:\s+[0-9a-f]+\s+(mul\w*|div\w*|rem\w*)\s", re.MULTILINE)
RUN_TIMEOUT_S = 600
#: the Debian package of each tool, for the "not installed" messages
PACKAGES = {
    "gcc": "gcc", "clang": "clang", "make": "make",
    "riscv64-unknown-elf-gcc": "gcc-riscv64-unknown-elf", "riscv64-unknown-elf-nm": "binutils-riscv64-unknown-elf",
    "riscv64-unknown-elf-objdump": "binutils-riscv64-unknown-elf",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi", "arm-none-eabi-size": "binutils-arm-none-eabi",
    "arm-none-eabi-nm": "binutils-arm-none-eabi",
}
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


class BuildError(PqcError):
    """The generated C did not compile, or the binary failed to run."""


class VerifyTimeout(PqcError):
    """Verification ran past its `time_limit`: the run is incomplete, not wrong (exit status 2)."""


class _Clock:
    """The time limit of `verify` runs (set by `time_limit`) and the deadline of the one running."""

    limit_s: float | None = None
    deadline: float | None = None

    @classmethod
    def remaining(cls) -> float | None:
        return None if cls.deadline is None else cls.deadline - time.monotonic()

    @classmethod
    def check(cls, doing: str) -> None:
        left = cls.remaining()
        if left is not None and left <= 0:
            raise VerifyTimeout(f"verification stopped: it ran past its {cls.limit_s:g} s time limit "
                                f"(--timeout) before {doing}")


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Bound each `verify` run started inside the block (e.g. by `compile_model`) to ``seconds``
    from its start; None leaves it unbounded. Checked between stages and on every tool run."""
    before = _Clock.limit_s
    _Clock.limit_s = seconds
    try:
        yield
    finally:
        _Clock.limit_s = before


@dataclass(frozen=True)
class Check:
    """One line of a `VerifyReport`."""

    name: str
    status: str
    details: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class VerifyReport:
    """Every check `verify` ran, in order."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != FAILED for c in self.checks)

    def status(self, name: str) -> str:
        return next(c.status for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [vars(c) for c in self.checks]}

    def __str__(self) -> str:
        return "\n".join(f"{c.status:8s} {c.name}: {c.details}" for c in self.checks)


class CRun(NamedTuple):
    """Outputs of the test binary, ``[samples, *output shape[1:]]`` (``outputs``: the first
    output; ``named``: every output by name), and with ``dump_layers`` every activation (the
    inputs included) as ``{value name: [samples, *shape[1:]]}``."""

    outputs: np.ndarray
    layers: dict[str, np.ndarray]
    named: dict[str, np.ndarray]


def dump_dtype(dtype: str) -> np.dtype:
    """The numpy dtype of the raw C values of an IR dtype (x86/ARM/RISC-V hosts: little-endian)."""
    return np.dtype({"int8": "i1", "uint8": "u1", "int32": "<i4"}[dtype])


def missing_tools(tools: tuple[str, ...]) -> str:
    """'' when every tool is on PATH, else a message naming the missing ones and their packages."""
    gone = [t for t in tools if shutil.which(t) is None]
    pkgs = sorted({PACKAGES.get(t, t) for t in gone})
    return f"{', '.join(gone)} not installed (Debian: apt-get install {' '.join(pkgs)})" if gone else ""


def tool_path(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PqcError(missing_tools((name,)))
    return path


def run_tool(cmd: list[str], what: str, **kw: Any) -> subprocess.CompletedProcess:
    """Run ``cmd``; BuildError when it fails, VerifyTimeout when it outlives `verify`'s deadline."""
    _Clock.check(what)
    left = _Clock.remaining()
    timeout = RUN_TIMEOUT_S if left is None else min(RUN_TIMEOUT_S, left)
    try:
        proc = _run_group(cmd, timeout, **kw)
    except subprocess.TimeoutExpired as exc:
        if timeout < RUN_TIMEOUT_S:
            raise VerifyTimeout(f"verification stopped: it ran past its {_Clock.limit_s:g} s time limit "
                                f"(--timeout) while {what}") from exc
        raise BuildError(f"{what}: {exc}") from exc
    except OSError as exc:
        raise BuildError(f"{what}: {exc}") from exc
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit status {proc.returncode}):\n{(proc.stderr or proc.stdout)[-3000:]}")
    return proc


def _run_group(cmd: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess:
    """`subprocess.run` in a process group of its own that is killed whole on a timeout or an
    interrupt: ``make``'s compilers and linkers must not outlive it (an orphaned linker still
    writing a binary makes the next build of the same folder fail with "text file busy")."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                          **kw) as proc:
        with _GROUPS_LOCK:
            _GROUPS.add(proc.pid)
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        finally:
            with _GROUPS_LOCK:
                _GROUPS.discard(proc.pid)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


#: the process groups `_run_group` is waiting on (several at once while `verify` compiles in parallel)
_GROUPS: set[int] = set()
_GROUPS_LOCK = threading.Lock()


def _kill_running_tools() -> None:
    """Kill every tool still running (verify was interrupted while its compiles ran in threads,
    which a Ctrl-C does not reach)."""
    with _GROUPS_LOCK:
        for pid in _GROUPS:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def build(out_dir: str | Path, cc: str = "gcc", sanitize: bool = False, poison: bool = False) -> Path:
    """Build the test harness in ``out_dir`` with its Makefile; returns the binary's path.
    ``poison``: with the arena poisoned before every layer (``<PREFIX>_POISON_ARENA``)."""
    out = Path(out_dir)
    manifest = read_manifest(out)
    compiler = tool_path(cc)
    name = f"{manifest['binary']}_{Path(cc).name}{'_san' if sanitize else '_poison' if poison else ''}"
    cmd = [tool_path("make"), "-s", "-B", "-C", str(out), f"CC={compiler}", f"BIN={name}"]
    run_tool(cmd + (["SANITIZE=1"] if sanitize else []) + (["POISON=1"] if poison else []),
             f"building {out / name} with {cc}")
    return out / name


def as_samples(x: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Inputs as ``[samples, *input shape[1:]]`` in the input's dtype (range-checked)."""
    x = np.asarray(x)
    per = info["size"]
    if not np.issubdtype(x.dtype, np.integer) or x.size % per or x.size == 0:
        raise DataError(f"inputs must be integers, a whole number of samples of {per} values; got {x.dtype} {x.shape}")
    info_dtype = np.dtype(info["dtype"])
    lim = np.iinfo(info_dtype)
    if x.min() < lim.min or x.max() > lim.max:
        raise DataError(f"inputs outside {info['dtype']}: {x.min()}..{x.max()}")
    return x.astype(info_dtype).reshape((-1, *info["shape"][1:]))


def input_samples(x: Inputs, infos: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The samples of every input (manifest ``inputs``) by name, each `as_samples`; one array
    stands for a single input's; all must hold the same number of samples."""
    names = [info["name"] for info in infos]
    if not isinstance(x, Mapping):
        if len(infos) != 1:
            raise DataError(f"the model has inputs {names}: give a dict of integer arrays by input name")
        x = {names[0]: x}
    if sorted(x) != sorted(names):
        raise DataError(f"the model takes inputs {names}, got arrays {sorted(x)}")
    out = {info["name"]: as_samples(x[info["name"]], info) for info in infos}
    counts = {len(a) for a in out.values()}
    if len(counts) > 1:
        raise DataError(f"the inputs hold different sample counts: {dict((k, len(a)) for k, a in out.items())}")
    return out


def sample_bytes(arrays: list[np.ndarray]) -> bytes:
    """Samples of several arrays (same count) as raw bytes, each sample's arrays back to back:
    what the test binary and the firmware read."""
    n = len(arrays[0])
    return np.concatenate([np.ascontiguousarray(a).reshape(n, -1).view(np.uint8) for a in arrays], axis=1).tobytes()


def split_samples(raw: bytes, n: int, infos: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The inverse of `sample_bytes`: ``n`` samples of every tensor of ``infos``, by name."""
    rows = np.frombuffer(raw, np.uint8).reshape(n, -1)
    out, at = {}, 0
    for info in infos:
        dt, size, bits = dump_dtype(info["dtype"]), int(np.prod(info["shape"])), int(info.get("packed", 0))
        if bits:  # packed sub-byte fields (`pqc.backends.activation_layout`)
            nbytes = packed_nbytes(size, bits)
            values = unpack(rows[:, at:at + nbytes], info["dtype"], size, bits, bool(info["packed_signed"]))
        else:
            nbytes = size * dt.itemsize
            values = rows[:, at:at + nbytes].copy().view(dt)
        out[info["name"]] = values.reshape((n, *info["shape"][1:]))
        at += nbytes
    return out


def run_c(binary: str | Path, x_int8: Inputs, dump_layers: bool = False, env: dict[str, str] | None = None) -> CRun:
    """Run the test binary on the samples of ``x_int8`` (a dict by input name for several
    inputs); see `CRun`."""
    binary = Path(binary)
    manifest = read_manifest(binary.parent)
    xs = input_samples(x_int8, manifest["inputs"])
    n = len(next(iter(xs.values())))
    with tempfile.TemporaryDirectory(prefix="pqc_run_") as tmp:
        paths = [Path(tmp) / f for f in ("input.bin", "output.bin", "layers.bin")]
        paths[0].write_bytes(sample_bytes(list(xs.values())))
        cmd = [str(binary), *map(str, paths[: 3 if dump_layers else 2])]
        run_tool(cmd, f"running {binary.name}", env={**os.environ, **(env or {})})
        named = split_samples(paths[1].read_bytes(), n, manifest["outputs"])
        layers: dict[str, np.ndarray] = {}
        if dump_layers:
            layers.update(xs)
            layers.update(split_samples(paths[2].read_bytes(), n,
                                        [{**layer, "name": layer["value"]} for layer in manifest["layers"]
                                         if layer.get("stored", True)]))  # a streamed value is never whole
    return CRun(named[manifest["outputs"][0]["name"]], layers, named)


def _object(out_dir: Path, cc: str, flags: list[str], tmp: str) -> Path:
    """Compile the model source (no harness, no hook: what firmware builds) to an object."""
    prefix = read_manifest(out_dir)["prefix"]
    obj = Path(tmp) / f"{prefix}.o"
    run_tool([cc, *flags, "-c", str(out_dir / f"{prefix}.c"), "-o", str(obj)], f"{Path(cc).name} {prefix}.c")
    return obj


def check_rv32i(out_dir: str | Path) -> Check:
    """The model compiles for RV32I and needs no multiply/divide routine or instruction."""
    name = "rv32i multiplier-free"
    tools = ("riscv64-unknown-elf-gcc", "riscv64-unknown-elf-nm", "riscv64-unknown-elf-objdump")
    missing = missing_tools(tools)
    if missing:
        return Check(name, SKIPPED, missing)
    flags = ["-march=rv32i", "-mabi=ilp32", *FREESTANDING, *CFLAGS]
    with tempfile.TemporaryDirectory(prefix="pqc_rv_") as tmp:
        try:
            obj = _object(Path(out_dir), tools[0], flags, tmp)
        except BuildError as exc:
            return Check(name, FAILED, str(exc))
        undefined = run_tool([tools[1], "-u", str(obj)], "nm").stdout.split()
        listing = run_tool([tools[2], "-d", str(obj)], "objdump").stdout
    calls = sorted(set(undefined) & set(FORBIDDEN_SYMBOLS))
    instrs = sorted(set(_RV_MULDIV.findall(listing)))
    if calls or instrs:
        return Check(name, FAILED, f"needs {', '.join(calls + instrs)}", {"symbols": calls, "instructions": instrs})
    return Check(name, PASSED, "no libgcc multiply/divide call and no mul/div instruction", {"undefined": undefined})


def check_cortex_m0(out_dir: str | Path) -> Check:
    """The model builds for Cortex-M0 (``-Os``) with no external symbol (README's promise to
    firmware: nothing to link); reports its text/data/bss bytes."""
    name = "cortex-m0 build"
    tools = ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm")
    missing = missing_tools(tools)
    if missing:
        return Check(name, SKIPPED, missing)
    flags = ["-mcpu=cortex-m0", "-mthumb", *FREESTANDING, *CFLAGS[:-1], "-Os"]
    with tempfile.TemporaryDirectory(prefix="pqc_m0_") as tmp:
        try:
            obj = _object(Path(out_dir), tools[0], flags, tmp)
        except BuildError as exc:
            return Check(name, FAILED, str(exc))
        text, data, bss = (int(v) for v in run_tool([tools[1], str(obj)], "size").stdout.splitlines()[1].split()[:3])
        undefined = run_tool([tools[2], "-u", str(obj)], "nm").stdout.split()[1::2]
    sizes = {"text": text, "data": data, "bss": bss}
    if undefined:
        return Check(name, FAILED, f"the object needs external symbols: {', '.join(undefined)}",
                     {**sizes, "undefined": undefined})
    return Check(name, PASSED, f"text {text} B, data {data} B, bss {bss} B, no external symbol", sizes)


def _compare(graph: Graph, binary: Path, x: dict[str, np.ndarray], expected: dict[str, np.ndarray], label: str,
             env: dict[str, str] | None = None, run: CRun | None = None) -> Check:
    """``binary``'s outputs on ``x`` (``run`` when the caller already ran it) must equal the
    simulator's; on a mismatch the layer dumps name the first differing layer."""
    got = (run or run_c(binary, x, env=env)).named
    n = len(next(iter(x.values())))
    if all(np.array_equal(got[o].astype(np.int64), expected[o].reshape(got[o].shape).astype(np.int64))
           for o in graph.outputs):
        outputs = f" ({len(graph.outputs)} outputs)" if len(graph.outputs) > 1 else ""
        return Check(label, PASSED, f"{n} samples bit-exact with the simulator{outputs}")
    dumps = run_c(binary, x, dump_layers=True, env=env).layers
    where = first_mismatch(graph, dumps, simulate(graph, x, capture=True))
    if where is None:  # pragma: no cover - outputs differ, so some layer does
        return Check(label, FAILED, "the C output differs from the simulator")
    return Check(label, FAILED, f"the C differs from the simulator first at layer {where.node!r}, "
                                f"index {where.index}: C {where.a}, simulator {where.b}",
                 {"layer": where.node, "index": list(where.index)})


def probe_inputs(info: dict[str, Any], seed: int = 0) -> np.ndarray:
    """Structured samples every verification adds to the caller's: all minimum, all maximum, all
    zero, min/max checkerboards of both phases (saturation and sign corners in every window), a
    ramp through every input value, and seeded samples of {min, -1, 0, 1, max} and of -2..2
    (small sums sit next to rounding boundaries, where an off-by-one shows)."""
    lo, hi = int(info["qmin"]), int(info["qmax"])
    shape, size = tuple(info["shape"][1:]), int(info["size"])
    rng = np.random.default_rng(seed)
    board = (np.indices(shape).sum(axis=0) % 2).astype(bool)
    samples = [
        np.full(shape, lo), np.full(shape, hi), np.zeros(shape, np.int64),
        np.where(board, hi, lo), np.where(board, lo, hi),
        (lo + np.arange(size) % (hi - lo + 1)).reshape(shape),
        rng.choice(np.clip([lo, -1, 0, 1, hi], lo, hi), size=shape),
        rng.integers(max(lo, -2), min(hi, 2) + 1, size=shape),
    ]
    return np.stack(samples).astype(info["dtype"])


def _read_constants(text: str) -> tuple[dict[str, bytes], dict[str, tuple[int, ...]]]:
    tables: dict[str, bytes] = {}
    defines: dict[str, tuple[int, ...]] = {}
    for line in text.splitlines():
        kind, name, *rest = line.split()
        if kind == "table":
            tables[name] = bytes.fromhex(rest[0] if rest else "")
        else:
            defines[name] = tuple(int(v) for v in rest)
    return tables, defines


def check_constants(graph: Graph, binary: str | Path) -> Check:
    """Every table compiled into the harness ``binary`` and every define of the header equal what
    `emit_c` writes for ``graph``: an edited bias or exponent is named even when no input shows it."""
    name = "constants match the program"
    binary = Path(binary)
    want = emitted_constants(graph, read_manifest(binary.parent)["prefix"])
    with tempfile.TemporaryDirectory(prefix="pqc_const_") as tmp:
        path = Path(tmp) / "constants.txt"
        run_tool([str(binary), "--constants", str(path)], f"running {binary.name} --constants")
        tables, defines = _read_constants(path.read_text(encoding="ascii"))
    problems = [f"{d} is {' '.join(map(str, defines.get(d, ('missing',))))} in the header, "
                f"{' '.join(map(str, v))} in the program" for d, v in want.defines.items() if defines.get(d) != v]
    problems += [f"table {t} is not in the C" for t in want.tables if t not in tables]
    problems += [f"table {t} is not in the program" for t in tables if t not in want.tables]
    for t, table in want.tables.items():
        if t in tables and tables[t] != table.array().tobytes():
            problems.append(_table_difference(t, table.array(), tables[t]))
    if problems:
        return Check(name, FAILED, "; ".join(problems), {"differences": problems})
    return Check(name, PASSED, f"{len(want.tables)} tables and {len(want.defines)} defines equal the program's")


def _table_difference(name: str, want: np.ndarray, raw: bytes) -> str:
    if len(raw) != want.nbytes:
        return f"table {name} has {len(raw)} bytes in the C, {want.nbytes} in the program"
    got = np.frombuffer(raw, want.dtype)
    i = int(np.flatnonzero(got != want)[0])
    return f"table {name} differs at element {i}: C {int(got[i])}, program {int(want[i])}"


def verify(int_graph: Graph, out_dir: str | Path, inputs_int8: Inputs) -> VerifyReport:
    """Run every check on the C that `emit_c` wrote for ``int_graph`` into ``out_dir``, on
    ``inputs_int8`` (a dict by input name for several inputs) plus `probe_inputs` of each input."""
    out = Path(out_dir)
    manifest = read_manifest(out)
    given = input_samples(inputs_int8, manifest["inputs"])
    x = {info["name"]: np.concatenate([given[info["name"]], probe_inputs(info)]) for info in manifest["inputs"]}
    _Clock.deadline = None if _Clock.limit_s is None else time.monotonic() + _Clock.limit_s
    try:
        report = _run_checks(int_graph, out, x)
    finally:
        _Clock.deadline = None
    if not report.ok:
        error = VerificationError("verification failed:\n" + "\n".join(
            f"{c.name}: {c.details}" for c in report.checks if c.status == FAILED))
        error.report = report  # type: ignore[attr-defined]
        raise error
    return report


def _run_checks(graph: Graph, out: Path, x: dict[str, np.ndarray]) -> VerifyReport:
    """Every check in order, with a progress line (the harness binaries feed the constants check).

    The five compiles and the three harness runs are most of the time on a large model and
    independent of each other and of the simulator, so they all start at once on
    `build_workers` threads (each waits on its tool's process) while the simulator runs; the
    checks then take their results in order."""
    san_cc = next((c for c in ("gcc", "clang") if shutil.which(c)), None)
    binaries: list[Path] = []
    with ThreadPoolExecutor(max_workers=build_workers(), thread_name_prefix="pqc-build") as pool:
        def harness(cc: str | None, **kw: Any) -> Future | None:
            return None if cc is None or missing_tools((cc, "make")) else pool.submit(_build_and_run, out, cc, x, **kw)

        jobs = {"gcc": harness("gcc"), "clang": harness("clang"),
                "sanitized": harness(san_cc, sanitize=True, poison=True, env={"ASAN_OPTIONS": "detect_leaks=0"}),
                "rv32i": pool.submit(check_rv32i, out), "m0": pool.submit(check_cortex_m0, out)}
        try:
            expected = simulate(graph, x)
            return _checks_in_order(graph, x, expected, jobs, san_cc, binaries)
        except BaseException:
            for job in jobs.values():
                if job is not None:
                    job.cancel()
            _kill_running_tools()
            raise


def _build_and_run(out: Path, cc: str, x: dict[str, np.ndarray], env: dict[str, str] | None = None,
                   **build_options: bool) -> tuple[Path, CRun]:
    """The harness built with ``cc`` (`build`) and its outputs on ``x``."""
    binary = build(out, cc, **build_options)
    return binary, run_c(binary, x, env=env)


def build_workers() -> int:
    """Threads for `verify`'s compiles: the cores this process may use, at most the five builds."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 5))


def _checks_in_order(graph: Graph, x: dict[str, np.ndarray], expected: dict[str, np.ndarray],
                     jobs: dict[str, Future | None], san_cc: str | None, binaries: list[Path]) -> VerifyReport:
    """The checks on the started ``jobs``' results, in the report's order."""
    def compared(cc: str) -> Check:
        label = f"{cc} build and compare"
        job = jobs[cc]
        if job is None:
            return Check(label, SKIPPED, missing_tools((cc, "make")))
        try:
            binary, run = job.result()
        except BuildError as exc:
            return Check(label, FAILED, str(exc))
        binaries.append(binary)
        return _compare(graph, binary, x, expected, label, run=run)

    def constants() -> Check:
        if not binaries:
            return Check("constants match the program", SKIPPED, "no harness binary was built")
        return check_constants(graph, binaries[0])

    stages: list[tuple[str, Callable[[], Check]]] = [
        ("the gcc build", lambda: compared("gcc")),
        ("the clang build", lambda: compared("clang")),
        ("the constants check", constants),
        ("the sanitizer build", lambda: _sanitized(graph, jobs["sanitized"], san_cc, x, expected)),
        ("the RV32I build", jobs["rv32i"].result),
        ("the Cortex-M0 build", jobs["m0"].result),
    ]
    report = VerifyReport()

    def last() -> str:
        return f"{report.checks[-1].name}: {report.checks[-1].status}" if report.checks else ""

    for what, stage in console.progress(stages, "verifying the C", status=last):
        _Clock.check(what)
        report.checks.append(stage())
    return report


def _sanitized(graph: Graph, job: Future | None, cc: str | None, x: dict[str, np.ndarray],
               expected: dict[str, np.ndarray]) -> Check:
    """The sanitizer build, with the arena poisoned before every layer: one run checks UB, memory
    errors, and that no kernel or plan depends on arena bytes the plan says hold nothing."""
    name = "sanitizers (undefined,address)"
    if job is None:
        return Check(name, SKIPPED, missing_tools(("make", "gcc") if cc is None else ("make",)))
    try:
        binary, run = job.result()
        check = _compare(graph, binary, x, expected, name, env={"ASAN_OPTIONS": "detect_leaks=0"}, run=run)
    except BuildError as exc:
        return Check(name, FAILED, str(exc))
    return Check(name, check.status, f"{cc}, arena poisoned between layers: {check.details}", check.data)
