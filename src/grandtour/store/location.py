"""Where a run lives: a local directory, or a prefix of an object store at an fsspec URL.

Every entry point of the store turns what it was given into a *location* with
:func:`as_path`: a :class:`pathlib.Path` for a local directory (a plain path, or a
``file://`` URL), a :class:`RemotePath` for any other fsspec URL (``s3://bucket/runs/x``,
``gs://...``, ``memory://...``). :class:`RemotePath` has the part of the ``pathlib`` API
the store uses (``/``, ``name``, ``parent``, ``exists``, ``is_file``, ``is_dir``,
``iterdir``, ``read_text``, ``stat``, ``unlink``, ``mkdir``), over the URL's fsspec
filesystem, so the store's code reads the same for both. What has no ``pathlib``
equivalent, or differs in substance between a file system and an object store, is a
function here, and the only place that branches:

- :func:`zarr_store`: Zarr's ``LocalStore``, or its ``FsspecStore`` over the same URL;
- :func:`replace_atomic`: a temporary file, ``fsync`` and ``os.replace`` locally; a single
  ``PUT`` of the whole object remotely (atomic per object on S3 and GCS: a reader gets the
  old object or the new one, never a mix);
- :func:`rmtree`, :func:`walk_files`: ``shutil.rmtree`` and ``os.walk``, or the recursive
  delete and listing of the filesystem.

Local behaviour is exactly what it was before object storage was supported: a local
location *is* a ``Path``.

Credentials and endpoints come from the filesystem's usual configuration, never from
the command line: for S3 (s3fs, botocore) the ``AWS_*`` environment variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` for an
S3-compatible server, ``AWS_PROFILE``) and ``~/.aws/config``; for GCS (gcsfs) the
application-default credentials. A URL with credentials in it (``s3://key:secret@...``)
is refused, so none can be printed in a message or a log. Listings are not cached:
a reader must see a commit as soon as it is made.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from grandtour.errors import StoreError

#: fsspec storage options of every remote filesystem the store opens: no listing cache
#: (a commit must be seen at once), and nothing else (credentials come from the environment).
STORAGE_OPTIONS: dict[str, Any] = {"use_listings_cache": False}

#: Options of one protocol's filesystem, added to :data:`STORAGE_OPTIONS`. s3fs splits a
#: whole-object read of more than its block size (50 MB) into parallel ranged GETs, and
#: to know the size it sends a HEAD before *every* whole read unless ``max_concurrency``
#: is 1; the store's objects are metadata of a few hundred bytes and chunks of at most
#: ``defaults.CHUNK_BYTES``, each read whole: one GET each, not a HEAD and a GET.
PROTOCOL_OPTIONS: dict[str, dict[str, Any]] = {"s3": {"max_concurrency": 1}, "s3a": {"max_concurrency": 1}}


def storage_options(protocol: str) -> dict[str, Any]:
    """The fsspec storage options the store opens ``protocol``'s filesystem with."""
    if protocol == "memory":
        return {}
    return {**STORAGE_OPTIONS, **PROTOCOL_OPTIONS.get(protocol, {})}


def is_url(text: Any) -> bool:
    """Whether ``text`` is a URL with a scheme (``s3://...``, ``file://...``), not a path."""
    if not isinstance(text, str) or "://" not in text:
        return False
    scheme = text.split("://", 1)[0]
    return len(scheme) > 1 and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()


def is_remote(path: Any) -> bool:
    """Whether ``path`` is a remote location (a :class:`RemotePath`)."""
    return isinstance(path, RemotePath)


def as_path(path: Any) -> Path | RemotePath:
    """The location of ``path``: a Path (local directory or ``file://`` URL) or a RemotePath.

    Raises
    ------
    StoreError
        If the URL's filesystem is not installed (``pip install grandtour[cloud]``), or the
        URL carries credentials.
    """
    if isinstance(path, (Path, RemotePath)):
        return path
    if isinstance(path, os.PathLike):
        return Path(path)
    text = str(path)
    if not is_url(text):
        return Path(text)
    parts = urlsplit(text)
    if parts.scheme == "file":
        return Path(parts.path)
    if parts.username or parts.password:
        raise StoreError(f"the run URL {parts.scheme}://{parts.hostname}{parts.path} carries credentials; "
                         "give them through the environment or the filesystem's config instead "
                         "(for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws)")
    return RemotePath.from_url(text)


