"""Atomic file writes: a file appears whole under its name, or not at all.

Every writer of neuralsight (metrics JSON, reconstructions and predictions files, figures,
HTML reports, NWB exports, dataset files) writes into a temporary sibling of its target and renames it
over the target when done, so an interrupted run never leaves a truncated file for the next
step to read. The file gets the permissions a plain ``open`` would give it (``0o666`` less
the umask), not the private ``0o600`` of `tempfile.mkstemp`. A run killed too hard to clean
up (SIGKILL) leaves its temporary file; the next write to the same target removes it.

A run told to stop (SIGTERM, through `request_termination`) puts no further file in place,
even where the exception its signal handler raised was swallowed (Python ignores exceptions
raised in weak-reference callbacks and ``__del__`` methods, where a signal can land): every
rename checks `raise_if_terminated` first, and long loops call it between steps.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

_Writer = TypeVar("_Writer", bound="FileWriter")

_TERMINATION: list[int] = []
"""The exit status asked for by `request_termination`, once it has been called."""


def request_termination(status: int) -> None:
    """Record that this process must stop with exit ``status``; see `raise_if_terminated`."""
    if not _TERMINATION:
        _TERMINATION.append(int(status))


def raise_if_terminated() -> None:
    """Raise ``SystemExit`` with the requested status once `request_termination` was called.

    Examples
    --------
    >>> raise_if_terminated()  # nothing requested: returns
    """
    if _TERMINATION:
        raise SystemExit(_TERMINATION[0])


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _owner_tag() -> str:
    """The host and process writing a temporary file, as its name records them."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_siblings(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings of ``path`` that killed runs of this host left behind.

    A temporary file's name records the host and process writing it (`temporary_sibling`);
    one whose process no longer runs on this host is debris of a run killed before it
    could clean up (SIGKILL, a power cut). Files of live processes and of other hosts
    (a shared disk) are left alone. Returns what was removed.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> stale = folder / f".a.{socket.gethostname()}-999999999.x1y2.h5"
    >>> _ = stale.write_bytes(b"half")
    >>> [p.name for p in remove_stale_siblings(folder / "a.h5")] == [stale.name]
    True
    """
    path = Path(path)
    host = socket.gethostname()
    removed = []
    for sibling in path.parent.glob(f".{path.stem}.{host}-*{path.suffix}"):
        pid = sibling.name[len(f".{path.stem}.{host}-") :].split(".", 1)[0]
        if pid.isdigit() and not _is_alive(int(pid)):
            sibling.unlink(missing_ok=True)
            removed.append(sibling)
    return removed


def temporary_sibling(path: str | os.PathLike) -> Path:
    """Create an empty temporary file beside ``path`` (folders made) to be renamed onto it.

    It has the target's suffix, so writers that pick a format from the name (matplotlib)
    see the right one; `move_into_place` finishes the write. Its name records the host and
    process, and the stale siblings of killed runs are removed first
    (`remove_stale_siblings`).

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "run" / "a.h5"
    >>> tmp = temporary_sibling(target)
    >>> tmp.parent == target.parent and tmp.suffix == ".h5" and tmp.is_file()
    True
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_siblings(path):
        print(f"neuralsight: removed {stale}, left by a killed run", file=sys.stderr)
    prefix = f".{path.stem}.{_owner_tag()}."
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def move_into_place(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Rename the finished ``tmp`` onto ``path``, with the permissions ``open`` would give.

    Once the process was told to stop (`request_termination`) it raises ``SystemExit``
    instead, and the caller's clean-up removes ``tmp``.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "a.txt"
    >>> tmp = temporary_sibling(target)
    >>> _ = tmp.write_text("whole")
    >>> move_into_place(tmp, target).read_text(), tmp.exists()
    ('whole', False)
    """
    raise_if_terminated()
    Path(tmp).chmod(0o666 & ~_umask())
    os.replace(tmp, path)
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; it becomes ``path`` if the block succeeds.

    On any error the temporary file is removed and ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("whole")
    >>> target.read_text()
    'whole'
    """
    tmp = temporary_sibling(path)
    try:
        yield tmp
        move_into_place(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write`` on a binary handle of a temporary sibling, then rename it to ``path``.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "b.bin"
    >>> atomic_write(target, lambda handle: handle.write(b"ok")).read_bytes()
    b'ok'
    """
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        write(handle)
    return Path(path)


class FileWriter(ABC):
    """A file filled step by step under a temporary name, moved onto its own by `close`.

    Subclasses write into a `temporary_sibling` and implement `close` (finish, check,
    `move_into_place`, return the path) and `discard` (stop, remove the temporary file). As
    a context manager a writer closes when the block succeeds and discards on an exception,
    including one raised by `close` itself.

    Examples
    --------
    >>> import tempfile
    >>> class Lines(FileWriter):
    ...     def __init__(self, path):
    ...         self.path, self.tmp = Path(path), temporary_sibling(path)
    ...     def close(self):
    ...         return move_into_place(self.tmp, self.path)
    ...     def discard(self):
    ...         self.tmp.unlink(missing_ok=True)
    >>> target = Path(tempfile.mkdtemp()) / "a.txt"
    >>> with Lines(target) as writer:
    ...     _ = writer.tmp.write_text("whole")
    >>> target.read_text()
    'whole'
    """

    @abstractmethod
    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""

    @abstractmethod
    def discard(self) -> None:
        """Abandon the file and remove the temporary one."""

    def __enter__(self: _Writer) -> _Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.discard()
            return
        try:
            self.close()
        except BaseException:
            self.discard()
            raise
