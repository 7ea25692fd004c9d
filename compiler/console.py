"""User-facing output: messages by verbosity and progress bars for long stages.

One place decides what reaches the terminal, so library code never prints directly: stages call
`info`/`detail`/`progress`, the CLI sets the verbosity from --quiet/--verbose. Messages and
progress go to stderr, leaving stdout to results (tables, JSON).
"""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

QUIET, NORMAL, VERBOSE = 0, 1, 2
_level = NORMAL


def set_verbosity(level: int) -> None:
    global _level
    _level = level


def verbosity() -> int:
    return _level


def info(msg: str) -> None:
    """A progress message shown unless --quiet."""
    if _level >= NORMAL:
        print(msg, file=sys.stderr, flush=True)


def detail(msg: str) -> None:
    """Extra diagnostics shown with --verbose."""
    if _level >= VERBOSE:
        print(msg, file=sys.stderr, flush=True)


def progress(items: Iterable[T], desc: str, total: int | None = None, status: "callable | None" = None) -> Iterator[T]:
    """Yield ``items`` while drawing a one-line progress bar on stderr (not when --quiet).

    ``status``, if given, is called after each item and its string is shown at the end of the
    bar (e.g. the current loss). On a non-terminal stderr the bar is printed once at the end
    to keep logs short.
    """
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    show = _level >= NORMAL
    tty = show and sys.stderr.isatty()
    start = time.monotonic()
    last = 0.0
    done = 0

    def draw(final: bool = False) -> None:
        elapsed = time.monotonic() - start
        extra = f" {status()}" if status else ""
        if total:
            frac = done / total
            bar = "#" * int(24 * frac)
            line = f"{desc} [{bar:<24}] {done}/{total} {elapsed:5.1f}s{extra}"
        else:
            line = f"{desc} {done} {elapsed:5.1f}s{extra}"
        if tty:
            sys.stderr.write("\r" + line + ("\n" if final else ""))
        elif final:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if tty and now - last > 0.1:
            draw()
            last = now
    if show:
        draw(final=True)
