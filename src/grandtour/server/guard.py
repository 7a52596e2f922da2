"""The server's defences: JSON errors without tracebacks, request limits, the ``Host``
check and the access token.

Every route is a :class:`GuardedRoute`: whatever a handler raises is answered as JSON
``{"error": ...}`` (:func:`grandtour.server.wire.error_response`), the server keeps
running, and a GET route answers HEAD too. :func:`install` adds the handlers for the
framework's own errors (404, 405, 422) and :class:`Guard`, which meets every request
before any route does, in this order:

1. limits: a URL over :data:`MAX_URL_BYTES` is 414, more than :data:`MAX_HEADERS` headers
   or :data:`MAX_HEADER_BYTES` of them 431, any request body 413 (the API is read-only: no
   request needs one). uvicorn's h11 is given the same byte cap for headers that arrive in
   pieces (:mod:`grandtour.server.serving`);
2. the ``Host`` check, on every bind address: the header must parse as ``name[:port]``
   (so ``127.0.0.1:8799@evil.com`` is malformed, 400) and name an allowed host (400
   otherwise). A page elsewhere cannot read the runs through DNS rebinding;
3. the token, when the server has one: ``?token=T`` (then remembered in an HttpOnly,
   SameSite=Strict cookie, so the page's own requests carry it), the cookie, or
   ``Authorization: token T``; compared in constant time. 401 without one, 403 if wrong.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from grandtour.errors import GrandTourError
from grandtour.server.serving import MAX_HEADER_BYTES
from grandtour.server.wire import error_response

log = logging.getLogger("grandtour.server")

#: Longest path plus query string accepted (the page's longest URL is ~200 bytes).
MAX_URL_BYTES = 4096
#: Most request headers accepted (a browser sends about 15).
MAX_HEADERS = 64
#: The query parameter that carries the access token.
TOKEN_PARAM = "token"

_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?))"
                   r"(?::(?P<port>[0-9]{1,5}))?$")


class HttpError(GrandTourError):
    """A request the server refuses: answered as JSON ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found(message: str) -> HttpError:
    """A 404 whose message names what exists."""
    return HttpError(404, message)


class GuardedRoute(APIRoute):
    """Every handler's failures become JSON errors; no traceback reaches the client.

    A GET route also answers HEAD (the same status and headers; :class:`Guard` drops the
    body), as HTTP asks of every server.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "GET" in self.methods:
            self.methods.add("HEAD")

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def guarded(request: Request):
            try:
                return await handler(request)
            except (StarletteHTTPException, RequestValidationError):
                raise
            except HttpError as err:
                return error_response(err.status, err.message)
            except GrandTourError as err:
                # A damaged store: the message names the array; the server keeps running.
                log.error("%s %s: %s", request.method, request.url.path, err)
                return error_response(500, str(err))
            except Exception as err:
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return error_response(500, f"internal error ({type(err).__name__}) while answering "
                                           f"{request.url.path}; the server log has the details")

        return guarded


def host_name(value: str) -> str | None:
    """The name of a ``Host`` header (``name``, ``name:port`` or ``[v6]:port``), lower case;
    None if it is not one of those forms (userinfo, a path, spaces, an empty name)."""
    m = _HOST.match(value)
    if m is None or (m["port"] is not None and int(m["port"]) > 65535):
        return None
    return (m["v6"] or m["name"]).lower()


def token_cookie(token: str) -> str:
    """The cookie name of ``token``: its own per server, so that two servers behind one
    proxy host do not overwrite each other's cookie; the name reveals nothing of the token."""
    return "grandtour-" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _matches(given: str, token: bytes) -> bool:
    # Bytes: compare_digest refuses non-ASCII str, and a client may send anything.
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"), token)


