"""Locks, so that measurements never share the CPU unknowingly and runs never interleave their writes.

Two kinds, both ``flock`` on a file that names its holder (PID, host, command): the kernel frees a lock
when its process dies, and the next taker says that it took over from a PID no longer running.
- a results folder (``Workspace.lock``): a second ``profile``/``fit``/profiling ``optimize`` on the same
  ``results/<target>/<model>/`` exits 2 naming the holder;
- the host (:func:`timing_lock`, under the cache folder): every timing on this host waits for the one
  running, saying whose it is.
Locks are re-entrant within a process (a profile run inside ``optimize`` takes the lock it holds).
"""
from __future__ import annotations

import fcntl
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from hwsearch.errors import HwsearchError
from hwsearch.io import cache_dir

_held: dict[str, int] = {}  # lock file -> depth, in this process


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096).decode(errors="replace").strip()


def pid_alive(pid: int) -> bool:
    """Whether a process of this host has this PID (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(holder: str) -> str:
    pid, _, rest = holder.partition(" ")
    return f"PID {pid}" + (f" ({rest})" if rest else "")


@contextmanager
def file_lock(path: Path, what: str, wait: bool) -> Iterator[None]:
    """Hold ``path``'s lock; when another process holds it: wait (saying so) or exit 2 naming it."""
    key = str(path.resolve())
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_holder(fd) or "? (unknown)")
            if not wait:
                raise HwsearchError(f"{what} is in use by {holder}: wait for it to finish, or stop it") from None
            print(f"waiting for {what}: in use by {holder}", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        previous = _holder(fd)
        if previous and previous.split(" ")[0].isdigit():
            pid = int(previous.split(" ")[0])
            if pid != os.getpid() and not pid_alive(pid):
                print(f"took over {what} from {_describe(previous)}, which is no longer running", file=sys.stderr,
                      flush=True)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}: {' '.join(sys.argv)[:300]}\n".encode())
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            os.ftruncate(fd, 0)  # a clean release leaves no holder behind
    finally:
        os.close(fd)  # closing the file releases the flock


def timing_lock() -> AbstractContextManager[None]:
    """The host-wide timing lock: one measurement on this host at a time (others wait)."""
    return file_lock(cache_dir() / "timing.lock", "this host's timing lock", wait=True)
