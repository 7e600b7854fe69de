"""The fleet on real machines (issue 21): A fills the fleet as a user would, B (no route to the
origins) and C (origin resolvable, network unreachable) provision from it alone.

One test on the session's world: A's steps must all pass; B and C run every step even after one
failed, and the test reports all their failures, each with its output's tail."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from dataclasses import dataclass, field

from tests.support.world import (
    APT_PACKAGES,
    DOWNLOAD,
    Member,
    World,
    check_layout,
    dpkg_versions,
    readme_remote,
)

SECRET = "/etc/pkgcache/fleet.key"
VENV = "/srv/app"
TOOL = "/root/w21tool.tar.gz"
CLONE = "/root/proj"


@dataclass
class Expected:
    """What A ended up with: B and C must end up with the same."""

    public_key: str
    debs: dict[str, str]
    freeze: list[str]
    tool_sha256: str
    head: str
    store_objects: int = 0
    notes: list[str] = field(default_factory=list)


def freeze(m: Member) -> list[str]:
    """pip freeze of the member's venv."""
    out = m.sh(f"{VENV}/bin/python -m pip freeze --all 2>/dev/null || true", check=False).stdout
    return sorted(ln for ln in out.splitlines() if ln.startswith("w21"))


def head(m: Member) -> str:
    """The commit checked out in the member's clone ('' if none)."""
    p = m.sh(f"git -C {CLONE} rev-parse HEAD 2>/dev/null || true", check=False)
    return p.stdout.strip()


def tool_sha256(m: Member) -> str:
    """SHA-256 of the member's fetched file ('' if missing)."""
    p = m.path(TOOL)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""


def store_objects(w: World) -> int:
    """Content objects in the WebDAV store."""
    cas = w.base / "nginx" / "www" / "store" / "cas"
    return sum(1 for p in cas.rglob("*") if p.is_file()) if cas.is_dir() else 0


def step(m: Member, failures: list[str], name: str, script: str, timeout: int = 120,
         ) -> subprocess.CompletedProcess[str]:
    """Run one provisioning step in m under `timeout`; record a failure with its output."""
    wrapped = f"timeout -k 5 {timeout} sh -ec {shlex.quote(script)}"
    p = m.sh(wrapped, check=False, timeout=timeout + 30)
    if p.returncode != 0:
        why = "TIMED OUT (hang)" if p.returncode in (124, 137) else f"exit {p.returncode}"
        failures.append(f"[{m.name}] {name}: {why}\n{p.stdout[-2500:]}")
    return p


def writer_fills_the_fleet(w: World) -> Expected:
    """A: apt-get update before pkgcache, the .deb with apt, keygen, the fleet guide's rw config,
    update again, install, pip -r (unpinned), fetch, git clone, remote push --all."""
    a = w.member("A")
    w.publish_v2()
    a.sh("apt-get update -q")
    assert not a.path("/usr/bin/pkgcache").exists()
    w.install_pkgcache(a)
    out = a.sh(f"mkdir -p /etc/pkgcache && pkgcache remote keygen fleet-1 --secret-file {SECRET}")
    public = next(ln for ln in out.stdout.splitlines() if ln.startswith("fleet-1:"))
    a.write_config(readme_remote("rw", public, w.store_url, SECRET))
    status = a.sh("pkgcache remote status").stdout
    assert "[rw]" in status and "warning" not in status, status  # the guide's entry is complete
    failures: list[str] = []
    step(a, failures, "apt-get update (pkgcache installed)", "apt-get update -q")
    step(a, failures, "apt-get install", "apt-get install -y -q " + " ".join(APT_PACKAGES[::2]))
    step(a, failures, "pkgcache pip install -r",
         f"python3 -m venv {VENV} && pkgcache pip install --python {VENV} -r /root/requirements.txt")
    assert w.origins is not None
    step(a, failures, "pkgcache fetch", f"pkgcache fetch {w.origins.url('files', DOWNLOAD)} -o {TOOL}")
    step(a, failures, "pkgcache git clone", f"pkgcache git clone {w.origins.url('git', '/proj')} {CLONE}")
    a.wait_idle()  # the detached bundle refresh and uploader (a server, a while later)
    push = step(a, failures, "pkgcache remote push --all", "pkgcache remote push --all")
    assert not failures, "\n\n".join(failures)
    exp = Expected(public, dpkg_versions(a, APT_PACKAGES), freeze(a), tool_sha256(a), head(a),
                   store_objects(w), [push.stdout.strip().splitlines()[-1]])
    # The world is what it claims: the newer alpha, the newest unpinned wheels, a file, a clone.
    assert exp.debs == {"w21-alpha": "1.1", "w21-beta": "1.0", "w21-gamma": "1.0"}, exp.debs
    assert exp.freeze == ["w21dep==0.3", "w21six==2.0", "w21tab==1.1"], exp.freeze
    assert exp.tool_sha256 and len(exp.head) == 40
    assert exp.store_objects > 0, "A uploaded nothing to the store"
    check_layout(w.members)
    return exp