class Guard:
    """ASGI middleware: the limits, the ``Host`` check and the token (see the module).

    Parameters
    ----------
    app : ASGI application
    allowed_hosts : iterable of str or None
        Accepted ``Host`` names (any port); None accepts every name.
    token : str or None
        The access token; None: no token is asked for.
    """

    def __init__(self, app, *, allowed_hosts: Iterable[str] | None, token: str | None) -> None:
        self.app = app
        self.hosts = (None if allowed_hosts is None
                      else frozenset(h.lower().strip("[]") for h in allowed_hosts))
        self.token = token.encode() if token else None
        self.cookie = token_cookie(token) if token else ""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":  # no route speaks websocket: refuse before any check
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal, set_cookie = self.check(scope)
        extra = [(b"x-content-type-options", b"nosniff")]
        if self.token is not None:
            # The token may be in the address bar: never send it on in a Referer.
            extra.append((b"referrer-policy", b"no-referrer"))
            if set_cookie:
                secure = "; Secure" if scope.get("scheme") == "https" else ""
                cookie = f"{self.cookie}={self.token.decode()}; HttpOnly; SameSite=Strict{secure}"
                extra.append((b"set-cookie", cookie.encode("latin-1")))
        head = scope["method"] == "HEAD"

        async def guarded_send(message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                headers = list(message.get("headers", [])) + [h for h in extra if h[0] not in names]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and head:
                message = {**message, "body": b""}  # HEAD: the headers of GET, no body
            await send(message)

        if refusal is not None:
            await refusal(scope, receive, guarded_send)
        else:
            await self.app(scope, receive, guarded_send)

    def check(self, scope) -> tuple:
        """``(refusal, set_cookie)``: the error response to send (None: let it through), and
        whether to remember the token in a cookie (it came in the query)."""
        headers = scope.get("headers") or []
        path = scope.get("raw_path") or scope.get("path", "").encode()
        url_bytes = len(path) + len(scope.get("query_string", b""))
        if url_bytes > MAX_URL_BYTES:
            return error_response(414, f"the URL is longer than {MAX_URL_BYTES} bytes"), False
        if len(headers) > MAX_HEADERS:
            return error_response(431, f"more than {MAX_HEADERS} request headers"), False
        if sum(len(k) + len(v) for k, v in headers) > MAX_HEADER_BYTES:
            # h11 caps only headers that arrive in pieces; these came whole.
            return error_response(431, f"the request headers exceed {MAX_HEADER_BYTES} bytes"), False
        fields = {}
        for k, v in headers:
            fields.setdefault(k.lower(), []).append(v.decode("latin-1"))
        length = fields.get(b"content-length", ["0"])
        if b"transfer-encoding" in fields or any(v.strip() not in ("", "0") for v in length):
            return error_response(413, "request bodies are not accepted: the API is read-only (GET)"), False
        hosts = fields.get(b"host", [])
        if self.hosts is not None:
            name = host_name(hosts[0]) if len(hosts) == 1 else None
            if name is None:
                return error_response(400, "malformed Host header: give one `name` or `name:port`"), False
            if name not in self.hosts:
                return error_response(400, (
                    "this server answers only requests addressed to this machine or to the names "
                    f"given with --allow-host; to reach it as {name!r} (through a proxy or tunnel), "
                    f"serve with --allow-host {name}")), False
        if self.token is None:
            return None, False
        return self._check_token(scope, fields)

    def _check_token(self, scope, fields: dict) -> tuple:
        given_query = [v for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                               keep_blank_values=True) if k == TOKEN_PARAM]
        given_cookie = []
        for line in fields.get(b"cookie", []):
            for part in line.split(";"):
                key, _, value = part.strip().partition("=")
                if key == self.cookie:
                    given_cookie.append(value)
        given_header = []
        for line in fields.get(b"authorization", []):
            scheme, _, value = line.strip().partition(" ")
            if scheme.lower() in ("token", "bearer"):
                given_header.append(value.strip())
        given = given_query + given_cookie + given_header
        if not given:
            refusal = error_response(401, (
                "this server asks for its access token: open the URL `grandtour serve` printed "
                "(it ends in ?token=...), or send the header 'Authorization: token TOKEN'"))
            refusal.headers["WWW-Authenticate"] = 'Token realm="grandtour"'
            return refusal, False
        if not any(_matches(g, self.token) for g in given):
            return error_response(403, "wrong access token: use the one `grandtour serve` printed "
                                       "(or gave with --token or GRANDTOUR_TOKEN)"), False
        cookie_ok = any(_matches(g, self.token) for g in given_cookie)
        query_ok = any(_matches(g, self.token) for g in given_query)
        return None, query_ok and not cookie_ok


def install(app: FastAPI, allowed_hosts: Iterable[str] | None, token: str | None = None) -> None:
    """Answer the framework's errors as JSON, and put :class:`Guard` before every route.

    ``allowed_hosts``: accepted names (any port); None accepts every host. ``token``: the
    access token asked of every request; None asks none.
    """

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        messages = {404: "not found", 405: "method not allowed: the API is read-only (GET)"}
        return error_response(exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return error_response(422, "malformed request")

    app.add_middleware(Guard, allowed_hosts=allowed_hosts, token=token)
