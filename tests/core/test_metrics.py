"""``pkgcache stats --format prometheus`` and the node_exporter textfile, read back by
prometheus_client's own parser (the format's reference implementation)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from cache_core import PackageCache, render_prometheus
from tests.support.cli import Runner

parser = pytest.importorskip("prometheus_client.parser")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, parsed by prometheus_client (raises on bad text)."""
    out = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def one(parsed: dict, name: str, **labels: str) -> float:
    """The value of the one sample called name whose labels include labels."""
    hits = [v for (n, ls), v in parsed.items()
            if n == name and set(labels.items()) <= set(ls)]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def filled(run: Runner, tmp: Path) -> None:
    """Two kinds of keys, three hits, one miss."""
    a, b = tmp / "a.deb", tmp / "b.whl"
    a.write_bytes(b"a" * 1000)
    b.write_bytes(b"b" * 300)
    for key, path in (("deb:a_1_all.deb", a), ("wheel:b-1-py3-none-any.whl", b)):
        assert run("put", key, str(path)).returncode == 0
    for key in ("deb:a_1_all.deb", "deb:a_1_all.deb", "wheel:b-1-py3-none-any.whl", "deb:nope"):
        run("get", key, "-o", str(tmp / "out"))


def test_prometheus_output_matches_the_json_counters(tmp_path: Path) -> None:
    run = Runner(tmp_path)
    filled(run, tmp_path)
    js = json.loads(run("stats", "--json").stdout)
    res = run("stats", "--format", "prometheus")
    assert res.returncode == 0, res.stderr
    got = samples(res.stdout.decode())
    cache = str(run.cache_dir)
    assert one(got, "pkgcache_hits_total", cache_dir=cache) == js["hits"] == 3
    assert one(got, "pkgcache_misses_total", cache_dir=cache) == js["misses"] == 1
    assert one(got, "pkgcache_served_bytes_total", cache_dir=cache) == js["bytes_served"] == 2300
    assert one(got, "pkgcache_size_bytes", cache_dir=cache) == js["size_bytes"] == 1300
    assert one(got, "pkgcache_max_size_bytes", cache_dir=cache) == js["max_size_bytes"]
    assert one(got, "pkgcache_enabled", cache_dir=cache) == 1
    assert one(got, "pkgcache_kind_hits_total", kind="deb") == 2
    assert one(got, "pkgcache_kind_served_bytes_total", kind="deb") == 2000
    assert one(got, "pkgcache_kind_served_bytes_total", kind="wheel") == 300
    assert not [n for n, _ in got if n.startswith("pkgcache_remote_")]  # no remote configured


def test_remote_rows_and_awkward_labels_survive_the_parser(tmp_path: Path) -> None:
    odd = tmp_path / 'dir "with" \\ quotes'
    cache = PackageCache(str(odd / "cache"))
    f = tmp_path / "x"
    f.write_bytes(b"x")
    cache.put("url:https://example.invalid/x", str(f))
    st = cache.stats()
    st["remote"] = {"spool": 2, "remotes": [
        {"url": "https://store.example/\nbazel", "mode": "rw", "hits": 5, "misses": 1,
         "errors": 2, "timeouts": 1, "mismatches": 1, "rejected_records": 0, "bytes_in": 10,
         "bytes_out": 20, "uploads": 3, "upload_errors": 0, "degraded": True}]}
    got = samples(render_prometheus(st))
    assert one(got, "pkgcache_size_bytes", cache_dir=str(odd / "cache")) == 1
    assert one(got, "pkgcache_remote_hits_total", remote="https://store.example/\nbazel") == 5
    assert one(got, "pkgcache_remote_mismatches_total", mode="rw") == 1
    assert one(got, "pkgcache_remote_degraded", mode="rw") == 1
    assert one(got, "pkgcache_remote_spool_objects") == 2


def test_a_configured_remote_is_reported(tmp_path: Path) -> None:
    run = Runner(tmp_path)
    store = tmp_path / "store"
    store.mkdir(mode=0o700)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"performance": {"cache": {
        "remote": [{"url": f"file://{store}", "mode": "ro", "trust": "unsigned"}]}}}))
    filled(run, tmp_path)
    res = run("stats", "--format", "prometheus")
    assert res.returncode == 0, res.stderr
    got = samples(res.stdout.decode())
    assert one(got, "pkgcache_remote_degraded", mode="ro") == 0
    assert ("pkgcache_remote_misses_total" in {n for n, _ in got})


def test_textfile_is_written_atomically_and_readable(tmp_path: Path) -> None:
    run = Runner(tmp_path)
    filled(run, tmp_path)
    textdir = tmp_path / "node-exporter"
    textdir.mkdir(mode=0o755)
    prom = textdir / "pkgcache.prom"
    prom.write_text("old\n")
    before = prom.stat().st_ino
    res = run("stats", "--textfile", str(prom))
    assert res.returncode == 0 and res.stdout == b"", res.stderr
    st = prom.stat()
    assert st.st_ino != before  # a new file renamed over the old one, never rewritten in place
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert one(samples(prom.read_text()), "pkgcache_hits_total") == 3
    assert sorted(os.listdir(textdir)) == ["pkgcache.prom"]  # no temp left behind


@pytest.mark.parametrize("case", ["suffix", "missing", "shared"])
def test_textfile_refusals_are_one_line(tmp_path: Path, case: str) -> None:
    run = Runner(tmp_path)
    textdir = tmp_path / "prom"
    if case != "missing":
        textdir.mkdir()
    if case == "shared":
        textdir.chmod(0o777)  # others could swap the file node_exporter reads
    target = textdir / ("pkgcache.txt" if case == "suffix" else "pkgcache.prom")
    res = run("stats", "--textfile", str(target))
    assert res.returncode != 0
    lines = res.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pkgcache:"), lines
    assert "Traceback" not in res.stderr.decode()
    assert not target.exists()


def test_gc_keeps_the_configured_textfile_current(tmp_path: Path) -> None:
    run = Runner(tmp_path)
    textdir = tmp_path / "node-exporter"
    textdir.mkdir(mode=0o755)
    prom = textdir / "pkgcache.prom"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"performance": {"cache": {
        "metrics_textfile": str(prom)}}}))
    filled(run, tmp_path)
    assert not prom.exists()
    res = run("-q", "gc")
    assert res.returncode == 0, res.stderr
    assert one(samples(prom.read_text()), "pkgcache_kind_entries", kind="wheel") == 1


def test_a_relative_textfile_in_the_config_is_a_config_error(tmp_path: Path) -> None:
    run = Runner(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"performance": {"cache": {
        "metrics_textfile": "pkgcache.prom"}}}))
    res = run("stats")
    assert res.returncode == 3
    assert "metrics_textfile" in res.stderr.decode()
