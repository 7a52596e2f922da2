"""The server's defences as an attacker would probe them (issue 13, "Server"): the Host
check on every bind address, symbolic links out of a run or the page, HEAD, request
limits, header values made safe in one place, and the largest epochs.

Most requests go over a real socket to uvicorn (ServerThread), written byte for byte:
HTTP clients normalise what an attacker would not, and h11 refuses a bad response header
only after the handler returned, which Starlette's TestClient never shows.
"""

from __future__ import annotations

import io
import re
import socket
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
h11_abnf = pytest.importorskip("h11._abnf")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_server import N_TRAIN, SECRET, _make_run, _make_web, _write_epoch  # noqa: E402

from grandtour import server  # noqa: E402
from grandtour.errors import GrandTourError  # noqa: E402
from grandtour.server import guard, serving, wire  # noqa: E402
from grandtour.server import runs as served_runs  # noqa: E402
from grandtour.store import Run, RunWriter  # noqa: E402

TOKEN = "safety-tests-token-0123456789abcdef"
FIELD_VALUE = re.compile(h11_abnf.field_value)


def raw(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """Send ``request`` as written; ``(status, headers (lower-case names), body)``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split(" ", 2)[1]), headers, body


def get(port: int, target: str, host: str = "127.0.0.1", method: str = "GET", extra: str = "") -> tuple:
    return raw(port, f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
                     .encode("latin-1"))


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    return _make_run(tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server on loopback over a run and a page, for the tests that only read."""
    root = tmp_path_factory.mktemp("safety")
    run, web = _make_run(root), _make_web(root)
    with server.ServerThread(server.create_app([run], web_dir=web)) as srv:
        yield srv


# ----------------------------------------------------------------------------- Host


BAD_HOSTS = ["127.0.0.1:8799@evil.com", "localhost@evil.com", "user@127.0.0.1", "evil.example",
             "evil.example:8787", "127.0.0.1.evil.com", "localhost.evil.com", "127.0.0.1:80:80",
             "127.0.0.1:99999", "127.0.0.1:", "[::1]x", "[::1]:80@evil.com", "127.0.0.1/x", "127.0.0.1 evil",
             "", "%31%32%37.0.0.1", "::1"]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_a_malformed_or_foreign_host_is_refused(shared, host: str) -> None:
    status, _, body = get(shared.port, "/api/runs", host=host)
    assert status == 400, (host, status)
    assert b"my-run" not in body


def test_host_header_names_parse_strictly() -> None:
    assert guard.host_name("127.0.0.1:8799") == "127.0.0.1"
    assert guard.host_name("LocalHost") == "localhost"
    assert guard.host_name("[::1]:8787") == "::1"
    assert guard.host_name("hub.example.org") == "hub.example.org"
    for bad in BAD_HOSTS:
        assert guard.host_name(bad) in (None, "evil.example", "127.0.0.1.evil.com", "localhost.evil.com"), bad


def test_two_host_headers_are_refused(shared) -> None:
    status, _, _ = raw(shared.port, b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n"
                                    b"Connection: close\r\n\r\n")
    assert status == 400


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0", "::", "192.168.1.5"])
def test_evil_host_is_refused_on_every_bind(run_dir: Path, monkeypatch, bind: str) -> None:
    # Bind loopback for real, but take the code path of each --host.
    monkeypatch.setattr(serving, "_bind_search", lambda host, port: serving._bind("127.0.0.1", 0))
    srv = server.serve([run_dir], host=bind, port=0, block=False, open_browser=False, out=io.StringIO(),
                       token=TOKEN)
    auth = f"Authorization: token {TOKEN}\r\n"
    try:
        for host in ("evil.example", "evil.example:8787", "127.0.0.1:8799@evil.com", "10.9.8.7"):
            assert get(srv.port, "/api/runs", host=host, extra=auth)[0] == 400, (bind, host)
        assert get(srv.port, "/api/runs", host="localhost:1234", extra=auth)[0] == 200
        if bind == "192.168.1.5":  # an address given explicitly is a name this machine answers to
            assert get(srv.port, "/api/runs", host="192.168.1.5:8787", extra=auth)[0] == 200
    finally:
        srv.stop()


# ----------------------------------------------------------------------------- symbolic links


@pytest.mark.parametrize("kind", ["file", "directory", "dangling"])
def test_a_run_with_a_link_out_of_it_is_refused(run_dir: Path, kind: str) -> None:
    outside = run_dir.parent / "secret.txt"
    target = {"file": outside, "directory": run_dir.parent, "dangling": run_dir.parent / "gone"}[kind]
    (run_dir / "planted").symlink_to(target)
    with pytest.raises(GrandTourError, match="symbolic links.*planted"):
        server.create_app([run_dir])


def test_a_link_inside_the_run_is_allowed(run_dir: Path) -> None:
    (run_dir / "alias.json").symlink_to(run_dir / "zarr.json")
    app = server.create_app([run_dir])
    from fastapi.testclient import TestClient

    assert TestClient(app, base_url="http://127.0.0.1").get("/api/runs/my-run/meta").status_code == 200


def test_a_link_that_arrives_with_a_new_epoch_stops_the_run(run_dir: Path) -> None:
    """A link written into a served run (while it trains) is found with the next epoch."""
    with server.ServerThread(server.create_app([run_dir])) as srv:
        assert get(srv.port, "/api/runs/my-run/activations/fc/1/train")[0] == 200
        (run_dir / "planted").symlink_to(run_dir.parent / "secret.txt")
        _write_epoch(RunWriter.open(run_dir), 2)
        status, _, body = get(srv.port, "/api/runs/my-run/meta")
        assert status == 500 and b"symbolic links" in body and b"planted" in body
        for url in ("/api/runs/my-run/activations/fc/2/train", "/api/runs/my-run/labels/train",
                    "/api/runs/my-run/activations/fc/0/train"):
            status, _, body = get(srv.port, url)
            assert status == 500 and SECRET.encode() not in body, url
        assert get(srv.port, "/api/runs")[0] == 200  # the listing stands; the run's requests say why


def test_links_out_of_the_page_are_not_followed(run_dir: Path, tmp_path: Path) -> None:
    web = _make_web(tmp_path)
    (web / "ext").symlink_to(web.parent)  # a directory outside the page
    (web / "js" / "out.js").symlink_to(web.parent / "outside.txt")
    (web / "js" / "in.js").symlink_to(web / "js" / "app.js")  # inside: served
    with server.ServerThread(server.create_app([run_dir], web_dir=web)) as srv:
        for target in ("/ext/outside.txt", "/static/ext/outside.txt", "/js/out.js", "/static/js/out.js"):
            status, _, body = get(srv.port, target)
            assert status == 404 and SECRET.encode() not in body, target
        assert get(srv.port, "/js/in.js")[0] == 200


# ----------------------------------------------------------------------------- HEAD


HEAD_URLS = ["/", "/js/app.js", "/api/runs", "/api/runs/my-run/meta", "/api/runs/my-run/activations/fc/1/train",
             "/api/runs/my-run/labels/test", "/api/runs/my-run/predictions/0/train",
             "/api/runs/my-run/metrics/train", "/api/runs/my-run/images/test",
             "/api/runs/my-run/adversarial/default/fc"]


@pytest.mark.parametrize("url", HEAD_URLS)
def test_head_answers_the_headers_of_get_without_a_body(shared, url: str) -> None:
    g_status, g_headers, g_body = get(shared.port, url)
    h_status, h_headers, h_body = get(shared.port, url, method="HEAD")
    assert g_status == h_status == 200 and g_body and h_body == b""
    g_headers.pop("date", None)
    h_headers.pop("date", None)
    assert h_headers == g_headers and int(h_headers["content-length"]) == len(g_body)


def test_head_of_an_unknown_path_is_404_and_other_methods_405(shared) -> None:
    assert get(shared.port, "/api/runs/nope/meta", method="HEAD")[:2][0] == 404
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert get(shared.port, "/api/runs", method=method)[0] == 405, method


# ----------------------------------------------------------------------------- limits


def test_request_limits(shared) -> None:
    port = shared.port
    assert get(port, "/api/runs/" + "a" * guard.MAX_URL_BYTES)[0] == 414
    assert get(port, "/api/runs?" + "q" * guard.MAX_URL_BYTES)[0] == 414
    many = "".join(f"X-Filler-{i}: {i}\r\n" for i in range(guard.MAX_HEADERS + 1))
    assert get(port, "/api/runs", extra=many)[0] == 431
    # No request carries a body: refused before any route reads it, on GET as on POST.
    assert get(port, "/api/runs", extra="Content-Length: 5\r\n")[0] == 413
    status, _, _ = raw(port, b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
                             b"Connection: close\r\n\r\nhello")
    assert status == 413
    status, _, _ = raw(port, b"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                             b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert status == 413
    # Headers beyond 16 KiB: refused whole (the guard) or sent in pieces (uvicorn's h11).
    huge = f"X-Huge: {'h' * guard.MAX_HEADER_BYTES}\r\n"
    assert get(port, "/api/runs", extra=huge)[0] == 431
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for _ in range(3):  # never ends: h11 gives up at its cap
            s.sendall(b"X-Piece: " + b"p" * (serving.MAX_HEADER_BYTES // 2) + b"\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 4")
    assert get(port, "/api/runs")[0] == 200  # and the server serves on


def test_uvicorn_is_configured_with_the_limits(run_dir: Path) -> None:
    srv = server.ServerThread(server.create_app([run_dir]))
    try:
        assert srv.config.http == "h11"
        assert srv.config.h11_max_incomplete_event_size == serving.MAX_HEADER_BYTES
        assert srv.config.limit_concurrency == serving.MAX_CONNECTIONS
    finally:
        srv.sock.close()


# ----------------------------------------------------------------------------- header values


@given(st.text(), st.integers(min_value=0, max_value=400))
def test_header_text_is_always_a_valid_field_value(text: str, limit: int) -> None:
    out = wire.header_text(text, limit=limit)
    assert out.isascii() and len(out) <= limit
    assert FIELD_VALUE.fullmatch(out), repr(out)  # what h11 accepts: no edge spaces, no controls
    assert all(32 <= ord(c) < 127 for c in out)
    assert wire.header_text(out, limit=limit) == out  # once is enough


def test_header_text_cut_never_ends_in_a_space() -> None:
    note = "a" * (wire.HEADER_TEXT_LIMIT - 1) + " and the rest of a long note"
    out = wire.header_text(note)
    assert out == "a" * (wire.HEADER_TEXT_LIMIT - 1)
    assert wire.header_text("caf\u00e9 \u2192 r\u00e9seau\r\nSet-Cookie: x") == "cafe ? reseau Set-Cookie: x"


def test_a_long_note_and_a_non_ascii_layer_reach_the_page(run_dir: Path, monkeypatch) -> None:
    """The issue's case: a note cut at 300 characters ended in a space, h11 refused the
    header after the handler returned, and the page got an empty reply."""
    n, k = N_TRAIN, 5
    note = "x" * (wire.HEADER_TEXT_LIMIT - 1) + " then more\r\nX-Injected: 1"
    fake = types.SimpleNamespace(
        start=np.zeros((n, k), np.float32), end=np.ones((n, k), np.float32), previous="entrée→1",
        method="lstsq", exact=False, note=note, residual=0.25, variance_kept=(1.0, 0.5), reduced=(False, True),
        basis_in=np.eye(k), basis_out=np.eye(k))
    monkeypatch.setattr(served_runs.ServedRun, "transition", lambda self, layer, epoch, split, source=None: fake)
    with server.ServerThread(server.create_app([run_dir])) as srv:
        status, headers, body = get(srv.port, "/api/runs/my-run/transition/fc/1/train")
    assert status == 200 and len(body) == 2 * n * k * 2
    assert headers["x-note"] == "x" * (wire.HEADER_TEXT_LIMIT - 1) and "x-injected" not in headers
    assert headers["x-previous"] == "entree?1"
    assert headers["x-basis"] == "/api/runs/my-run/transition/fc/1/train/basis"


# ----------------------------------------------------------------------------- epochs


def test_the_largest_epoch_the_store_holds_is_served(tmp_path: Path) -> None:
    big = served_runs.MAX_EPOCH
    assert big == 2**31 - 1
    path = tmp_path / "big"
    Run.from_arrays(path, {"x": np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)},
                    np.array([0, 1, 0, 1]), epochs=[0, big])
    with server.ServerThread(server.create_app([path])) as srv:
        status, headers, body = get(srv.port, f"/api/runs/big/activations/x/{big}/train")
        assert status == 200 and headers["x-shape"] == "4,3"
        np.testing.assert_array_equal(np.frombuffer(body, "<f2").reshape(4, 3), np.arange(12, 24).reshape(4, 3))
        status, _, body = get(srv.port, f"/api/runs/big/activations/x/{big + 1}/train")
        assert status == 400 and str(big).encode() in body  # the message gives the range
        assert get(srv.port, f"/api/runs/big/predictions/{2**63}/train")[0] == 400


def test_a_damaged_alignment_disables_only_what_needs_it(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from test_server import BASE, _aligned_run

    from grandtour import align
    from grandtour.store.schema import COMMIT_FILE

    path = _aligned_run(tmp_path)
    align.align_run(path, threshold=6, progress=False)
    (path / align.ALIGNMENT_GROUP / COMMIT_FILE).write_text("{ not json", encoding="utf-8")
    c = TestClient(server.create_app([path]), base_url=BASE)
    meta = c.get("/api/runs/aligned/meta")
    assert meta.status_code == 200
    doc = meta.json()
    assert doc["aligned"] is False and "--force" in doc["alignment_error"]
    # Every layer is still served, in its own coordinates (no reduction without the alignment).
    for layer in ("input", "fc", "relu", "wide"):
        resp = c.get(f"/api/runs/aligned/activations/{layer}/1/train")
        assert resp.status_code == 200, resp.text
        assert "x-reduced" not in {k.lower() for k in resp.headers}
    assert c.get("/api/runs/aligned/transition/fc/1/train").status_code >= 400
