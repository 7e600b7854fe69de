"""What a writer publishes about a pip file names only sources a reader can check: a group naming
a path on the writer's machine (a ``file://`` find-links directory) is dropped from the
``pipsha:`` record and the ``piplist:`` set, and a reader ignores such a group from an older
writer (its own path of that name is another source)."""

from __future__ import annotations

from hooks.pip.fleet import bound, publish, read_listing
from hooks.pip.store import Artifact, WheelStore
from hooks.pip.trust import KEY
from tests.support.pip import make_wheel
from tests.support.remote import file_store

LOCAL = "file:///srv/wheels"
INDEX = "https://pypi.org/simple/"


def test_published_pip_records_name_no_path_of_the_writer(make_cache, keypair, tmp_path,
                                                          monkeypatch):
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(tmp_path))
    store = file_store(tmp_path / "shared")
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0],
                                      trusted_public_keys=[keypair[1]])])
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = make_wheel(dist, "proj", "1.0")
    digest = a.put(f"wheel:{wheel.name}", str(wheel))
    ws = WheelStore(a)
    ws.vouch(f"wheel:{wheel.name}", digest,
             [[LOCAL], [INDEX], [LOCAL, "https://idx.example/simple/"]])
    art = Artifact(name="proj", version="1.0", url=f"{INDEX}proj/{wheel.name}",
                   filename=wheel.name, sha256=digest, requires_python=None, yanked=False,
                   is_direct=False)
    publish(a, [art], ws)
    assert a.remote.tier.drain(wait=True)["failed"] == 0
    a.close()
    b = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    rec = b.remote.get_record(f"pipsha:{digest}")
    assert rec is not None and rec.meta["sources"] == [[INDEX]], rec.meta
    assert read_listing(b, "proj")[wheel.name]["sources"] == [[INDEX]]
    b.close()


def test_a_reader_binds_no_group_that_names_a_writers_path():
    assert bound([[LOCAL], [INDEX], [LOCAL, INDEX]], keypair := "fleet:AAAA") == [
        sorted([INDEX, KEY + keypair])]
