"""The one HTTP client policy (cache_core.net) as the drivers' client uses it: proxies from the
environment (all_proxy too), no_proxy with ports, IPv6 and suffixes, and redaction; a real
proxy and server on 127.0.0.1 (tests/support)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from cache_core import net
from hooks.common import http
from tests.support.http import FetchServer
from tests.support.proxy import ProxyServer

ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
       "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[FetchServer]:
    srv = FetchServer().start()
    yield srv
    srv.stop()


@pytest.mark.parametrize(("host", "port", "no_proxy", "bypass"), [
    ("127.0.0.1", 80, "localhost,127.0.0.1", True),
    ("a.example.com", 443, ".example.com", True),
    ("example.com", 443, "example.com", True),
    ("badexample.com", 443, "example.com", False),
    ("anything", 1, "*", True),
    ("h", 8080, "h:8080", True),
    ("h", 80, "h:8080", False),
    ("::1", 80, "[::1]", True),
    ("::1", 8, "[::1]:8", True),
    ("h", 80, " , ", False),
])
def test_no_proxy_entries(host: str, port: int, no_proxy: str, bypass: bool) -> None:
    assert net.bypassed(host, port, no_proxy) is bypass


def test_proxy_for_reads_either_case_and_all_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert net.proxy_for("http", "h", 80) is None
    monkeypatch.setenv("ALL_PROXY", "http://u:p%40ss@127.0.0.1:3128")
    proxy = net.proxy_for("https", "h", 443)
    assert proxy is not None and proxy.display == "127.0.0.1:3128"
    assert proxy.authorization == "Basic dTpwQHNz"          # u:p@ss, unquoted
    assert "p@ss" not in repr(proxy.display)
    monkeypatch.setenv("HTTP_PROXY", "127.0.0.1:8123")      # no scheme: http://
    assert net.proxy_for("http", "h", 80) == net.Proxy("127.0.0.1", 8123)
    monkeypatch.setenv("NO_PROXY", "h")
    assert net.proxy_for("http", "h", 80) is None and net.goes_direct("https://h/x")


def test_the_drivers_client_goes_through_all_proxy_and_honours_no_proxy(
        server: FetchServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.put("/x.whl", b"through the proxy")
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        port = dead.getsockname()[1]
        with ProxyServer(routes={("127.0.0.1", port): ("127.0.0.1", server.port)}) as proxy:
            monkeypatch.setenv("all_proxy", proxy.url)
            url = f"http://127.0.0.1:{port}/x.whl"
            assert http.get(url)[::2] == (200, b"through the proxy")
            assert proxy.log == [f"GET {url}"]
            monkeypatch.setenv("no_proxy", f"127.0.0.1:{port}")
            assert http.get(url)[0] == 0                     # direct: nothing listens there
            assert len(proxy.log) == 1


def test_redact_keeps_what_is_safe() -> None:
    assert net.redact("https://u:p@[::1]:8443/x?sig=1&v=2") == "https://[::1]:8443/x?sig=REDACTED&v=2"
    assert net.redact("s3://bucket/prefix") == "s3://bucket/prefix"
    assert net.has_secret("https://h/x?X-Amz-Credential=a") and not net.has_secret("https://h/x")
    assert net.scrub("error: token abcd1234 refused", ["abcd1234", "ab"]) == \
        "error: token *** refused"


def test_a_socks_all_proxy_is_not_an_http_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("all_proxy", "socks5://127.0.0.1:1080")
    assert net.proxy_for("https", "h", 443) is None
    monkeypatch.setenv("https_proxy", "https://127.0.0.1:3128")   # plain HTTP to it, as urllib
    assert net.proxy_for("https", "h", 443) == net.Proxy("127.0.0.1", 3128)


def test_a_refusing_proxy_names_no_secret(server: FetchServer, tmp_path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Wrong proxy credentials: the download fails with one message that quotes neither the
    proxy's password nor the URL's."""
    from hooks.common.errors import FetchError

    server.put("/y.whl", b"never")
    with ProxyServer("fleet:right-pa55") as proxy:
        monkeypatch.setenv("http_proxy", f"http://fleet:wrong-pa55-http25@127.0.0.1:{proxy.port}")
        url = server.url("/y.whl?token=tok-s3cret").replace("://", "://al:url-pa55@")
        with pytest.raises(FetchError) as err:
            http.download(url, tmp_path / "y.whl", retries=0)
        assert proxy.auth_seen and "407" in str(err.value)
        for secret in ("wrong-pa55-http25", "url-pa55", "tok-s3cret"):
            assert secret not in str(err.value)


