"""Running the server: binding a port, :class:`ServerThread`, :func:`serve` and the
``grandtour serve`` command.

The server binds to 127.0.0.1 unless told otherwise. On every bind address it answers
only requests whose ``Host`` names this machine (:data:`LOOPBACK_HOSTS`), the address it
was bound to (when that was given explicitly, not ``0.0.0.0`` or ``::``), or a name given
with ``--allow-host`` (the name a proxy or tunnel forwards). Bound beyond loopback, or
with ``--allow-host``, it asks every request for an access token (``--token``,
``GRANDTOUR_TOKEN``, or one generated and printed in the URL, like Jupyter's); see
:mod:`grandtour.server.guard`.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import re
import secrets
import socket
import sys
import threading
import time
import webbrowser
from collections.abc import Sequence
from typing import Any

from grandtour import defaults
from grandtour.errors import GrandTourError

DEFAULT_HOST = defaults.HOST
DEFAULT_PORT = defaults.PORT
#: Ports tried after DEFAULT_PORT when it is busy and no --port was given.
PORT_TRIES = 20
#: Most bytes of request headers: uvicorn's h11 buffers no more of headers that arrive in
#: pieces (then answers 400), and :class:`~grandtour.server.guard.Guard` refuses more (431).
MAX_HEADER_BYTES = 16 * 1024
#: Connections served at once; uvicorn answers 503 beyond.
MAX_CONNECTIONS = 256
#: Seconds a stop waits for requests still running before it cancels them.
STOP_GRACE_S = 3
#: Host header names always accepted: this machine's own.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Addresses that bind every interface: not a name a client would use.
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
#: The environment variable holding the token when --token is not given.
TOKEN_ENV = "GRANDTOUR_TOKEN"
#: Characters a token may hold: it travels in a URL query and a cookie unescaped.
_TOKEN = re.compile(r"^[A-Za-z0-9._~-]+$")
#: A host name (an address with ":" must be IPv6, checked by :mod:`ipaddress`).
_ALLOW_HOST = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?$")


def require_web_stack() -> None:
    """Import FastAPI/uvicorn, or say which extra to install."""
    try:
        import fastapi  # noqa: F401
        import PIL  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as err:
        raise GrandTourError(
            f"`grandtour serve` needs the Python package '{err.name}'. Install the viewer extra: "
            "pip install 'grandtour[viewer]'") from None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_ipv6(name: str) -> bool:
    try:
        return ipaddress.ip_address(name.strip("[]")).version == 6
    except ValueError:
        return False


def allowed_host_names(host: str, allow_hosts: Sequence[str] = ()) -> tuple[str, ...]:
    """The ``Host`` names the server bound to ``host`` answers: :data:`LOOPBACK_HOSTS`, then
    ``host`` itself unless it binds every interface, then ``allow_hosts``.

    Raises
    ------
    GrandTourError
        An ``allow_hosts`` entry is not a bare host name or address (no scheme, port, path).
    """
    names = list(LOOPBACK_HOSTS)
    bound = host.strip("[]").lower()
    if bound not in WILDCARD_HOSTS:
        names.append(bound)
    for name in allow_hosts:
        if not isinstance(name, str) or not (_ALLOW_HOST.match(name.strip()) or _is_ipv6(name.strip())):
            raise GrandTourError(f"--allow-host {name!r}: give a bare host name or address, such as "
                                 "notebook.example.org or 10.0.0.5 (no scheme, port or path)")
        names.append(name.strip().strip("[]").lower())
    return tuple(dict.fromkeys(names))


def resolve_token(token: str | None, required: bool) -> tuple[str | None, bool]:
    """The access token: ``token``, else ``$GRANDTOUR_TOKEN``, else a new one if ``required``.

    Returns
    -------
    token : str or None
        None: no token is asked for.
    generated : bool
        True if it was made here (with :mod:`secrets`).

    Raises
    ------
    GrandTourError
        The token holds a character that a URL or cookie would change.
    """
    token = token or os.environ.get(TOKEN_ENV) or None
    if token is None:
        return (secrets.token_hex(24), True) if required else (None, False)
    if not _TOKEN.match(token):
        raise GrandTourError("the access token (--token or GRANDTOUR_TOKEN) may hold only letters, digits "
                             "and . _ ~ - : it travels in a URL and a cookie as it is")
    if len(token) < 16:
        print("warning: the access token is shorter than 16 characters: it can be guessed; leave "
              "--token out to have one generated", file=sys.stderr)
    return token, False


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; GrandTourError if the port is taken."""
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise GrandTourError(f"cannot serve on host {host!r}: {err.strerror}; give an address such "
                             f"as {DEFAULT_HOST}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name != "nt":  # on Windows SO_REUSEADDR would let two servers share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise GrandTourError(f"cannot listen on {host}:{port}: {err.strerror or err}. The port may be "
                             "in use by another program: choose another with --port (0 = any free port)"
                             ) from None
    return sock


