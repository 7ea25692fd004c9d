"""Output folders and files that are either complete or absent, and never written by two pqc runs at once.

A compile that fails or is interrupted (Ctrl-C, full disk, a late input error) must leave what
the user had before, not a half-written folder that later commands would trust. So every output
is staged:

* `staged_folder(target, force)` yields a fresh hidden folder beside ``target``; when the block
  completes the folder is renamed onto ``target`` (an existing ``target`` is replaced only then,
  and only with ``force``); when it raises, the staging folder is removed and ``target`` is
  untouched. A lock file beside ``target`` makes a second run into the same folder refuse.
* `staged_file(path, force)` does the same for one file.
* `require_files(folder, names, what)` is the reader's side: refuse a folder that lacks a file.

An `OSError` while writing (ENOSPC, EACCES, ...) becomes one `PqcError` line that names the file
as the user knows it (under ``target``, not the staging folder).
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .errors import PqcError

LOCK_SUFFIX = ".pqc-lock"
_STAGE_TAG = ".pqc-tmp-"
_OLD_TAG = ".pqc-old-"


def _hidden_beside(target: Path, tag: str) -> str:
    return f".{target.name}{tag}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def output_lock(target: Path) -> Iterator[Path]:
    """Hold ``.<name>.pqc-lock`` beside ``target`` (O_CREAT|O_EXCL) for the block.

    A lock left by a process that no longer exists (killed, crashed) is taken over; one held by a
    live process refuses with the holder's pid."""
    lock = target.parent / _hidden_beside(target, LOCK_SUFFIX)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and _pid_alive(holder):
                raise PqcError(f"{target} is being written by another pqc run (pid {holder}, lock {lock}); "
                               "wait for it to finish") from None
            lock.unlink(missing_ok=True)  # stale: its writer is gone
            continue
        except OSError as exc:
            raise PqcError(f"cannot write beside {target}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    else:
        raise PqcError(f"cannot take the lock {lock} of {target}; remove it if no pqc run is writing there")
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def check_folder_target(target: str | Path, force: bool, what: str = "output folder") -> Path:
    """``target`` as a Path if a folder may be written there: it is not a file, (without ``force``)
    it is absent or empty, and its parent is writable; missing parents are created (``-o
    build/r8`` on a fresh clone, like ``mkdir -p``). Cheap: call it before any work."""
    out = Path(target)
    if out.exists() and not out.is_dir():
        raise PqcError(f"{what} {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise PqcError(f"{what} {out} is not empty; pass --force to replace it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PqcError(f"cannot create folder {out.parent} for {out}: {exc.strerror or exc}") from None
    _check_parent(out)
    return out


def check_file_target(path: str | Path, force: bool) -> Path:
    """``path`` as a Path if exactly that file may be written: never replace one without ``force``."""
    out = Path(path)
    if out.is_dir():
        raise PqcError(f"{out} is a folder; give a file name")
    if out.exists() and not force:
        raise PqcError(f"{out} exists; pass --force to overwrite it")
    _check_parent(out)
    return out


def _check_parent(out: Path) -> None:
    parent = out.parent
    if not parent.is_dir():
        raise PqcError(f"cannot write {out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise PqcError(f"cannot write {out}: folder {parent} is not writable")


@contextlib.contextmanager
def staged_folder(target: str | Path, force: bool, what: str = "output folder") -> Iterator[Path]:
    """Yield a staging folder that becomes ``target`` when the block completes (see module doc)."""
    out = check_folder_target(target, force, what)
    with output_lock(out), _write_errors(out) as stage_holder:
        stage = Path(tempfile.mkdtemp(prefix=_hidden_beside(out, _STAGE_TAG), dir=out.parent))
        stage.chmod(0o777 & ~_umask())  # mkdtemp's 0700 is for temporary folders, not outputs
        stage_holder.append(stage)
        try:
            yield stage
            check_folder_target(out, force, what)  # something may have appeared there meanwhile
            _replace_folder(stage, out)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _replace_folder(stage: Path, out: Path) -> None:
    """Rename ``stage`` onto ``out``; an existing ``out`` is moved aside first and deleted last."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=_hidden_beside(out, _OLD_TAG), dir=out.parent))
        os.replace(out, old)  # onto the empty folder just made
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_file(path: str | Path, force: bool) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that replaces ``path`` when the block completes."""
    out = check_file_target(path, force)
    with output_lock(out), _write_errors(out) as stage_holder:
        fd, name = tempfile.mkstemp(prefix=_hidden_beside(out, _STAGE_TAG), dir=out.parent)
        os.close(fd)
        stage = Path(name)
        stage.chmod(0o666 & ~_umask())
        stage_holder.append(stage)
        try:
            yield stage
            check_file_target(out, force)
            os.replace(stage, out)
        finally:
            stage.unlink(missing_ok=True)


@contextlib.contextmanager
def _write_errors(out: Path) -> Iterator[list[Path]]:
    """Turn an OSError in the block into one PqcError line naming the file under ``out``."""
    holder: list[Path] = []
    try:
        yield holder
    except OSError as exc:
        name = str(exc.filename or out)
        if holder:
            name = name.replace(str(holder[0]), str(out))
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise PqcError(f"{name}: {reason} (while writing {out}, which was left as it was)") from None


def require_files(folder: str | Path, names: Iterable[str], what: str) -> Path:
    """``folder`` as a Path if it holds every file in ``names``; otherwise a PqcError naming the first
    missing one (a folder a failed or older run left behind, or one a user edited)."""
    out = Path(folder)
    if not out.is_dir():
        raise PqcError(f"{out} is not a folder; expected {what}")
    for name in names:
        if not (out / name).is_file():
            raise PqcError(f"{out} is not a complete {what}: {name} is missing; rerun `pqc compile`")
    return out
