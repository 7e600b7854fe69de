"""Faults in the store never fail a caller or slow it by more than one timeout per run: 500s,
403, truncated and endless bodies, a server that never answers, a stopped server, wrong
credentials. Every case: nothing served, the caller's answer as without a remote, the breaker
(shared by every process) visible in stats."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest
import yaml

from cache_core import PackageCache
from tests.support.cli import run_cli
from tests.support.http import FaultServer
from tests.support.remote import BEARER

DATA = os.urandom(200_000)
DIGEST = hashlib.sha256(DATA).hexdigest()
KEY = f"sha256:{DIGEST}"


@pytest.fixture
def fault(request):
    servers = []

    def start(mode: str) -> FaultServer:
        s = FaultServer(mode, DATA)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop()


def _baseline(tmp_path, key: str) -> tuple[int, str]:
    """The CLI's answer for key with no remote configured."""
    cfg = tmp_path / "plain.yaml"
    cfg.write_text(yaml.safe_dump({"performance": {"cache": {"directory": str(tmp_path / "plain")}}}))
    r = run_cli("--config", str(cfg), "get", key)
    return r.returncode, r.stdout


def _same_as_without_remote(tmp_path, name: str, key: str = KEY) -> str:
    """Run the CLI on cache `name`: same exit code and output as with no remote; its stderr."""
    r = run_cli("--config", str(tmp_path / f"{name}.yaml"), "get", key)
    assert (r.returncode, r.stdout) == _baseline(tmp_path, key)
    assert len([ln for ln in r.stderr.splitlines() if "warning" in ln]) <= 1, r.stderr
    return r.stderr


def _degraded(cache: PackageCache) -> dict:
    st = cache.stats()["remote"]
    assert st["degraded"] is True
    return st


def test_500_opens_the_breaker_for_every_process(fault, make_cache, tmp_path):
    srv = fault("500")
    b = make_cache("b", [{"url": srv.url()}])
    assert b.get(KEY) is None and b.get("deb:x.deb") is None
    assert srv.connections == 1  # skipped for the rest of this process after the first error
    st = _degraded(b)
    assert st["errors"] == 1 and st["hits"] == 0
    b.close()
    stderr = _same_as_without_remote(tmp_path, "b")  # another process: the breaker holds
    assert srv.connections == 1 and "warning" not in stderr
    r = run_cli("--config", str(tmp_path / "b.yaml"), "stats")
    assert "remote state      DEGRADED" in r.stdout
    r = run_cli("--config", str(tmp_path / "b.yaml"), "remote", "status")
    assert "DEGRADED" in r.stdout and "HTTP 500" in r.stdout
    # the breaker lasts 60 s; once it has expired the next run asks the remote again
    state_path = tmp_path / "b" / "remote-v1" / "state.json"
    state = json.loads(state_path.read_text())
    (row,) = state.values()
    assert 55 < row["open_until"] - time.time() <= 60
    row["open_until"] = time.time() - 1
    state_path.write_text(json.dumps(state))
    _same_as_without_remote(tmp_path, "b")
    assert srv.connections == 2


def test_403_is_a_miss_not_an_error(fault, make_cache, tmp_path):
    srv = fault("403")
    b = make_cache("b", [{"url": srv.url()}])
    assert b.get(KEY) is None and b.get("deb:x.deb") is None
    assert srv.connections == 2
    st = b.stats()["remote"]
    assert (st["misses"], st["errors"], st["degraded"]) == (2, 0, False)
    b.close()
    _same_as_without_remote(tmp_path, "b")


def test_a_truncated_body_is_never_served(fault, make_cache, tmp_path):
    srv = fault("truncated")
    b = make_cache("b", [{"url": srv.url()}])
    assert b.get(KEY) is None
    assert b.stats()["objects"] == 0
    assert _degraded(b)["errors"] == 1
    b.close()
    _same_as_without_remote(tmp_path, "b")


def test_an_endless_fast_body_stops_at_the_size_limit(fault, make_cache, tmp_path):
    srv = fault("endless")
    b = make_cache("b", [{"url": srv.url(), "max_object_gb": 0.001}])
    started = time.monotonic()
    assert b.get(KEY) is None
    assert time.monotonic() - started < 5
    st = b.stats()["remote"]
    assert st["mismatches"] == 1 and st["bytes_in"] <= 0.001 * 1024**3 + (1 << 20)  # one read past
    assert b.stats()["objects"] == 0
    assert not list((tmp_path / "b" / "tmp").iterdir())  # no temp left behind


def test_an_endless_slow_body_ends_at_the_object_budget(fault, make_cache, tmp_path):
    srv = fault("trickle")
    b = make_cache("b", [{"url": srv.url(), "object_budget": 1.5}])
    started = time.monotonic()
    assert b.get(KEY) is None and b.get("sha256:" + "0" * 64) is None
    assert time.monotonic() - started < 3.0
    assert _degraded(b)["timeouts"] == 1
    assert b.stats()["objects"] == 0


def test_a_server_that_never_answers_costs_one_timeout_per_run(fault, make_cache, tmp_path):
    srv = fault("silent")
    b = make_cache("b", [{"url": srv.url(), "timeout": 1, "read_timeout": 1}])
    started = time.monotonic()
    for i in range(5):
        assert b.get(f"wheel:w{i}-1.0-py3-none-any.whl") is None
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 1.8, elapsed
    assert srv.connections == 1 and _degraded(b)["timeouts"] == 1
    b.close()
    started = time.monotonic()
    _same_as_without_remote(tmp_path, "b")  # a second run within 60 s: no wait at all
    assert time.monotonic() - started < 1.5 and srv.connections == 1


