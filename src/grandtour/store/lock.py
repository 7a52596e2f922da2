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

On object storage (a run at an ``s3://`` URL) there is no OS lock and no rename: the lock
is a *lease object* ``RUN/writer.lock`` (:class:`_Lease`), created with a conditional
write (``If-None-Match: *``: the store refuses it if the object exists), renewed by a
background thread with compare-and-swap writes (``If-Match: <its ETag>``), taken over
only once it has expired, and deleted (``If-Match`` again) on release. A writer whose
lease was taken over learns it at its next renewal and refuses to commit. The exact
guarantees and limits are in ``docs/reliability.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass

from grandtour import defaults
from grandtour.errors import StoreError
from grandtour.store.codec import disk_errors, now
from grandtour.store.location import as_path, is_remote
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
        doc = json.loads((as_path(path) / LOCK_FILE).read_text(encoding="utf-8"))
        return LockHolder(pid=int(doc["pid"]), host=str(doc["host"]), command=str(doc["command"]),
                          since=str(doc["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def holder(path) -> LockHolder | None:
    """The process holding run ``path``'s writer lock now, or None if no process does.

    Tests the OS lock (briefly taking it if it is free), so a lock file left by a crash
    is reported as free.
    """
    path = as_path(path)
    key = _key_of(path)
    with _GUARD:
        held = _HELD.get(key)
        if held is not None and held.pid == os.getpid():
            return read_holder(path)
    if is_remote(path):
        found = _Lease.read(path)
        return None if found is None or found[0].get("expires", 0) + lease_seconds() < time.time() \
            else read_holder(path)
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
        self.path = as_path(path)
        self.command = command or _this_command()
        self._key = _key_of(self.path)
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
                held = _Held(_Lease.acquire(self.path, self.command) if is_remote(self.path)
                             else self._open_locked(), pid)
                _HELD[self._key] = held
            held.count += 1
        self._holding = True
        return self

    def confirm(self) -> None:
        """Before a commit: make sure this process still holds the lock, or raise
        :class:`RunLockedError`. Locally the OS lock cannot be lost; on object storage the
        lease is renewed now (a compare-and-swap write), so the commit that follows is made
        by the lease's owner within its lease."""
        if not self._holding:
            raise RunLockedError(f"this writer of {self.path} no longer holds its lock; open the run again")
        with _GUARD:
            held = _HELD.get(self._key)
        if held is not None and isinstance(held.fd, _Lease):
            held.fd.renew(strict=True)

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
            if isinstance(held.fd, _Lease):
                held.fd.release()
                return
            with contextlib.suppress(OSError):
                os.ftruncate(held.fd, 0)  # an unheld lock file names nobody
            try:
                _unlock(held.fd)
            finally:
                os.close(held.fd)


def _key_of(path) -> str:
    """Who a lock is, within this process: the real path, or the URL of a remote run."""
    return str(path) if is_remote(path) else os.path.realpath(path)


def lease_seconds() -> float:
    """How long a lease lasts without a renewal (:data:`grandtour.defaults.REMOTE_LOCK_LEASE_S`,
    or the environment's ``GRANDTOUR_LOCK_LEASE_S``)."""
    try:
        value = float(os.environ.get("GRANDTOUR_LOCK_LEASE_S", defaults.REMOTE_LOCK_LEASE_S))
    except ValueError:
        value = defaults.REMOTE_LOCK_LEASE_S
    return value if value > 0 else defaults.REMOTE_LOCK_LEASE_S


class _Lease:
    """The writer lock of a run on object storage: a lease object with an owner id.

    ``acquire`` creates ``RUN/writer.lock`` with ``If-None-Match: *``; if it exists and its
    ``expires`` time plus one lease (a margin for clock skew between hosts) has passed, it
    is replaced with ``If-Match: <the ETag read>``, so of two takers at most one wins. A
    daemon thread renews it every third of the lease (``If-Match`` on the ETag of our own
    last write); a renewal that fails (the ETag is not ours any more: another writer took
    an expired lease over) marks the lease lost, and :meth:`renew` with ``strict`` (before
    every commit) raises. Only filesystems with conditional writes (s3fs: S3 and
    S3-compatible servers that implement them) give these guarantees.
    """

    def __init__(self, path, doc: dict, etag: str) -> None:
        self.path = path
        self.key = (path / LOCK_FILE).key
        self.fs = path.fs
        self.doc = doc
        self.etag = etag
        self.lost: str | None = None
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._thread = threading.Thread(target=self._beat, name=f"grandtour-lease {path}", daemon=True)
        self._thread.start()

    # -- object-store calls (s3fs)

    def _bucket_key(self) -> tuple[str, str]:
        bucket, _, key = self.key.partition("/")
        return bucket, key

    @staticmethod
    def _doc(command: str, owner: str) -> dict:
        lease = lease_seconds()
        return {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "since": now(),
                "owner": owner, "lease_s": lease, "expires": time.time() + lease}

    @staticmethod
    def read(path) -> tuple[dict, str] | None:
        """The lock object's content and ETag, or None if there is none."""
        key = (path / LOCK_FILE).key
        try:
            info = path.fs.info(key)
            doc = json.loads(path.fs.cat_file(key))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}, ""
        return (doc if isinstance(doc, dict) else {}), str(info.get("ETag", ""))

    @classmethod
    def acquire(cls, path, command: str) -> _Lease:
        owner = uuid.uuid4().hex
        doc = cls._doc(command, owner)
        key = (path / LOCK_FILE).key
        body = json.dumps(doc).encode("utf-8")
        with disk_errors(path, "taking the run's writer lock"):
            try:
                path.fs.pipe_file(key, body, mode="create")
            except FileExistsError:
                found = cls.read(path)
                if found is not None:
                    old, etag = found
                    if old.get("expires", 0) + lease_seconds() >= time.time():
                        cls._refuse(path, old)
                    if not cls._put(path, key, body, if_match=etag):  # someone else took it first
                        cls._refuse(path, (cls.read(path) or ({}, ""))[0])
                else:  # released meanwhile: try once more
                    path.fs.pipe_file(key, body, mode="create")
        found = cls.read(path)
        if found is None or found[0].get("owner") != owner:
            cls._refuse(path, (found or ({}, ""))[0])
        return cls(path, doc, found[1])

    @staticmethod
    def _put(path, key: str, body: bytes, *, if_match: str) -> bool:
        """A PUT of ``body`` only if the object's ETag is ``if_match``; False if it is not."""
        bucket, _, k = key.partition("/")
        if not hasattr(path.fs, "call_s3"):  # no compare-and-swap here: write, the re-read checks
            path.fs.pipe_file(key, body)
            return True
        try:
            path.fs.call_s3("put_object", Bucket=bucket, Key=k, Body=body, IfMatch=if_match)
        except FileNotFoundError:
            return False
        except OSError as err:
            if "pre-condition" in str(err).lower() or "precondition" in str(err).lower():
                return False
            raise
        path.fs.invalidate_cache(key)
        return True

    @staticmethod
    def _refuse(path, doc: dict) -> None:
        try:
            who = LockHolder(pid=int(doc["pid"]), host=str(doc["host"]), command=str(doc["command"]),
                             since=str(doc["since"])).describe()
            pid = f" (kill {doc['pid']} on {doc['host']})"
        except (KeyError, TypeError, ValueError):
            who, pid = "another process (its lock object is being written)", ""
        raise RunLockedError(
            f"run {path} is being written by {who}. One process writes a run at a time: wait for it "
            f"to finish, or stop it{pid}; a writer that died without releasing the lock leaves a lease "
            f"that expires {2 * lease_seconds():.0f} s after its last renewal, then try again. Reading "
            "the run (grandtour serve, info, check) needs no lock")

    # -- renewal

    def renew(self, *, strict: bool = False) -> None:
        """Extend the lease (compare-and-swap on our own last ETag); with ``strict``, raise
        :class:`RunLockedError` if it was lost."""
        with self._mutex:
            if self.lost is None:
                doc = {**self.doc, "expires": time.time() + float(self.doc["lease_s"])}
                body = json.dumps(doc).encode("utf-8")
                try:
                    ok = self._put(self.path, self.key, body, if_match=self.etag)
                except OSError as err:  # the store is unreachable: the lease may run out
                    if not strict:
                        return
                    raise RunLockedError(f"cannot renew the writer lock of {self.path} ({err}); nothing "
                                         "was committed. Resume the run (--resume) once the store is "
                                         "reachable") from None
                if ok:
                    found = self.read(self.path)
                    if found is not None and found[0].get("owner") == self.doc["owner"]:
                        self.doc, self.etag = doc, found[1]
                    else:
                        ok = False
                if not ok:
                    self.lost = (f"the writer lock of {self.path} was taken over by another writer "
                                 "after this one's lease expired (was this process paused or cut off "
                                 "for longer than the lease?)")
            if self.lost is not None and strict:
                raise RunLockedError(f"{self.lost}; nothing more is committed by this process. Open the "
                                     "run again (--resume) once the other writer is done")

    def _beat(self) -> None:
        while not self._stop.wait(float(self.doc["lease_s"]) / 3):
            self.renew()
            if self.lost is not None:
                return

    def release(self) -> None:
        """Stop renewing and delete the lock object if it is still ours."""
        self._stop.set()
        with self._mutex:
            if self.lost is not None:
                return
            bucket, _, k = self.key.partition("/")
            with contextlib.suppress(OSError):
                if hasattr(self.fs, "call_s3"):
                    self.fs.call_s3("delete_object", Bucket=bucket, Key=k, IfMatch=self.etag)
                    self.fs.invalidate_cache(self.key)
                else:
                    self.fs.rm_file(self.key)
            self.lost = "released"
