"""Listing an S3 store is bounded and its refusal is one clear line: a bucket policy denying
ListBucket makes ``remote pull --all`` say so (exit 5, no traceback, no breaker); a lying server
(pages that never end, a continuation token that comes back, a page too large) ends the listing
with a store error instead of running for ever."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import yaml

from cache_core.storage.remote import s3
from cache_core.storage.remote.base import ListRefused, RemoteError, make_backend
from cache_core.storage.remote.config import parse_remotes
from tests.support.cli import run_cli
from tests.support.http import FaultServer, Handler, Hit, HttpServer


def _entry(url: str) -> dict[str, object]:
    return {"url": "s3://fleet/pkgcache", "endpoint": url, "region": "us-east-1",
            "access_key_id": "AKIDCOREFIX", "secret_access_key": "corefix-secret-key"}


class _Pages:
    """ListObjectsV2 that lies: ``mode`` "endless" (a new token on every page), "loop" (the
    same token again) or "huge" (one page far larger than any listing)."""

    protocol = "HTTP/1.1"

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.n = itertools.count()

    def serve(self, h: Handler, hit: Hit) -> None:
        i = next(self.n)
        token = "same" if self.mode == "loop" else f"t{i}"
        item = (f"<Contents><Key>pkgcache/cas/{i:064x}</Key><Size>1</Size>"
                "<LastModified>2026-12-06T03:24:14.000Z</LastModified></Contents>")
        if self.mode == "huge":
            item += "<Pad>" + "x" * (s3.MAX_LIST_PAGE + 10) + "</Pad>"
        body = (f"<ListBucketResult>{item}<IsTruncated>true</IsTruncated>"
                f"<NextContinuationToken>{token}</NextContinuationToken></ListBucketResult>")
        h.reply(hit, 200, body.encode(), [("Content-Type", "application/xml")])


@pytest.fixture
def lying() -> Iterator:
    servers = []

    def start(mode: str) -> HttpServer:
        srv = HttpServer(_Pages(mode)).start()
        servers.append(srv)
        return srv
    yield start
    for srv in servers:
        srv.stop()


def _backend(url: str):
    return make_backend(parse_remotes([_entry(url)], "test")[0])


@pytest.mark.parametrize("mode, says", [("endless", "more than 50 pages"),
                                        ("loop", "continuation token came twice"),
                                        ("huge", "larger than 1 MiB")])
def test_a_lying_listing_ends_with_a_store_error(lying, monkeypatch, mode, says):
    monkeypatch.setattr(s3, "MAX_LIST_PAGES", 50)
    monkeypatch.setattr(s3, "MAX_LIST_PAGE", 1 << 20)
    srv = lying(mode)
    with pytest.raises(RemoteError) as info:
        for _ in _backend(srv.url()).entries("cas"):
            pass
    assert says in str(info.value)
    assert srv.count() <= 50


def test_a_refused_listing_is_list_refused_not_a_miss():
    srv = FaultServer("403")
    try:
        with pytest.raises(ListRefused):
            list(_backend(srv.url()).entries("ac"))
    finally:
        srv.stop()


def test_pull_all_on_a_store_that_refuses_to_list_is_one_line_exit_5(tmp_path):
    """Before: "internal error: RemoteMissing: HTTP 403", exit 70."""
    srv = FaultServer("403")
    try:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml.safe_dump({"performance": {"cache": {
            "directory": str(tmp_path / "c"), "remote": [_entry(srv.url())]}}}))
        cfg.chmod(0o600)
        r = run_cli("--config", str(cfg), "remote", "pull", "--all")
        assert r.returncode == 5, (r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot list ac/: HTTP 403" in lines[0], r.stderr
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr
        assert "corefix-secret-key" not in r.stderr + r.stdout
        r = run_cli("--config", str(cfg), "remote", "status", "--json")
        assert '"degraded": false' in r.stdout  # reads may still work: no breaker
        r = run_cli("--config", str(cfg), "remote", "status", "--store")
        assert r.returncode == 5 and "internal error" not in r.stderr, (r.returncode, r.stderr)
    finally:
        srv.stop()


def test_a_listing_past_its_time_budget_is_list_refused_not_a_fault(lying, monkeypatch):
    """A big bucket's listing that outlasts LIST_BUDGET is stopped as ListRefused (the command
    fails with one line, the breaker stays closed: apt and pip keep the store), not left to
    time out (a RemoteTimeout would open the breaker)."""
    monkeypatch.setattr(s3, "LIST_BUDGET", 0.0)
    srv = lying("endless")
    with pytest.raises(ListRefused) as info:
        list(_backend(srv.url()).entries("cas"))
    assert "took over" in str(info.value) and srv.count() == 0
