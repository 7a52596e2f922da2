"""The server's defences: JSON errors without tracebacks, and the ``Host`` check.

Every route is a :class:`GuardedRoute`: whatever a handler raises is answered as JSON
``{"error": ...}`` (:func:`grandtour.server.wire.error_response`), and the server keeps
running. :func:`install` adds the handlers for the framework's own errors (404, 405, 422)
and the check that refuses requests addressed to another host (DNS rebinding).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from grandtour.errors import GrandTourError
from grandtour.server.wire import error_response

log = logging.getLogger("grandtour.server")


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
    """Every handler's failures become JSON errors; no traceback reaches the client."""

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
            except Exception as err:  # noqa: BLE001 - a bug: log it, answer without a traceback
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return error_response(500, f"internal error ({type(err).__name__}) while answering "
                                           f"{request.url.path}; the server log has the details")

        return guarded


def _host_name(host: str) -> str:
    """The name part of a ``Host`` header: ``name:port``, ``[v6]:port`` or ``name``."""
    return host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]


def install(app: FastAPI, allowed_hosts: Iterable[str] | None) -> None:
    """Answer the framework's errors as JSON, and refuse other ``Host`` names.

    ``allowed_hosts``: accepted names (any port); None accepts every host.
    """
    hosts = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        messages = {404: "not found", 405: "method not allowed: the API is read-only (GET)"}
        return error_response(exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return error_response(422, "malformed request")

    @app.middleware("http")
    async def check_host(request: Request, call_next):
        if hosts is not None and _host_name(request.headers.get("host", "")).lower() not in hosts:
            return error_response(400, "this server answers only requests addressed to this machine "
                                       "(http://127.0.0.1:PORT/); serve with --host to allow others")
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