def _bind_search(host: str, port: int | None) -> socket.socket:
    """Bind ``port``; with None, :data:`DEFAULT_PORT` or the next free one of :data:`PORT_TRIES`."""
    if port is not None:
        if not 0 <= int(port) <= 65535:
            raise GrandTourError(f"port {port} is out of range: give 0..65535 (0 = any free port)")
        return _bind(host, int(port))
    last: GrandTourError | None = None
    for p in range(DEFAULT_PORT, DEFAULT_PORT + PORT_TRIES):
        try:
            return _bind(host, p)
        except GrandTourError as err:
            last = err
    raise GrandTourError(f"ports {DEFAULT_PORT}-{DEFAULT_PORT + PORT_TRIES - 1} are all in use; "
                         f"choose one with --port (0 = any free port). Last error: {last}")


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = DEFAULT_HOST  # reachable from this machine whatever the interface
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


#: What uvicorn logs when a stop cancels requests still running: the cancellation is the
#: stop asked for, not an error (a notebook closing a widget while the page was loading).
_SHUTDOWN_NOISE = ("timeout graceful shutdown exceeded",)


class QuietShutdown(logging.Filter):
    """Drops uvicorn's report of the requests a stop cancelled (``uvicorn.error``): the
    "Cancel N running task(s)" line and each cancelled request's CancelledError traceback.
    Every other record, errors of requests included, passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        import asyncio

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, asyncio.CancelledError) and any(n in str(exc) for n in _SHUTDOWN_NOISE):
            return False
        return not any(n in str(record.msg) for n in _SHUTDOWN_NOISE)


def _log_config() -> dict:
    """uvicorn's logging configuration, with :class:`QuietShutdown` on its error logger."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["quiet_shutdown"] = {"()": QuietShutdown}
    config["loggers"].setdefault("uvicorn.error", {})["filters"] = ["quiet_shutdown"]
    return config


class ServerThread:
    """Serve an ASGI app with uvicorn on a background thread (tests, browser tests, notebooks).

    ``port=0`` picks a free port. Use as a context manager, or call :meth:`start` and
    :meth:`stop`::

        with ServerThread(create_app(["runs/example"])) as server:
            urllib.request.urlopen(server.url + "api/runs")

    Attributes
    ----------
    host : str
    port : int
        The bound port (known once constructed).
    url : str
        ``http://host:port/``.
    page_url : str
        ``url``, with ``?token=...`` when the app asks for a token (``app.state.token``).
    """

    def __init__(self, app, host: str = DEFAULT_HOST, port: int = 0, *, sock: socket.socket | None = None,
                 log_level: str = "warning") -> None:
        require_web_stack()
        import uvicorn

        self.app = app
        self.sock = sock if sock is not None else _bind(host, port)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        self.url = _url(host, self.port)
        token = getattr(getattr(app, "state", None), "token", None)
        self.page_url = f"{self.url}?token={token}" if token else self.url
        # h11 (not httptools, if installed) so the limits below hold whatever is installed:
        # the request line and headers together at most MAX_HEADER_BYTES; at most
        # MAX_CONNECTIONS connections at once (more get 503, not memory).
        config = uvicorn.Config(app, log_level=log_level, log_config=_log_config(), lifespan="off",
                                timeout_graceful_shutdown=STOP_GRACE_S,
                                server_header=False, http="h11", ws="none",
                                h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                                limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=5)
        self.config = config
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as err:  # noqa: BLE001 - reported by start()
            self._error = err

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Start serving and return once the server accepts connections."""
        self._thread = threading.Thread(target=self._run, name=f"grandtour-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self._error is not None or not self._thread.is_alive():
                raise GrandTourError(f"the server on {self.url} failed to start: {self._error}")
            if time.monotonic() > deadline:
                self.stop()
                raise GrandTourError(f"the server on {self.url} did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end; the socket is closed.

        Requests still running after :data:`STOP_GRACE_S` are cancelled; the threads that
        were answering them are waited for too (within ``timeout`` in all), so that a
        program ending right after ``stop`` does not end in the middle of their reads.
        """
        deadline = time.monotonic() + timeout
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self.sock.close()
        for worker in _orphaned_workers():
            worker.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _orphaned_workers() -> list[threading.Thread]:
    """AnyIO's worker threads still running a request for an event loop that has ended
    (a stopped server's), told to stop: each ends when its request's work is done. A
    worker of a server still serving has a running loop and is not listed."""
    out = []
    for thread in threading.enumerate():
        task = getattr(thread, "root_task", None)  # anyio's WorkerThread
        loop = task.get_loop() if task is not None and hasattr(task, "get_loop") else None
        if (loop is not None and loop.is_closed() and getattr(thread, "stopping", False)
                and thread.is_alive() and thread is not threading.current_thread()):
            out.append(thread)
    return out


