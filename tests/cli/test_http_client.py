"""The one HTTP client (hooks/common/http.py), as the pip driver uses it: a real server on
127.0.0.1 (tests/support/http.py). The pip driver's downloads used their own urllib code
before; these show what it gains by sharing fetch's client (credentials, retries, redaction)."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hooks.common import http
from hooks.common.errors import FetchError
from hooks.pip import build
from hooks.pip.store import Artifact
from tests.support.http import FetchServer

BODY = b"wheel bytes " * 1000
DIGEST = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server() -> Iterator[FetchServer]:
    srv = FetchServer().start()
    yield srv
    srv.stop()


def _art(url: str, sha256: str = DIGEST) -> Artifact:
    return Artifact(name="alpha", version="1.0", url=url, sha256=sha256,
                    filename="alpha-1.0-py3-none-any.whl", requires_python=None, yanked=False,
                    is_direct=False)


def test_pip_download_sends_url_credentials_to_the_origin_only(server: FetchServer,
                                                               tmp_path: Path) -> None:
    """user:password@ in an index URL: a Basic header to the origin, none to a redirect."""
    server.put("/simple/a.whl", BODY)
    server.put("/moved/a.whl", b"", location=server.url("/simple/a.whl").replace("127.0.0.1",
                                                                                 "localhost"))
    url = server.url("/moved/a.whl").replace("://", "://alice:s3cret@")
    got = build.download(_art(url), tmp_path)
    assert got.read_bytes() == BODY
    first, second = server.hits[0], server.hits[-1]
    assert first.headers.get("authorization", "").startswith("Basic ")
    assert "authorization" not in second.headers          # never forwarded to the redirect


def test_pip_download_mismatch_leaves_nothing_and_names_no_secret(server: FetchServer,
                                                                  tmp_path: Path) -> None:
    server.put("/a.whl?token=abc", BODY)
    url = server.url("/a.whl?token=abc").replace("://", "://alice:s3cret@")
    out = tmp_path / "dl"
    out.mkdir()
    with pytest.raises(FetchError) as err:
        build.download(_art(url, sha256="0" * 64), out)
    assert "mismatch" in str(err.value) and "s3cret" not in str(err.value)
    assert "abc" not in str(err.value) and err.value.exit_code == 1
    assert list(out.iterdir()) == []                     # no partial file, no temp left


def test_retries_a_server_error_then_succeeds(server: FetchServer, tmp_path: Path) -> None:
    server.put("/a.whl", BODY, fail_left=1)
    dest = http.download(server.url("/a.whl"), tmp_path / "a.whl", DIGEST, retries=2,
                         retry_delay=0.01)
    assert dest.read_bytes() == BODY and server.count("/a.whl") == 2


def test_gives_up_after_the_retries_with_exit_5(server: FetchServer, tmp_path: Path) -> None:
    server.put("/a.whl", BODY, fail_left=5)
    out = tmp_path / "dl"
    out.mkdir()
    with pytest.raises(FetchError) as err:
        http.download(server.url("/a.whl"), out / "a.whl", DIGEST, retries=1, retry_delay=0.01)
    assert err.value.exit_code == 5 and "after 2 attempts" in str(err.value)
    assert server.count("/a.whl") == 2 and list(out.iterdir()) == []


def test_only_http_and_https(tmp_path: Path) -> None:
    src = tmp_path / "src.whl"
    src.write_bytes(BODY)
    with pytest.raises(FetchError) as err:
        http.download(src.as_uri(), tmp_path / "out.whl", DIGEST)
    assert err.value.exit_code == 2 and not (tmp_path / "out.whl").exists()


def test_probe_tells_reachable_from_down(server: FetchServer) -> None:
    server.put("/simple/", b"<html></html>")
    assert build.probe_index(server.url("/simple/")) is None
    assert build.probe_index(server.url("/nothing/")) is None        # 404: it answered
    with socket.socket() as held:  # bound, not listening: refused, and no other test's
        held.bind(("127.0.0.1", 0))  # server can take the port meanwhile (a stopped one's can)
        port = held.getsockname()[1]
        assert build.probe_index(f"http://127.0.0.1:{port}/simple/") == "connection refused"
    assert build.probe_index("http://no-such-host.invalid/simple/").startswith(
        "name resolution failed")


def test_redact_hides_passwords_and_tokens_keeps_git_scp_urls() -> None:
    assert http.redact("https://u:p@h.example:8443/x?token=t&v=1#f") == \
        "https://h.example:8443/x?token=REDACTED&v=1"
    assert http.redact("git@github.com:org/repo.git") == "git@github.com:org/repo.git"
    assert http.redact("file:///srv/repo.git") == "file:///srv/repo.git"
