"""The viewer off loopback (issue 12, remote use): behind a proxy that adds a path prefix,
reached by a name given with ``--allow-host``, and guarded by an access token.

The proxy is real: a small ASGI app served by uvicorn on loopback that forwards
``/proxy/{port}/...`` to the viewer's server with the browser's ``Host`` header, as
jupyter-server-proxy does. Chromium reaches it as ``notebook.grandtour.test`` (mapped to
127.0.0.1 by its host resolver), so the viewer sees a name that is not this machine's.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import re
import shutil
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # Starlette's test client prefers `httpx2`
    from fastapi.testclient import TestClient

from grandtour import server  # noqa: E402
from grandtour.errors import GrandTourError  # noqa: E402
from grandtour.server import guard, serving  # noqa: E402
from grandtour.store import Run  # noqa: E402

NAME = "notebook.grandtour.test"  # the name the proxy is reached by (not this machine's)
TOKEN = "t0ken-for-the-remote-tests-0123456789"
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"content-length",
              b"proxy-connection", b"te", b"trailer"}


def _browser_kit():
    """tests/browser/conftest.py (its chromium and its flags), loaded once under its own name."""
    if "browser_kit" not in sys.modules:
        path = Path(__file__).parent / "browser" / "conftest.py"
        spec = importlib.util.spec_from_file_location("browser_kit", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["browser_kit"] = module
        spec.loader.exec_module(module)
    return sys.modules["browser_kit"]


def make_run(path: Path) -> Path:
    """Two epochs of three well-separated classes, one split, two layers."""
    rng = np.random.default_rng(3)
    labels = np.arange(90) % 3
    centers = rng.standard_normal((3, 6)) * 4
    hidden = np.stack([centers[labels] + rng.standard_normal((90, 6)) * s for s in (1.5, 0.5)])
    Run.from_arrays(path, {"hidden": hidden, "out": hidden[..., :3] * 2}, labels,
                    class_names=["a", "b", "c"], split="train")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("remote") / "remote-run")


class Proxy:
    """ASGI reverse proxy: ``/proxy/{port}/rest`` -> ``http://127.0.0.1:{port}/rest``, the
    request's ``Host`` (and every other end-to-end header) passed on as it came, and
    ``/proxy/{port}`` redirected to ``/proxy/{port}/`` (as jupyter-server-proxy does)."""

    def __init__(self, port: int) -> None:
        self.prefix = f"/proxy/{port}"
        self.port = port
        self.client = None
        self.seen: list[str] = []  # the upstream paths asked for

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        path = scope["raw_path"].decode("latin-1")
        if path == self.prefix:
            await send({"type": "http.response.start", "status": 301,
                        "headers": [(b"location", f"{self.prefix}/".encode()), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if not path.startswith(self.prefix + "/"):
            body = b"not behind this proxy"
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        if self.client is None:  # made in the server's event loop, which it then belongs to
            self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", trust_env=False)
        upstream = path[len(self.prefix):]
        self.seen.append(upstream)
        query = scope["query_string"].decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        resp = await self.client.request(scope["method"], upstream + (f"?{query}" if query else ""),
                                         headers=headers)
        body = resp.content
        out = [(k, v) for k, v in resp.headers.raw if k.lower() not in HOP_BY_HOP]
        await send({"type": "http.response.start", "status": resp.status_code,
                    "headers": [*out, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})


def _serve(run: Path, **kw) -> server.ServerThread:
    kw.setdefault("open_browser", False)
    return server.serve([run], port=0, block=False, out=io.StringIO(), **kw)


# ----------------------------------------------------------------------------- the token


@pytest.fixture()
def guarded(run: Path) -> TestClient:
    app = server.create_app([run], allowed_hosts=[*serving.LOOPBACK_HOSTS, NAME], token=TOKEN)
    return TestClient(app, base_url=f"http://{NAME}")


def _error(resp) -> str:
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    return resp.json()["error"]


@pytest.mark.parametrize("url", ["/", "/js/app.js", "/api/runs", "/api/runs/remote-run/meta",
                                 "/api/runs/remote-run/activations/hidden/0/train"])
def test_without_the_token_every_path_is_401_and_a_wrong_one_403(guarded: TestClient, url: str) -> None:
    resp = guarded.get(url)
    assert resp.status_code == 401 and "?token=" in _error(resp)
    assert resp.headers["www-authenticate"].lower().startswith("token")
    for wrong in ("nope", TOKEN[:-1], TOKEN + "x", "é" * 8):
        resp = guarded.get(url, headers={"Authorization": f"token {wrong}".encode()})  # any bytes
        assert resp.status_code == 403 and "wrong access token" in _error(resp), wrong
        assert guarded.get(url, params={"token": wrong}).status_code == 403
    assert guarded.get(url, headers={"Authorization": f"token {TOKEN}"}).status_code == 200
    assert guarded.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_token_in_the_url_is_remembered_in_a_strict_httponly_cookie(run: Path) -> None:
    app = server.create_app([run], token=TOKEN)
    c = TestClient(app, base_url="http://127.0.0.1")
    first = c.get("/", params={"token": TOKEN})
    assert first.status_code == 200
    cookie = first.headers["set-cookie"]
    name = guard.token_cookie(TOKEN)
    assert cookie.startswith(f"{name}={TOKEN};")
    attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict"} <= attrs
    assert TOKEN not in name  # the cookie's name reveals nothing of the token
    assert first.headers["referrer-policy"] == "no-referrer"  # the token is in the address bar
    # The page's own requests carry no token in their URL: the cookie lets them through.
    again = c.get("/api/runs")
    assert again.status_code == 200 and "set-cookie" not in again.headers
    # Another server's cookie (another token, so another name) is not this one's.
    other = TestClient(app, base_url="http://127.0.0.1")
    other.cookies.set(guard.token_cookie("another-token-of-another-server"), TOKEN)
    assert other.get("/api/runs").status_code == 401
    forged = TestClient(app, base_url="http://127.0.0.1")
    forged.cookies.set(name, "guess")
    assert forged.get("/api/runs").status_code == 403


def test_loopback_without_a_token_asks_none(run: Path, monkeypatch) -> None:
    monkeypatch.delenv(serving.TOKEN_ENV, raising=False)
    srv = _serve(run)
    try:
        assert srv.app.state.token is None and srv.page_url == srv.url
        resp = httpx.get(srv.url + "api/runs", trust_env=False)
        assert resp.status_code == 200 and "set-cookie" not in resp.headers
        assert "referrer-policy" not in resp.headers
    finally:
        srv.stop()


def test_token_from_the_environment_or_generated_when_needed(monkeypatch) -> None:
    monkeypatch.delenv(serving.TOKEN_ENV, raising=False)
    assert serving.resolve_token(None, required=False) == (None, False)
    made, generated = serving.resolve_token(None, required=True)
    assert generated and re.fullmatch(r"[0-9a-f]{48}", made)
    assert serving.resolve_token(None, required=True)[0] != made  # fresh each time
    assert serving.resolve_token(TOKEN, required=False) == (TOKEN, False)
    monkeypatch.setenv(serving.TOKEN_ENV, TOKEN)
    assert serving.resolve_token(None, required=False) == (TOKEN, False)
    assert serving.resolve_token("given-on-the-command-line", required=True)[0] == "given-on-the-command-line"
    for bad in ("has space", "semi;colon", "plus+sign", "é-accent", "a&b=c"):
        with pytest.raises(GrandTourError, match="letters, digits"):
            serving.resolve_token(bad, required=True)


def test_allowed_host_names(monkeypatch) -> None:
    loop = serving.LOOPBACK_HOSTS
    assert serving.allowed_host_names("127.0.0.1") == loop
    assert serving.allowed_host_names("0.0.0.0") == loop  # a wildcard is no name of this machine
    assert serving.allowed_host_names("::") == loop
    assert serving.allowed_host_names("192.168.1.5") == (*loop, "192.168.1.5")  # given explicitly
    assert serving.allowed_host_names("0.0.0.0", ["Hub.Example.org", "10.0.0.7", "[fd00::1]"]) == (
        *loop, "hub.example.org", "10.0.0.7", "fd00::1")
    for bad in ("http://hub.example.org", "hub.example.org:443", "abc:443", "hub/path", "", "a b", "evil@x"):
        with pytest.raises(GrandTourError, match="--allow-host"):
            serving.allowed_host_names("127.0.0.1", [bad])


def test_serve_command_passes_allow_host_and_token(monkeypatch) -> None:
    seen = {}
    monkeypatch.setattr(serving, "serve", lambda runs, **kw: seen.update(kw, runs=runs))
    args = argparse.Namespace(runs=["r"], port=None, host="0.0.0.0", no_browser=True,
                              allow_host=["a.example", "b.example"], token=TOKEN)
    server.serve_command(args)
    assert seen["allowed_hosts"] == ["a.example", "b.example"] and seen["token"] == TOKEN
    server.serve_command(argparse.Namespace(runs=["r"], port=None, host=None, no_browser=True))
    assert seen["allowed_hosts"] == [] and seen["token"] is None  # an older parser: no new options


def test_allow_host_on_loopback_asks_a_token_and_prints_it(run: Path, monkeypatch) -> None:
    monkeypatch.delenv(serving.TOKEN_ENV, raising=False)
    out = io.StringIO()
    srv = server.serve([run], port=0, block=False, open_browser=False, out=out, allowed_hosts=[NAME])
    try:
        token = srv.app.state.token
        assert token and f"?token={token}" in out.getvalue() and srv.page_url in out.getvalue()
        assert NAME in out.getvalue()
        ok = httpx.get(srv.url + "api/runs", headers={"Host": NAME, "Authorization": f"token {token}"},
                       trust_env=False)
        assert ok.status_code == 200
        assert httpx.get(srv.url + "api/runs", headers={"Host": NAME}, trust_env=False).status_code == 401
        evil = httpx.get(srv.url + "api/runs", headers={"Host": "evil.example",
                                                        "Authorization": f"token {token}"}, trust_env=False)
        assert evil.status_code == 400  # the Host check comes first, token or not
    finally:
        srv.stop()


# ----------------------------------------------------------------------------- behind a proxy


@pytest.fixture()
def proxied(run: Path, monkeypatch):
    """The viewer (``--allow-host NAME``, a token) behind the proxy: ``(viewer, proxy, app)``."""
    monkeypatch.delenv(serving.TOKEN_ENV, raising=False)
    viewer = _serve(run, allowed_hosts=[NAME], token=TOKEN)
    proxy_app = Proxy(viewer.port)
    proxy = server.ServerThread(proxy_app, port=0).start()
    try:
        yield viewer, proxy, proxy_app
    finally:
        proxy.stop()
        viewer.stop()


def test_through_the_proxy_prefix_with_httpx(proxied) -> None:
    _, proxy, app = proxied
    base = f"http://127.0.0.1:{proxy.port}{app.prefix}/"
    with httpx.Client(trust_env=False, headers={"Host": f"{NAME}:{proxy.port}"}) as c:
        assert c.get(base).status_code == 401  # the proxy adds no credentials
        page = c.get(base, params={"token": TOKEN})
        assert page.status_code == 200 and "Grand Tour" in page.text
        # Every URL the page names is relative: it stays under the prefix, whatever it is.
        refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert refs and all(not r.startswith("/") for r in refs if not r.startswith("data:")), refs
        assert c.get(base + "api/runs").status_code == 200  # the cookie, through the proxy
        assert c.get(base + "js/app.js").headers["content-type"].startswith("text/javascript")
        redirect = c.get(f"http://127.0.0.1:{proxy.port}{app.prefix}")
        assert redirect.status_code == 301 and redirect.headers["location"] == f"{app.prefix}/"
    # A name that is neither this machine's nor given with --allow-host, through the same proxy.
    evil = httpx.get(base + "api/runs", headers={"Host": "evil.example", "Authorization": f"token {TOKEN}"},
                     trust_env=False)
    assert evil.status_code == 400


def test_the_page_works_behind_the_proxy_prefix(proxied) -> None:
    kit = _browser_kit()
    exe = kit.CHROMIUM if Path(kit.CHROMIUM).exists() else shutil.which("chromium")
    if exe is None:
        pytest.fail(f"chromium is missing ({kit.CHROMIUM}): apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    _, proxy, app = proxied
    origin = f"http://{NAME}:{proxy.port}"
    args = [*kit.CHROMIUM_ARGS, f"--host-resolver-rules=MAP {NAME} 127.0.0.1"]
    errors, requests = [], []

    # Its own chromium (it needs --host-resolver-rules), driven from a thread of its own: the
    # browser tests' session-wide Playwright may already run an event loop in this one.
    def drive() -> None:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, headless=True, args=args)
            try:
                page = browser.new_context(viewport={"width": 1000, "height": 640}).new_page()
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("request", lambda r: requests.append(r.url))
                # Without the token the page is refused; with it, it loads and draws.
                assert page.goto(f"{origin}{app.prefix}/").status == 401
                assert page.goto(f"{origin}{app.prefix}/?token={TOKEN}").status == 200
                page.wait_for_function("window.grandtour !== undefined", timeout=15000)
                page.evaluate("window.grandtour.ready")
                state = page.evaluate("window.grandtour.state()")
                assert state["status"] == "ready", state.get("error")
                assert state["epoch"] == 1
                before = page.evaluate("window.grandtour.projectedPositions('train')")
                assert len(before) == 90
                img = np.asarray(_pixels(page))
                assert (img.max(axis=-1) - img.min(axis=-1) > 60).sum() > 200  # coloured points drawn
                # Change epoch: the data of epoch 0 comes through the proxy too.
                page.keyboard.press("ArrowLeft")
                page.wait_for_function("window.grandtour.state().epoch === 0 && "
                                       "window.grandtour.state().epochPos === 0", timeout=15000)
                after = page.evaluate("window.grandtour.projectedPositions('train')")
                assert not np.allclose(np.asarray(before, float), np.asarray(after, float))
                assert not errors, errors
            finally:
                browser.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(drive).result()
    asked = [u for u in requests if u.startswith(origin)]
    assert any("/activations/hidden/0/train" in u or "/activations/out/0/train" in u for u in asked)
    # Nothing the page asked for escaped the prefix.
    assert all(u.startswith(f"{origin}{app.prefix}/") for u in asked), asked
    assert all(not p.startswith(f"{app.prefix}/") for p in app.seen)  # the proxy stripped it


def _pixels(page):
    from PIL import Image

    return Image.open(io.BytesIO(page.screenshot())).convert("RGB")