def _configure_logging() -> None:
    logger = logging.getLogger("grandtour")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("grandtour serve: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def serve(run_paths: Sequence[str | os.PathLike], host: str = DEFAULT_HOST, port: int | None = None,
          open_browser: bool = True, block: bool = True, *, web_dir=None,
          out: Any = None, allowed_hosts: Sequence[str] = (),
          token: str | None = None) -> ServerThread | None:
    """Serve the viewer for ``run_paths`` (used by ``grandtour serve`` and ``grandtour demo``).

    Parameters
    ----------
    run_paths : sequence of str or Path
    host : str
        Address to bind; 127.0.0.1 by default. Any other than a loopback address lets
        other machines reach the server: a warning says so, and a token is asked for.
    port : int, optional
        None: :data:`DEFAULT_PORT` (8787), or the next free one of the 20 after it. An
        explicit port that is taken is an error; 0 picks any free port.
    open_browser : bool
        Open the page with :func:`webbrowser.open` once the server accepts connections.
    block : bool
        True: serve until Ctrl-C (then return None). False: return the started
        :class:`ServerThread`; call its ``stop()``.
    web_dir : str or Path, optional
        The page's directory (default: the package's).
    out : file, optional
        Where the URL and notes are printed (default: stdout).
    allowed_hosts : sequence of str
        More ``Host`` names to answer (``--allow-host``): the name a proxy or tunnel
        forwards, e.g. ``notebook.example.org``. Any is a reason to ask for a token.
    token : str, optional
        The access token (``--token``); else ``$GRANDTOUR_TOKEN``; else, when one is asked
        for (a non-loopback ``host`` or any ``allowed_hosts``), a new one. Loopback with
        neither asks none (the page opens as it always did).

    Returns
    -------
    ServerThread or None
    """
    from grandtour.server.app import create_app

    out = out if out is not None else sys.stdout
    require_web_stack()
    loopback = _is_loopback(host)
    names = allowed_host_names(host, allowed_hosts)
    token, generated = resolve_token(token, required=not loopback or bool(allowed_hosts))
    app = create_app(run_paths, web_dir=web_dir, allowed_hosts=names, token=token)
    if not loopback:
        print(f"warning: serving on {host}, which is not a loopback address: anyone who can reach "
              "this machine on the network and has the token can read these runs", file=sys.stderr)
    sock = _bind_search(host, port)
    server = ServerThread(app, host, sock=sock)
    if port is None and server.port != DEFAULT_PORT:
        print(f"port {DEFAULT_PORT} is in use; using {server.port}", file=out)
    _configure_logging()
    _print_access(out, host, names, token, generated)
    runs = ", ".join(h.name for h in app.state.runs)
    if not block:
        server.start()
        print(f"grandtour viewer for {runs} at {server.page_url}", file=out, flush=True)
        if open_browser:
            webbrowser.open(server.page_url)
        return server
    print(f"grandtour viewer for {runs} at {server.page_url}  (Ctrl-C to stop)", file=out, flush=True)
    if open_browser:
        threading.Thread(target=_open_when_started, args=(server,), name="grandtour-browser",
                         daemon=True).start()
    _serve_until_interrupted(server)
    print("stopped", file=out, flush=True)
    return None


def _print_access(out: Any, host: str, names: Sequence[str], token: str | None, generated: bool) -> None:
    """Say which names are answered and how to pass the token (behind a proxy or tunnel)."""
    others = [n for n in names if n not in LOOPBACK_HOSTS]
    if others:
        print(f"answering requests addressed to {', '.join(others)} (and this machine)", file=out)
    elif host.strip("[]") in WILDCARD_HOSTS:
        print("answering only requests addressed to this machine by its loopback names: give "
              "--allow-host NAME for each name or address other machines use to reach it", file=out)
    if token:
        how = "generated for this session (set your own with --token or GRANDTOUR_TOKEN)" if generated \
            else "from --token or GRANDTOUR_TOKEN"
        print(f"access token {how}; through a proxy or tunnel, open its URL for this port with "
              f"?token={token}", file=out)


def _open_when_started(server: ServerThread, timeout: float = 30.0) -> None:
    """Open the page in a browser once ``server`` accepts connections (within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not server.server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if server.server.started:
        webbrowser.open(server.page_url)


def _serve_until_interrupted(server: ServerThread) -> None:
    """Serve on this thread until Ctrl-C; the socket is closed afterwards."""
    try:
        # In the main thread, uvicorn handles Ctrl-C itself: it stops gracefully, then re-raises it.
        server.server.run(sockets=[server.sock])
    except KeyboardInterrupt:
        pass
    finally:
        server.sock.close()


def serve_command(args: argparse.Namespace) -> int:
    """``grandtour serve RUN [RUN ...] [--port P] [--host H] [--allow-host NAME ...]
    [--token T] [--no-browser]``."""
    runs = list(getattr(args, "runs", None) or [])
    host = getattr(args, "host", None) or DEFAULT_HOST
    port = getattr(args, "port", None)
    serve(runs, host=host, port=port, open_browser=not getattr(args, "no_browser", False), block=True,
          allowed_hosts=list(getattr(args, "allow_host", None) or []), token=getattr(args, "token", None))
    return 0
