"""A fleet behind a corporate HTTP proxy reaches its store through it: nginx WebDAV and moto S3
(SigV4 signed for the store's Host, not the proxy's) by absolute-form requests, an HTTPS store
through a CONNECT tunnel checked against its own CA file; no_proxy/NO_PROXY sends a store
direct; the proxy's and the store's secrets reach no warning, status or state file.

The store's address is one where nothing listens: only the proxy knows the way to the server
(its route table), as only the proxy can reach the world on such a network."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cache_core import PackageCache, set_warning_handler
from tests.support import until_stopped
from tests.support.proxy import ProxyServer
from tests.support.remote import BEARER, Moto, Nginx, nginx_available, s3_store

KEY = "deb:hello_2.10-3_amd64.deb"
PROXY_SECRET = "proxy-pa55word-http25"
PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
             "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

needs_nginx = pytest.mark.skipif(not nginx_available(), reason="nginx is not installed")


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port on 127.0.0.1 held bound but not listening: a direct connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    got: list[str] = []
    set_warning_handler(got.append)
    yield got
    set_warning_handler(None)


def _proxy(real: int, dead: int, credentials: str | None = None) -> ProxyServer:
    return ProxyServer(credentials, routes={("127.0.0.1", dead): ("127.0.0.1", real)})


def _round_trip(make_cache: Callable[..., PackageCache], entry: dict[str, Any], keypair: tuple[str, str],
                tmp_path: Path) -> bytes:
    """Put a blob through cache a (uploaded), get it on an empty cache b; b's copy."""
    data = os.urandom(200_000)
    src = tmp_path / "blob.deb"
    src.write_bytes(data)
    a = make_cache("a", [dict(entry, mode="rw", signing_key_file=keypair[0])])
    a.put(KEY, str(src))
    assert a.remote.tier.drain()["uploaded"] == 1
    b = make_cache("b", [dict(entry, trusted_public_keys=[keypair[1]])])
    path = b.get(KEY)
    assert path is not None
    assert Path(path).read_bytes() == data
    return data


@needs_nginx
def test_webdav_store_reached_only_through_the_proxy(nginx: Nginx, dead_port: int, make_cache,
                                                      keypair, tmp_path, monkeypatch) -> None:
    with _proxy(nginx.port, dead_port, f"fleet:{PROXY_SECRET}") as proxy:
        monkeypatch.setenv("http_proxy", f"http://fleet:{PROXY_SECRET}@127.0.0.1:{proxy.port}")
        _round_trip(make_cache, {"url": f"http://127.0.0.1:{dead_port}/store", "read_timeout": 20},
                    keypair, tmp_path)
        assert proxy.count("PUT") >= 2 and proxy.count("GET") >= 1   # object and record
        assert all(f" http://127.0.0.1:{dead_port}/store/" in line for line in proxy.log)
        assert nginx.requests("PUT", "/store/cas/") == 1


def test_s3_store_signed_for_its_own_host_through_the_proxy(moto_server: Moto, dead_port: int,
                                                             make_cache, keypair, tmp_path,
                                                             monkeypatch) -> None:
    store = s3_store(moto_server, "proxy")
    with _proxy(moto_server.port, dead_port) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)   # upper case is read as well
        _round_trip(make_cache, store.remote(endpoint=f"http://127.0.0.1:{dead_port}"), keypair,
                    tmp_path)
        assert proxy.count("PUT") >= 2 and proxy.count("GET") >= 1


@needs_nginx
@pytest.mark.parametrize("name", ["no_proxy", "NO_PROXY"])
def test_no_proxy_sends_the_store_direct(nginx: Nginx, make_cache, keypair, tmp_path, monkeypatch,
                                         name: str) -> None:
    with ProxyServer() as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv(name, "localhost,127.0.0.1")
        _round_trip(make_cache, {"url": nginx.url(), "read_timeout": 20}, keypair, tmp_path)
        assert proxy.log == []


@needs_nginx
def test_https_store_through_a_connect_tunnel_checked_against_its_ca_file(
        tmp_path: Path, dead_port: int, make_cache, keypair, monkeypatch, warnings) -> None:
    for ng in until_stopped(Nginx(tmp_path / "tls", tls=True)):
        with _proxy(ng.port, dead_port) as proxy:
            monkeypatch.setenv("https_proxy", proxy.url)
            monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # not the one for https
            entry = {"url": f"https://127.0.0.1:{dead_port}/store", "read_timeout": 20}
            _round_trip(make_cache, dict(entry, ca_file=ng.ca_file), keypair, tmp_path)
            assert proxy.log and all(line == f"CONNECT 127.0.0.1:{dead_port}"
                                     for line in proxy.log)
            # without the store's CA the tunnel opens but the certificate is refused: a miss
            c = make_cache("c", [dict(entry, trusted_public_keys=[keypair[1]])])
            assert c.get(KEY) is None
            assert any("certificate" in w.lower() for w in warnings), warnings


@needs_nginx
def test_secrets_reach_no_warning_status_or_state(nginx: Nginx, dead_port: int, make_cache,
                                                  keypair, tmp_path, monkeypatch, warnings,
                                                  capsys) -> None:
    with _proxy(nginx.port, dead_port, f"fleet:{PROXY_SECRET}") as proxy:
        monkeypatch.setenv("http_proxy", f"http://fleet:wrong-{PROXY_SECRET}@127.0.0.1:{proxy.port}")
        entry = {"url": f"http://alice:url-pa55-http25@127.0.0.1:{dead_port}/auth",
                 "token": BEARER, "read_timeout": 20}
        c = make_cache("c", [entry])
        assert c.get(KEY) is None                              # 407 from the proxy: a miss
        assert proxy.count() >= 1
        monkeypatch.setenv("http_proxy", f"http://fleet:{PROXY_SECRET}@127.0.0.1:{dead_port}")
        d = make_cache("d", [entry])
        assert d.get(KEY) is None                              # the proxy is down: a miss
        assert any(f"via proxy 127.0.0.1:{dead_port}" in w for w in warnings), warnings
        shown = "\n".join([*warnings, capsys.readouterr().err,
                           json.dumps(c.remote.tier.status(), default=str),
                           json.dumps(d.remote.tier.status(), default=str),
                           json.dumps(c.stats(), default=str), repr(c.config)])
        shown += "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*.json"))
        for secret in (PROXY_SECRET, "url-pa55-http25", BEARER):
            assert secret not in shown


@needs_nginx
def test_a_missing_ca_file_disables_the_store_with_one_warning(
        tmp_path: Path, make_cache, keypair, monkeypatch, warnings) -> None:
    """A configured ca_file that does not exist is not replaced by the system bundle (which here
    trusts the store): the store is skipped with one warning naming ca_file; the caller gets a
    miss."""
    for ng in until_stopped(Nginx(tmp_path / "tls", tls=True)):
        monkeypatch.setenv("SSL_CERT_FILE", ng.ca_file)   # the "system" bundle trusts the store
        entry = {"url": f"https://127.0.0.1:{ng.port}/store", "read_timeout": 20}
        _round_trip(make_cache, entry, keypair, tmp_path)
        served = ng.requests("GET", "/store/")
        missing = str(tmp_path / "no-such-ca.pem")
        c = make_cache("c", [dict(entry, ca_file=missing, trusted_public_keys=[keypair[1]])])
        assert c.get(KEY) is None and c.get("deb:other_1_all.deb") is None
        assert ng.requests("GET", "/store/") == served      # nothing sent to the store
        assert len(warnings) == 1 and "ca_file" in warnings[0] and missing in warnings[0], warnings
