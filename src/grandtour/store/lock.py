"""The single-writer lock of a run: one process at a time writes a run; readers never wait.

The lock is the file ``RUN/writer.lock`` (``schema.LOCK_FILE``) held with an OS advisory
lock (``fcntl.flock``, exclusive, non-blocking) for as long as the writer lives. The
kernel drops it when the process ends, however it ends (``kill -9`` included), so a lock
file left by a crash is never "stale" in a way that matters: the next writer's
``flock`` simply succeeds and takes it over; a reused pid cannot fool it either. The
file's content (JSON: pid, host, command, since) only names the holder in the message
of a writer that is refused.

Within one process the lock is shared: every :class:`RunLock` of the same directory in
the same process counts as one holder (the trainer's writer, the recorder's, the
alignment's ``Run.open_group`` of the same run may be open together), and the OS lock is
released when the last of them is released (or garbage-collected).

``flock`` locks are local to a machine on most network file systems: two hosts writing
one run on NFS are not kept apart. The holder's host in the message makes a clash
visible when one is found.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from grandtour.errors import StoreError
from grandtour.store.codec import disk_errors, now
from grandtour.store.schema import LOCK_FILE

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


class RunLockedError(StoreError):
    """Another process holds the run's writer lock; the message names it and what to do."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a run's writer lock, as its lock file says."""

    pid: int
    host: str
    command: str
    since: str

    def describe(self) -> str:
        here = " (this host)" if self.host == socket.gethostname() else ""
        return (f"pid {self.pid} on host {self.host}{here}, running `{self.command}`, "
                f"since {self.since}")


def _this_command() -> str:
    text = shlex.join([os.path.basename(sys.argv[0] or "python")] + sys.argv[1:]) if sys.argv else "python"
    return text if len(text) <= 300 else text[:297] + "..."


def _try_lock(fd: int) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    try:  # pragma: no cover - Windows: a byte-range lock on the first byte
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:  # pragma: no cover
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class _Held:
    """The OS lock of one run directory held by this process, and how many hold it."""

    def __init__(self, fd: int, pid: int) -> None:
        self.fd, self.pid, self.count = fd, pid, 0


# realpath of the run directory -> the lock this process holds on it.
_HELD: dict[str, _Held] = {}
_GUARD = threading.Lock()


def read_holder(path) -> LockHolder | None:
    """What the lock file of run ``path`` says (None if it is absent, empty or unreadable)."""
    try:
        doc = json.loads((Path(path) / LOCK_FILE).read_text(encoding="utf-8"))
        return LockHolder(pid=int(doc["pid"]), host=str(doc["host"]), command=str(doc["command"]),
                          since=str(doc["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def holder(path) -> LockHolder | None:
    """The process holding run ``path``'s writer lock now, or None if no process does.

    Tests the OS lock (briefly taking it if it is free), so a lock file left by a crash
    is reported as free.
    """
    path = Path(path)
    key = os.path.realpath(path)
    with _GUARD:
        held = _HELD.get(key)
        if held is not None and held.pid == os.getpid():
            return read_holder(path)
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _try_lock(fd):
            _unlock(fd)
            return None
        return read_holder(path) or LockHolder(pid=0, host="?", command="?", since="?")
    finally:
        os.close(fd)


class RunLock:
    """The writer lock of the run directory ``path``: :meth:`acquire`, :meth:`release`.

    Use it to hold a run across more than one writer object (e.g. the trainer holds it
    for the whole training, while the recorder and the alignment open their own writers
    of the same run, which share it)::

        with RunLock("runs/mnist"):
            ...  # no other process can write runs/mnist meanwhile

    :class:`~grandtour.store.RunWriter` and writable derived groups take one themselves.

    Parameters
    ----------
    path : str or Path
        The run directory; it must exist (the lock file is created in it).
    command : str, optional
        What the holder is doing, for the message of a refused writer (default: this
        process's command line).
    """

    def __init__(self, path, *, command: str | None = None) -> None:
        self.path = Path(path)
        self.command = command or _this_command()
        self._key = os.path.realpath(self.path)
        self._holding = False

    def __repr__(self) -> str:
        return f"RunLock({str(self.path)!r}, held={self._holding})"

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (acquired and not yet released)."""
        return self._holding

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`RunLockedError` naming the holder. Returns self."""
        if self._holding:
            return self
        pid = os.getpid()
        with _GUARD:
            held = _HELD.get(self._key)
            if held is not None and held.pid != pid:  # inherited through fork: not ours
                del _HELD[self._key]
                held = None
            if held is None:
                held = _Held(self._open_locked(), pid)
                _HELD[self._key] = held
            held.count += 1
        self._holding = True
        return self

    def _open_locked(self) -> int:
        lock_path = self.path / LOCK_FILE
        for _ in range(5):  # the file may be replaced between open and flock: retry
            with disk_errors(self.path, "taking the run's writer lock"):
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                os.close(fd)
                found = read_holder(self.path)
                who = found.describe() if found else "another process (its lock file is being written)"
                raise RunLockedError(
                    f"run {self.path} is being written by {who}. One process writes a run at a "
                    f"time: wait for it to finish, or stop it{f' (kill {found.pid})' if found else ''}"
                    ", then try again. Reading the run (grandtour serve, info, check) needs no lock")
            try:
                same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
            except OSError:
                same = False
            if not same:  # we locked a file that was deleted meanwhile
                _unlock(fd)
                os.close(fd)
                continue
            doc = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                   "since": now()}
            try:
                with disk_errors(self.path, "taking the run's writer lock"):
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, json.dumps(doc).encode("utf-8"), 0)
            except BaseException:
                _unlock(fd)
                os.close(fd)
                raise
            return fd
        raise RunLockedError(f"the writer lock {lock_path} keeps being replaced; is another "
                             "program deleting files in the run? Try again")

    def release(self) -> None:
        """Release the lock (idempotent); the OS lock goes when this process's last holder goes."""
        if not self._holding:
            return
        self._holding = False
        with _GUARD:
            held = _HELD.get(self._key)
            if held is None or held.pid != os.getpid():
                return
            held.count -= 1
            if held.count > 0:
                return
            del _HELD[self._key]
            with contextlib.suppress(OSError):
                os.ftruncate(held.fd, 0)  # an unheld lock file names nobody
            try:
                _unlock(held.fd)
            finally:
                os.close(held.fd)