def provision_reader(w: World, name: str, exp: Expected) -> list[str]:
    """Member `name`, cut off from the origins, provisions as A did: same result, 0 requests to
    the origins. The failures, each with its output's tail."""
    assert w.origins is not None
    m = w.member(name)
    m.write_config(readme_remote("ro", exp.public_key, w.store_url, None))
    status = m.sh("pkgcache remote status").stdout
    assert "[ro]" in status and "warning" not in status, status
    w.origins.reset()
    failures: list[str] = []
    step(m, failures, "apt-get update && apt-get install",
         "apt-get update -q && apt-get install -y -q " + " ".join(APT_PACKAGES[::2]), timeout=150)
    step(m, failures, "pkgcache pip install -r (unpinned)",
         f"python3 -m venv {VENV} && pkgcache pip install --python {VENV} -r /root/requirements.txt")
    step(m, failures, "pkgcache fetch --sha256",
         f"pkgcache fetch --sha256 {exp.tool_sha256} {w.origins.url('files', DOWNLOAD)} -o {TOOL}")
    step(m, failures, "pkgcache git clone",
         f"pkgcache git clone {w.origins.url('git', '/proj')} {CLONE}")
    got = {"debs": dpkg_versions(m, APT_PACKAGES), "pip freeze": freeze(m),
           "fetched sha256": tool_sha256(m), "git HEAD": head(m)}
    want = {"debs": exp.debs, "pip freeze": exp.freeze, "fetched sha256": exp.tool_sha256,
            "git HEAD": exp.head}
    for k in want:
        if got[k] != want[k]:
            failures.append(f"[{name}] {k}: {got[k]!r}, A has {want[k]!r}")
    hits = w.origins.hits()
    if any(hits.values()):
        failures.append(f"[{name}] requests that reached the origins: {hits}")
    check_layout(w.members)
    if failures:
        diag = m.sh("pkgcache apt status; pkgcache remote status; pkgcache ls", check=False)
        failures.append(f"[{name}] for the record:\n{diag.stdout[-3000:]}")
    return failures


def test_fleet_of_real_machines(world: World) -> None:
    """A fills the fleet; B (no route to the origins, the name does not resolve) and C (the name
    resolves, connecting fails with ENETUNREACH) then provision from the store alone. One test,
    so that no scheduler splits the story; B's and C's failures are reported together."""
    exp = writer_fills_the_fleet(world)
    assert world.origins is not None
    world.cut_off("B", resolvable=False)
    probe = world.member("B").sh(
        f"python3 -c \"import socket; socket.getaddrinfo('{world.host}', 80)\"", check=False)
    assert probe.returncode != 0 and "gaierror" in probe.stdout, probe.stdout
    world.cut_off("C", resolvable=True)
    probe = world.member("C").sh(
        "python3 -c \"import socket\ntry:\n socket.create_connection("
        f"('{world.host}', {world.origins.apt.port}), 2)\nexcept OSError as e:\n"
        " print('errno', e.errno)\"", check=False)
    assert "errno 101" in probe.stdout, probe.stdout
    failures = provision_reader(world, "B", exp) + provision_reader(world, "C", exp)
    assert not failures, "\n\n".join(failures)