def test_a_stopped_server_is_skipped(nginx, make_cache, tmp_path):
    nginx.stop()
    b = make_cache("b", [{"url": nginx.url(), "mode": "rw"}])
    started = time.monotonic()
    assert b.get(KEY) is None
    assert time.monotonic() - started < 1.0
    assert _degraded(b)["errors"] == 1
    src = tmp_path / "f"
    src.write_bytes(DATA)
    assert b.put("deb:f.deb", str(src)) == DIGEST  # the local put is unaffected
    r = b.remote.tier.drain()
    assert r["pending"] == 1 and r["uploaded"] == 0  # kept for later, not lost
    b.close()
    _same_as_without_remote(tmp_path, "b", "deb:absent.deb")


def test_wrong_bearer_token_is_an_error_and_the_right_one_works(nginx, make_cache, tmp_path):
    src = tmp_path / "f"
    src.write_bytes(DATA)
    bad = make_cache("bad", [{"url": nginx.url("auth"), "mode": "rw", "token": "wrong-token"}])
    bad.put("deb:f.deb", str(src))
    assert bad.remote.tier.drain()["failed"] == 1
    assert _degraded(bad)["errors"] >= 1
    assert bad.remote.tier.spool_count() == 1
    good = make_cache("good", [{"url": nginx.url("auth"), "mode": "rw", "token": BEARER}])
    good.put("deb:f.deb", str(src))
    assert good.remote.tier.drain()["uploaded"] == 1
    reader = make_cache("r", [{"url": nginx.url("auth"), "token": BEARER}])
    assert reader.get(KEY) is not None
    wrong = make_cache("w", [{"url": nginx.url("auth"), "token": "nope-nope"}])
    assert wrong.get(KEY) is None and _degraded(wrong)["errors"] == 1
    st = run_cli("--config", str(tmp_path / "bad.yaml"), "remote", "status", "--json").stdout
    assert "wrong-token" not in st and "401" in st


def test_wrong_s3_secret_is_refused_and_the_right_one_works(moto_server, make_cache, tmp_path):
    src = tmp_path / "f"
    src.write_bytes(DATA)
    url = f"s3://fleet/wrong{os.getpid()}"
    bad = make_cache("bad", [moto_server.remote(url=url, mode="rw",
                                                secret_access_key="not-the-secret-at-all")])
    bad.put("deb:f.deb", str(src))
    assert bad.remote.tier.drain()["failed"] == 1
    assert _degraded(bad)["errors"] == 1
    good = make_cache("good", [moto_server.remote(url=url, mode="rw")])
    good.put("deb:f.deb", str(src))
    assert good.remote.tier.drain()["uploaded"] == 1
    wrong = make_cache("w", [moto_server.remote(url=url, secret_access_key="not-the-secret-at-all")])
    assert wrong.get(KEY) is None
    st = _degraded(wrong)
    assert st["errors"] == 1 and "SignatureDoesNotMatch" in st["remotes"][0]["last_error"]
    assert wrong.stats()["objects"] == 0
    wrong.close()
    _same_as_without_remote(tmp_path, "w")
    out = run_cli("--config", str(tmp_path / "w.yaml"), "remote", "status", "--json").stdout
    assert "not-the-secret-at-all" not in out
    ok = make_cache("ok", [moto_server.remote(url=url)])
    assert ok.get(KEY) is not None


def test_s3_keys_from_the_environment_and_a_credentials_file(moto_server, make_cache, tmp_path,
                                                             monkeypatch):
    src = tmp_path / "f"
    src.write_bytes(DATA)
    url = f"s3://fleet/creds{os.getpid()}"
    w = make_cache("w", [moto_server.remote(url=url, mode="rw")])
    w.put("deb:f.deb", str(src))
    assert w.remote.tier.drain()["uploaded"] == 1
    base = {"url": url, "endpoint": moto_server.endpoint, "region": "us-east-1"}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_server.secret_key)
    assert make_cache("env", [base]).get(KEY) is not None
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    creds = tmp_path / "credentials"
    creds.write_text(f"[fleet]\naws_access_key_id = {moto_server.access_key}\n"
                     f"aws_secret_access_key = {moto_server.secret_key}\n")
    assert make_cache("file", [dict(base, credentials_file=str(creds), profile="fleet")]
                      ).get(KEY) is not None
    none = make_cache("none", [dict(base, credentials_file=str(tmp_path / "missing"))])
    assert none.get(KEY) is None and none.stats()["remote"]["errors"] == 1


def test_the_run_budget_caps_the_time_one_process_spends(fault, make_cache, tmp_path):
    srv = fault("trickle")
    b = make_cache("b", [{"url": srv.url(), "object_budget": 30, "run_budget": 1.0}])
    started = time.monotonic()
    assert b.get(KEY) is None and b.get("deb:y.deb") is None
    assert 0.9 < time.monotonic() - started < 2.0
    assert _degraded(b)["timeouts"] == 1 and srv.connections == 1


def test_stats_zero_resets_remote_counters_but_keeps_the_breaker(fault, make_cache, tmp_path):
    srv = fault("500")
    b = make_cache("b", [{"url": srv.url()}])
    assert b.get(KEY) is None
    b.zero_stats()
    st = b.stats()["remote"]
    assert (st["errors"], st["degraded"]) == (0, True)