def _moved_to(server: FetchServer, target: str) -> str:
    """A URL on server that answers 302 to target."""
    server.put("/moved", b"", location=target)
    return server.url("/moved")


def test_proxy_credentials_never_follow_a_redirect_to_a_direct_host(
        server: FetchServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The origin, reached through a proxy that needs credentials, redirects to a host that
    no_proxy sends direct: that host sees no Proxy-Authorization (urllib copied it)."""
    other = FetchServer().start()
    try:
        other.put("/x.whl", b"direct")
        url = _moved_to(server, other.url("/x.whl").replace("127.0.0.1", "localhost"))
        with ProxyServer("fleet:pr0xy-pa55") as proxy:
            monkeypatch.setenv("http_proxy", f"http://fleet:pr0xy-pa55@127.0.0.1:{proxy.port}")
            monkeypatch.setenv("no_proxy", "localhost")
            assert http.get(url)[::2] == (200, b"direct")
            assert proxy.log == [f"GET {url}"] and proxy.auth_seen   # the first hop: proxied
        [hit] = other.requests("/x.whl")
        assert "proxy-authorization" not in hit.headers, hit.headers
    finally:
        other.stop()


def test_authorization_and_cookies_stay_on_their_host(server: FetchServer) -> None:
    """A header the caller set (Authorization, Cookie) follows a redirect on the same host and
    port, never one to another host."""
    other = FetchServer().start()
    try:
        other.put("/x.whl", b"elsewhere")
        server.put("/here.whl", b"here")
        secret = {"Authorization": "Bearer t0ken-http", "Cookie": "s=c00kie-http"}
        for target, srv, body in ((server.url("/here.whl"), server, b"here"),
                                  (other.url("/x.whl").replace("127.0.0.1", "localhost"), other,
                                   b"elsewhere")):
            url = _moved_to(server, target)
            with net.opener().open(http.request(url, dict(secret)), timeout=10) as resp:
                assert resp.read() == body
            hit = srv.hits[-1]
            assert ("authorization" in hit.headers) is (srv is server), hit.headers
            assert ("cookie" in hit.headers) is (srv is server), hit.headers
    finally:
        other.stop()


def test_a_missing_ca_file_is_an_error_not_the_system_bundle(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CA file the caller names that does not exist fails the TLS request (as pip does with a
    bad PIP_CERT), even where the system bundle would accept the server."""
    from tests.support.remote import self_signed_cert

    cert = self_signed_cert(tmp_path)
    srv = FetchServer(tls=(cert, str(tmp_path / "key.pem"))).start()
    try:
        srv.put("/x.whl", b"tls")
        monkeypatch.setenv("SSL_CERT_FILE", cert)   # the "system" bundle trusts this server
        assert http.get(srv.url("/x.whl"))[::2] == (200, b"tls")
        assert http.get(srv.url("/x.whl"), cafile=cert)[0] == 200
        missing = str(tmp_path / "no-such-ca.pem")
        assert http.get(srv.url("/x.whl"), cafile=missing)[0] == 0
        assert http.probe(srv.url("/x.whl"), cafile=missing) is not None
        with pytest.raises(FileNotFoundError):
            net.ssl_context(missing)
    finally:
        srv.stop()