#: The package of each protocol's fsspec filesystem, named when it is missing.
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}


def _filesystem(protocol: str):
    try:
        import fsspec

        return fsspec.filesystem(protocol, **storage_options(protocol))
    except ImportError as err:
        package = _PACKAGES.get(protocol)
        install = ("pip install 'grandtour[cloud]' (fsspec and s3fs)" if package in (None, "s3fs")
                   else f"pip install {package}")
        raise StoreError(f"runs at {protocol}:// URLs need fsspec and its {protocol}:// filesystem"
                         f"{f' ({package})' if package else ''}, which is not installed ({err}); "
                         f"install it: {install}") from None
    except ValueError as err:
        raise StoreError(f"no fsspec filesystem for {protocol}:// URLs ({err}); give a local path or "
                         "an s3://, gs:// or file:// URL") from None


class RemotePath:
    """A key prefix (a "directory") or a key of an object store, with pathlib's methods.

    ``str()`` is the URL (``s3://bucket/runs/x``). Directories are implicit, as in every
    object store: ``mkdir`` does nothing, a directory exists while some key lies under it.
    """

    __slots__ = ("_key", "fs", "protocol")

    def __init__(self, fs: Any, protocol: str, key: str) -> None:
        self.fs = fs
        self.protocol = protocol
        self._key = key.strip("/")

    @classmethod
    def from_url(cls, url: str) -> RemotePath:
        protocol, rest = url.split("://", 1)
        fs = _filesystem(protocol)
        return cls(fs, protocol, fs._strip_protocol(url) if protocol != "memory" else rest)  # noqa: SLF001

    # -- pathlib's pure part

    @property
    def key(self) -> str:
        """The path inside the filesystem (``bucket/runs/x`` for s3)."""
        return self._key

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self._key}"

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RemotePath({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and (self.protocol, self._key) == (other.protocol, other._key)

    def __hash__(self) -> int:
        return hash((self.protocol, self._key))

    def __truediv__(self, part: str | os.PathLike) -> RemotePath:
        part = str(part).strip("/")
        return RemotePath(self.fs, self.protocol, f"{self._key}/{part}" if part else self._key)

    def joinpath(self, *parts: str) -> RemotePath:
        out = self
        for p in parts:
            out = out / p
        return out

    @property
    def name(self) -> str:
        return self._key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> RemotePath:
        if "/" not in self._key:
            return self  # the bucket: like Path("/").parent
        return RemotePath(self.fs, self.protocol, self._key.rsplit("/", 1)[0])

    @property
    def parents(self) -> list[RemotePath]:
        out, p = [], self
        while p.parent != p:
            p = p.parent
            out.append(p)
        return out

    def resolve(self, strict: bool = False) -> RemotePath:
        return self

    def is_relative_to(self, other: RemotePath) -> bool:
        return isinstance(other, RemotePath) and (self._key + "/").startswith(other._key + "/")

    # -- queries

    def exists(self) -> bool:
        return bool(self.fs.exists(self._key))

    def is_file(self) -> bool:
        return bool(self.fs.isfile(self._key))

    def is_dir(self) -> bool:
        return bool(self.fs.isdir(self._key))

    def is_symlink(self) -> bool:
        return False  # object stores have no links

    def iterdir(self) -> Iterator[RemotePath]:
        try:
            names = self.fs.ls(self._key, detail=False)
        except FileNotFoundError:
            names = []
        for name in sorted(names):
            name = name.strip("/")
            if name != self._key:
                yield RemotePath(self.fs, self.protocol, name)

    def stat(self) -> SimpleNamespace:
        """``st_ino`` (from the ETag: it changes whenever the object is replaced), ``st_mtime``,
        ``st_mtime_ns`` and ``st_size``; FileNotFoundError if there is no such object."""
        info = self.fs.info(self._key)
        if info.get("type") == "directory":
            return SimpleNamespace(st_ino=0, st_mtime=0.0, st_mtime_ns=0, st_size=0)
        tag = str(info.get("ETag") or info.get("etag") or info.get("generation") or info.get("md5Hash") or "")
        modified = info.get("LastModified") or info.get("mtime") or info.get("updated") or info.get("created")
        if hasattr(modified, "timestamp"):
            mtime = float(modified.timestamp())
        else:
            try:
                mtime = float(modified or 0)
            except (TypeError, ValueError):
                mtime = 0.0
        ino = int(hashlib.sha1(f"{tag}|{mtime}".encode()).hexdigest()[:15], 16)
        return SimpleNamespace(st_ino=ino, st_mtime=mtime, st_mtime_ns=int(mtime * 1e9),
                               st_size=int(info.get("size") or 0))

    # -- reading and writing

    def read_bytes(self) -> bytes:
        return self.fs.cat_file(self._key)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        self.fs.pipe_file(self._key, data)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: a prefix exists once a key is written under it."""

    def rmdir(self) -> None:
        """Nothing to do for an empty prefix; OSError if keys remain under it (like a directory)."""
        if self.fs.isdir(self._key) and self.fs.find(self._key):
            raise OSError(f"{self.url} is not empty")

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.rm_file(self._key)
        except FileNotFoundError:
            if not missing_ok:
                raise


def zarr_store(path: Path | RemotePath, *, read_only: bool = False):
    """Zarr's store of the run at ``path``: ``LocalStore`` for a local one, ``FsspecStore``
    (over the same URL, an asynchronous instance of its filesystem) for a remote one."""
    import zarr

    if not is_remote(path):
        return zarr.storage.LocalStore(path, read_only=read_only)
    if path.protocol == "memory":  # one process-wide instance: the sync one, wrapped
        from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

        return zarr.storage.FsspecStore(AsyncFileSystemWrapper(path.fs), read_only=read_only,
                                        path=path.key)
    return zarr.storage.FsspecStore.from_url(path.url, storage_options=storage_options(path.protocol),
                                             read_only=read_only)


def replace_atomic(path: Path | RemotePath, data: bytes, *, before_replace=None) -> None:
    """Replace the file ``path`` with ``data`` so a reader sees the old content or the new.

    Locally: a unique temporary file beside it, written, ``fsync``-ed and renamed over it
    (removed if anything fails). Remotely: one ``PUT`` of the whole object, which object
    stores apply atomically. ``before_replace`` is called just before the switch (a fault
    point of the tests).
    """
    if is_remote(path):
        if before_replace is not None:
            before_replace()
        path.write_bytes(data)
        return
    from grandtour.store.codec import temp_path

    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def rmtree(path: Path | RemotePath, *, ignore_errors: bool = False) -> None:
    """Delete the directory ``path`` and everything under it."""
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=ignore_errors)
        return
    try:
        if path.fs.find(path.key):
            path.fs.rm(path.key, recursive=True)
    except OSError:
        if not ignore_errors:
            raise


def walk_files(path: Path | RemotePath) -> Iterator[tuple[Any, str]]:
    """Every file under ``path``: ``(its directory, its name)``."""
    if not is_remote(path):
        for dirpath, _, files in os.walk(path):
            for f in files:
                yield dirpath, f
        return
    for key in path.fs.find(path.key):
        key = key.strip("/")
        parent, _, name = key.rpartition("/")
        yield RemotePath(path.fs, path.protocol, parent), name


def remove_file(directory: Any, name: str) -> None:
    """Delete the file ``name`` of ``directory`` (as :func:`walk_files` gives them); quiet if absent."""
    with contextlib.suppress(OSError):
        if isinstance(directory, RemotePath):
            (directory / name).unlink(missing_ok=True)
        else:
            os.unlink(os.path.join(directory, name))


def read_many(paths: list) -> dict[str, bytes] | None:
    """The content of each remote file of ``paths`` (absent ones left out), fetched side by
    side in one call of the filesystem; None for local paths (read them one by one)."""
    if not paths or not is_remote(paths[0]):
        return None
    fs = paths[0].fs
    found = fs.cat([p.key for p in paths], on_error="omit")
    by_key = {k.strip("/"): v for k, v in found.items()}
    return {str(p): by_key[p.key] for p in paths if p.key in by_key}
