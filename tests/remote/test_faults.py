"""Faults in the store never fail a caller or slow it by more than one timeout per run: 500s,
403, truncated and endless bodies, a server that never answers, a stopped server, wrong
credentials. Every case: nothing served, the caller's answer as without a remote, the breaker
(shared by every process) visible in stats."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time

import pytest
import yaml

from cache_core import PackageCache
from cache_core.storage.remote.state import BREAKER_SECONDS
from tests.support.cli import run_cli
from tests.support.http import FaultServer, serve_dir
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


def _timed(fn) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def _fast_fault_time(fault, make_cache, name: str, keys: list[str], **opts) -> float:
    """The same gets on a cache whose store fails at once (HTTP 500), timed now: all the work
    of the fault path (the breaker, its state file, the warning) without any wait. The timed
    tests compare against it, not against a fixed number of seconds, so that a loaded machine
    slows both alike; what is left is the waiting they check (one timeout or budget, or none)."""
    srv = fault("500")
    c = make_cache(name, [{"url": srv.url(), **opts}])
    took = _timed(lambda: [c.get(k) for k in keys])
    c.close()
    return took


def _cli_time(tmp_path, name: str, key: str = KEY) -> float:
    """One ``pkgcache get`` on cache name (as _same_as_without_remote), timed."""
    return _timed(lambda: _same_as_without_remote(tmp_path, name, key))


def _degraded(cache: PackageCache) -> dict:
    st = cache.stats()["remote"]
    assert st["degraded"] is True
    return st


def test_500_opens_the_breaker_for_every_process(fault, make_cache, tmp_path):
    srv = fault("500")
    b = make_cache("b", [{"url": srv.url()}])
    before = time.time()  # the get that trips the breaker opens it for BREAKER_SECONDS
    assert b.get(KEY) is None
    after = time.time()
    assert b.get("deb:x.deb") is None
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
    # the breaker lasts 60 s from the fault (the later runs do not move it); once it has
    # expired the next run asks the remote again
    state_path = tmp_path / "b" / "remote-v1" / "state.json"
    state = json.loads(state_path.read_text())
    (row,) = state.values()
    assert BREAKER_SECONDS == 60.0
    assert before + BREAKER_SECONDS <= row["open_until"] <= after + BREAKER_SECONDS, (before, row)
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
    budget = 60  # the other way the read could end: the object budget
    b = make_cache("b", [{"url": srv.url(), "max_object_gb": 0.001, "object_budget": budget}])
    started = time.monotonic()
    assert b.get(KEY) is None
    assert time.monotonic() - started < budget / 2  # at the size limit, long before the budget
    st = b.stats()["remote"]
    assert st["mismatches"] == 1 and st["bytes_in"] <= 0.001 * 1024**3 + (1 << 20)  # one read past
    assert b.stats()["objects"] == 0
    assert not list((tmp_path / "b" / "tmp").iterdir())  # no temp left behind


def test_an_endless_slow_body_ends_at_the_object_budget(fault, make_cache, tmp_path):
    """Three gets, one object budget in all (each get waiting its own would be three)."""
    srv = fault("trickle")
    budget = 1.5
    keys = [KEY, "sha256:" + "0" * 64, "sha256:" + "1" * 64]
    b = make_cache("b", [{"url": srv.url(), "object_budget": budget}])
    took = _timed(lambda: [b.get(k) for k in keys])
    base = _fast_fault_time(fault, make_cache, "base", keys, object_budget=budget)
    assert budget * 0.9 < took < base + 2 * budget, (took, base)
    assert _degraded(b)["timeouts"] == 1 and srv.connections == 1
    assert b.stats()["objects"] == 0


def test_a_server_that_never_answers_costs_one_timeout_per_run(fault, make_cache, tmp_path):
    """Five gets cost one timeout in all (a timeout each would be five); a second run within
    the breaker's 60 s waits for nothing: as long as a run with a store that fails at once."""
    srv = fault("silent")
    timeout = 2.0
    keys = [f"wheel:w{i}-1.0-py3-none-any.whl" for i in range(5)]
    b = make_cache("b", [{"url": srv.url(), "timeout": timeout, "read_timeout": timeout}])
    took = _timed(lambda: [b.get(k) for k in keys])
    base = _fast_fault_time(fault, make_cache, "base", keys, timeout=timeout)
    assert timeout * 0.9 < took < base + 2 * timeout, (took, base)
    assert srv.connections == 1 and _degraded(b)["timeouts"] == 1
    b.close()
    # a second run (another process), between two runs of a store that failed at once
    second = [_cli_time(tmp_path, "base"), _cli_time(tmp_path, "b"), _cli_time(tmp_path, "base")]
    assert second[1] < max(second[0], second[2]) + timeout * 0.75, second
    assert srv.connections == 1


