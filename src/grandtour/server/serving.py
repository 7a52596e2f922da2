"""Running the server: binding a port, :class:`ServerThread`, :func:`serve` and the
``grandtour serve`` command.

The server binds to 127.0.0.1 unless told otherwise; on a loopback address it answers
only requests whose ``Host`` is this machine (:mod:`grandtour.server.guard`).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
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
#: Host header values accepted when serving on a loopback address.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


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
        raise GrandTourError(f"cannot listen on {host}:{port}: {err.strerror or err}. The port may be in "
                             "use by another program: choose another with --port (0 = any free port)") from None
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
        config = uvicorn.Config(app, log_level=log_level, lifespan="off", timeout_graceful_shutdown=3,
                                server_header=False)
        self.config = config
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as err:  # noqa: BLE001 - reported by start()
            self._error = err

    def start(self, timeout: float = 10.0) -> "ServerThread":
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
        """Stop serving and wait for the thread to end; the socket is closed."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _configure_logging() -> None:
    logger = logging.getLogger("grandtour")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("grandtour serve: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def serve(run_paths: Sequence[str | os.PathLike], host: str = DEFAULT_HOST, port: int | None = None,
          open_browser: bool = True, block: bool = True, *, web_dir=None,
          out: Any = None) -> "ServerThread | None":
    """Serve the viewer for ``run_paths`` (used by ``grandtour serve`` and ``grandtour demo``).

    Parameters
    ----------
    run_paths : sequence of str or Path
    host : str
        Address to bind; 127.0.0.1 by default. Any other than a loopback address lets
        other machines read the runs: a warning says so.
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

    Returns
    -------
    ServerThread or None
    """
    from grandtour.server.app import create_app

    out = out if out is not None else sys.stdout
    require_web_stack()
    loopback = _is_loopback(host)
    app = create_app(run_paths, web_dir=web_dir, allowed_hosts=LOOPBACK_HOSTS if loopback else None)
    if not loopback:
        print(f"warning: serving on {host}, which is not a loopback address: anyone who can reach "
              "this machine on the network can read these runs", file=sys.stderr)
    sock = _bind_search(host, port)
    server = ServerThread(app, host, sock=sock)
    if port is None and server.port != DEFAULT_PORT:
        print(f"port {DEFAULT_PORT} is in use; using {server.port}", file=out)
    _configure_logging()
    names = ", ".join(h.name for h in app.state.runs)
    if not block:
        server.start()
        print(f"grandtour viewer for {names} at {server.url}", file=out, flush=True)
        if open_browser:
            webbrowser.open(server.url)
        return server
    print(f"grandtour viewer for {names} at {server.url}  (Ctrl-C to stop)", file=out, flush=True)
    if open_browser:
        threading.Thread(target=_open_when_started, args=(server,), name="grandtour-browser",
                         daemon=True).start()
    _serve_until_interrupted(server)
    print("stopped", file=out, flush=True)
    return None


def _open_when_started(server: ServerThread, timeout: float = 30.0) -> None:
    """Open the page in a browser once ``server`` accepts connections (within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not server.server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if server.server.started:
        webbrowser.open(server.url)


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
    """``grandtour serve RUN [RUN ...] [--port P] [--host H] [--no-browser]``."""
    runs = list(getattr(args, "runs", None) or [])
    host = getattr(args, "host", None) or DEFAULT_HOST
    port = getattr(args, "port", None)
    serve(runs, host=host, port=port, open_browser=not getattr(args, "no_browser", False), block=True)
    return 0