def test_a_stopped_server_is_skipped(nginx, fault, make_cache, tmp_path):
    """A refused connection is an error at once, not a wait for the connect timeout."""
    nginx.stop()
    timeout = 3.0
    b = make_cache("b", [{"url": nginx.url(), "mode": "rw", "timeout": timeout}])
    took = _timed(lambda: b.get(KEY))
    base = _fast_fault_time(fault, make_cache, "base", [KEY], timeout=timeout)
    assert took < base + timeout * 0.75, (took, base)
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
    """The run budget ends the read, long before the object budget (30 s)."""
    srv = fault("trickle")
    budget = 1.5
    keys = [KEY, "deb:y.deb", "deb:z.deb"]
    b = make_cache("b", [{"url": srv.url(), "object_budget": 30, "run_budget": budget}])
    took = _timed(lambda: [b.get(k) for k in keys])
    base = _fast_fault_time(fault, make_cache, "base", keys, object_budget=30, run_budget=budget)
    assert budget * 0.9 < took < base + 2 * budget, (took, base)
    assert _degraded(b)["timeouts"] == 1 and srv.connections == 1


def test_stats_zero_resets_remote_counters_but_keeps_the_breaker(fault, make_cache, tmp_path):
    srv = fault("500")
    b = make_cache("b", [{"url": srv.url()}])
    assert b.get(KEY) is None
    b.zero_stats()
    st = b.stats()["remote"]
    assert (st["errors"], st["degraded"]) == (0, True)


class _Blackholes:
    """Listening sockets on 127.0.0.1 whose one-slot accept queue is full: a SYN to them is
    dropped, so a connect waits for its timeout, as to an address that does not answer."""

    def __init__(self, n: int) -> None:
        self.socks: list[socket.socket] = []
        self.addrs = []
        for _ in range(n):
            ls = socket.socket()
            ls.bind(("127.0.0.1", 0))
            ls.listen(0)
            filler = socket.create_connection(ls.getsockname(), 1)  # fills the queue
            self.socks += [ls, filler]
            self.addrs.append(ls.getsockname())

    def close(self) -> None:
        for s in self.socks:
            s.close()


def _resolving(monkeypatch, host: str, answer) -> None:
    """socket.getaddrinfo answers host with answer() (other names as usual)."""
    real = socket.getaddrinfo

    def fake(name, *args, **kwargs):
        return answer() if name == host else real(name, *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_a_resolver_that_never_answers_costs_one_connect_timeout(fault, make_cache, monkeypatch):
    """Name resolution is inside the connect budget: a resolver that is gone (network down,
    link up) costs the remote's timeout once, then the breaker, not the resolver's retries."""
    timeout = 1.0
    base = _fast_fault_time(fault, make_cache, "base", [KEY, "deb:x.deb"], timeout=timeout)
    never = threading.Event()

    def hang():
        never.wait(12)  # the libc resolver's retries, at most
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    _resolving(monkeypatch, "store.corefix.test", hang)
    b = make_cache("b", [{"url": "http://store.corefix.test:8080/", "timeout": timeout}])
    took = _timed(lambda: [b.get(k) for k in (KEY, "deb:x.deb")])
    never.set()
    assert took < base + timeout * 2, (took, base)
    st = _degraded(b)
    assert st["timeouts"] == 1 and st["hits"] == 0


def test_a_name_with_two_silent_addresses_costs_one_budget_not_two(fault, make_cache,
                                                                    monkeypatch):
    timeout = 2.0
    base = _fast_fault_time(fault, make_cache, "base", [KEY], timeout=timeout)
    holes = _Blackholes(2)
    try:
        _resolving(monkeypatch, "two.corefix.test", lambda: [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", a) for a in holes.addrs])
        b = make_cache("b", [{"url": "http://two.corefix.test:8080/", "timeout": timeout}])
        took = _timed(lambda: b.get(KEY))
    finally:
        holes.close()
    assert timeout * 0.9 < took < base + timeout * 1.5, (took, base)  # two budgets: 2 x timeout
    assert _degraded(b)["timeouts"] == 1


def test_a_silent_first_address_leaves_time_for_the_next(make_cache, monkeypatch, tmp_path):
    """A name whose first address does not answer (a dead IPv6 route) and whose second does:
    the store is reached within the one budget."""
    data = os.urandom(3000)
    digest = hashlib.sha256(data).hexdigest()
    (tmp_path / "www" / "base" / "cas").mkdir(parents=True)
    (tmp_path / "www" / "base" / "cas" / digest).write_bytes(data)
    srv = serve_dir(tmp_path / "www")
    holes = _Blackholes(1)
    try:
        _resolving(monkeypatch, "dual.corefix.test", lambda: [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", a)
            for a in (holes.addrs[0], ("127.0.0.1", srv.port))])
        b = make_cache("b", [{"url": f"http://dual.corefix.test:{srv.port}/base",
                              "timeout": 2.0}])
        got = b.get(f"sha256:{digest}")
    finally:
        holes.close()
        srv.stop()
    assert got is not None and open(got, "rb").read() == data
    assert b.stats()["remote"]["hits"] == 1
