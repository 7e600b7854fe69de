"""A fleet of real machines: one mmdebstrap image copied into roots A, B, C, each in its own
network namespace with its own cache, state dir and apt lists (issue 21's test world).

    PREFIX-store   br0 10.77.0.1/24, nginx WebDAV (bench/lib/netns.py's lab and nginx)
    PREFIX-s1..s3  the members' namespaces (eth0 on br0, no default route)
    PREFIX-origin  br1 10.78.0.1/24: the origins (signed apt repo, PEP 503 index, a download,
                   git http-backend), test servers of this process bound inside it; each member
                   has eth1 on br1 while it is set up, the readers lose it before they provision

Members reach the origins by name (``origin.<prefix>.test`` in their own /etc/hosts). Each
member is booted (tests/deb/debroot.py ``DebRoot.boot``): a pid 1 in its own pid, mount and
network namespaces that every command joins, so pkgcache's detached processes outlive a command.
Only addresses inside these namespaces are ever traffic targets.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bench.lib import netns
from tests.deb.debroot import INCLUDE, DebRoot, cached_tarball
from tests.support.docs import doc_block
from tests.support.fleet import GpgKey, SignedRepo
from tests.support.git import make_repo
from tests.support.http import DirApp, GitApp, HttpServer, IndexApp, StaticApp
from tests.support.pip import make_wheel

INCLUDE_WORLD = (*INCLUDE, "git", "python3-venv")
"""The members' image: pkgcache's run-time dependencies plus git and venv (a user's server)."""
ORIGIN_IP = "10.78.0.1"
STATE_DIR = "/var/lib/pkgcache"
LISTS_DIR = "/var/lib/apt/lists"
CONFIG = "/etc/vps-configurator/config.yaml"
DEFAULT_CACHE = "/var/cache/vps-configurator"
CLONE_NEWNET = 0x40000000


def world_tarball() -> Path:
    """The members' image (mmdebstrap, cached for a day like the base root)."""
    return cached_tarball("bookworm-world", ["--variant=apt", "--include=" + ",".join(INCLUDE_WORLD)])
T = TypeVar("T")


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """fn() run in a thread that joined network namespace ns (sockets it makes stay there)."""
    out: dict[str, Any] = {}

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            os.close(fd)
        out["v"] = fn()

    def guarded() -> None:
        try:
            run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            out["e"] = exc

    t = threading.Thread(target=guarded)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out["v"]


def readme_remote(mode: str, public_key: str, url: str, secret_file: str | None) -> dict[str, Any]:
    """The fleet guide's (docs/fleet.md) first remote entry, as printed, with this fleet's values:
    its url, the keys, ``mode``; token_file dropped (the store is open) and signing_key_file only rw."""
    block = doc_block("docs/fleet.md", "The fleet tier: a remote store", "yaml")
    entry = dict(yaml.safe_load(block)["performance"]["cache"]["remote"][0])
    assert {"url", "mode", "signing_key_file", "trusted_public_keys"} <= entry.keys(), entry
    entry.pop("token_file", None)
    entry.update(url=url, mode=mode, trusted_public_keys=[public_key])
    if mode == "rw":
        entry["signing_key_file"] = secret_file
    else:
        entry.pop("signing_key_file")
    return entry


@dataclass
class Member:
    """One machine: a root, its namespace, and where its own state lives."""

    name: str
    root: DebRoot
    ns: str
    index: int

    def sh(self, script: str, *, check: bool = True, timeout: float = 300,
           ) -> subprocess.CompletedProcess[str]:
        """Run a /bin/sh script as root in the member (its namespace, its root)."""
        return self.root.run(script, check=check, timeout=timeout)

    def busy(self) -> list[str]:
        """Command lines of the processes running in the member besides its pid 1 (pkgcache's
        detached uploader, a bundle refresh)."""
        root = str(self.root.path.resolve())
        out = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == self.root.init_pid:
                continue
            try:
                if os.readlink(proc / "root") == root:
                    out.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
        return out

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until nothing but pid 1 runs in the member (a server a while after provisioning)."""
        deadline = time.monotonic() + timeout
        while self.busy():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} still busy after {timeout} s: {self.busy()}")
            time.sleep(0.2)

    def path(self, inside: str) -> Path:
        """A path of the member as seen from the host."""
        return self.root.path / inside.lstrip("/")

    def cache_dir(self) -> str:
        """The cache directory the member's config names (the default without a config)."""
        cfg = self.path(CONFIG)
        if cfg.is_file():
            data = yaml.safe_load(cfg.read_text()) or {}
            d = ((data.get("performance") or {}).get("cache") or {}).get("directory")
            if d:
                return str(d)
        return DEFAULT_CACHE

    def own_dirs(self) -> dict[str, Path]:
        """state dir, apt lists and cache, as host paths."""
        return {"state dir": self.path(STATE_DIR), "apt lists": self.path(LISTS_DIR),
                "cache": self.path(self.cache_dir())}

    def write_config(self, remote: dict[str, Any]) -> None:
        """The installed config.yaml with ``remote:`` added, as the fleet guide (docs/fleet.md) shows."""
        cfg = self.path(CONFIG)
        data = yaml.safe_load(cfg.read_text())
        data["performance"]["cache"]["remote"] = [remote]
        cfg.write_text(yaml.safe_dump(data, sort_keys=False))


def check_layout(members: list[Member]) -> None:
    """Fail if two members share a state dir, apt lists or cache (same file, however reached:
    symlink, bind mount), or if any of them lives outside its own root."""
    seen: dict[tuple[int, int], str] = {}
    problems = []
    for m in members:
        for what, p in m.own_dirs().items():
            if not p.exists():
                continue
            real = p.resolve()
            if not real.is_relative_to(m.root.path.resolve()):
                problems.append(f"{m.name}'s {what} {p} leads outside its root, to {real}")
            st = real.stat()
            key = (st.st_dev, st.st_ino)
            if key in seen:
                problems.append(f"{m.name}'s {what} is {seen[key]}'s")
            seen[key] = f"{m.name} ({what})"
    if problems:
        raise AssertionError("fleet members share state: " + "; ".join(problems))


@dataclass
class Origins:
    """The origin servers, bound in the origin namespace; every request counted."""

    host: str
    repo: SignedRepo
    apt: HttpServer
    index: HttpServer
    files: HttpServer
    git: HttpServer
    index_log: list[str] = field(default_factory=list)

    def servers(self) -> dict[str, HttpServer]:
        return {"apt": self.apt, "index": self.index, "files": self.files, "git": self.git}

    def url(self, server: str, path: str = "/") -> str:
        return f"http://{self.host}:{self.servers()[server].port}{path}"

    def hits(self) -> dict[str, int]:
        """Requests each origin answered since the last reset."""
        out = {}
        for name, srv in self.servers().items():
            with srv.lock:
                out[name] = len(srv.hits)
        return out

    def reset(self) -> None:
        for srv in self.servers().values():
            srv.reset()

    def stop(self) -> None:
        for srv in self.servers().values():
            srv.stop()


APT_PACKAGES = ("w21-alpha", "w21-beta", "w21-gamma")
PIP_REQUIREMENTS = "w21tab\nw21six\n"
DOWNLOAD = "/dl/w21tool-1.0.tar.gz"


def make_origins(ns: str, base: Path, host: str) -> Origins:
    """The origin servers (apt repo v1, index, a download, a git repo) bound in namespace ns."""
    key = GpgKey("w21-archive")
    repo = SignedRepo(base / "repo")
    repo.key = key
    repo.path.mkdir(parents=True)
    repo.add("w21-alpha", "1.0", depends="w21-beta")
    repo.add("w21-beta", "1.0")
    repo.add("w21-gamma", "1.0", size=5000)
    repo.publish()
    wheels = base / "wheels"
    wheels.mkdir()
    for name, version, req in (("w21tab", "1.0", ()), ("w21tab", "1.1", ("w21dep",)),
                               ("w21six", "2.0", ()), ("w21dep", "0.3", ())):
        make_wheel(wheels, name, version, requires=req)
    files = StaticApp()
    files.put(DOWNLOAD, hashlib.sha256(b"w21").digest() * 4096)
    gitroot = base / "git"
    gitroot.mkdir()
    make_repo(gitroot, "proj")
    log: list[str] = []

    def bind() -> tuple[HttpServer, ...]:
        return tuple(HttpServer(app, host=ORIGIN_IP) for app in (
            DirApp(repo.path), IndexApp(wheels, {}, log), files, GitApp(gitroot)))

    apt, index, dl, git = in_netns(ns, bind)
    for srv in (apt, index, dl, git):
        srv.start()
    return Origins(host, repo, apt, index, dl, git, log)


class World:
    """The store, the origins and the members A (writer), B, C (readers)."""

    def __init__(self, base: Path, deb: Path, prefix: str) -> None:
        self.base = base
        self.deb = deb
        self.prefix = prefix
        self.lab = netns.Lab(prefix, base / "lab", servers=3)
        self.origin_ns = f"{prefix}-origin"
        self.host = f"origin.{prefix}.test"
        self.origins: Origins | None = None
        self.members: list[Member] = []
        self.store_url = ""
        self.key: GpgKey | None = None

    # ------------------------------------------------------------------------- building
    def up(self) -> None:
        """Namespaces, store, origins, and three roots that ran apt-get update (B and C also
        installed the .deb: A does that in the scenario)."""
        self.down()
        self.lab.up(relay_sock=None, lan_rate="")
        o = self.origin_ns
        netns.ip("netns", "add", o)
        netns.ip("-n", o, "link", "set", "lo", "up")
        netns.ip("-n", o, "link", "add", "br1", "type", "bridge")
        netns.ip("-n", o, "addr", "add", f"{ORIGIN_IP}/24", "dev", "br1")
        netns.ip("-n", o, "link", "set", "br1", "up")
        for i in (1, 2, 3):
            self.link_origin(i, True)
        _, self.store_url = netns.start_nginx(self.lab, self.base / "nginx")
        self.origins = make_origins(o, self.base / "origins", self.host)
        self.key = self.origins.repo.key
        image = world_tarball()
        for i, name in enumerate("ABC", start=1):
            root = DebRoot.create(self.base / name, image)
            root.boot(self.lab.ns(i))
            m = Member(name, root, self.lab.ns(i), i)
            self.members.append(m)
            self.set_up_machine(m)
        for m in self.members[1:]:
            self.install_pkgcache(m)
        check_layout(self.members)

    def cut_off(self, name: str, *, resolvable: bool) -> None:
        """Take the member's link to the origins away; without resolvable, also the origin's
        name (a machine whose DNS is gone)."""
        m = self.member(name)
        self.link_origin(m.index, False)
        if not resolvable:
            m.path("/etc/hosts").write_text("127.0.0.1 localhost\n")

    def link_origin(self, i: int, up: bool) -> None:
        """Give member i a link to the origins (eth1 on br1), or take it away."""
        ns = self.lab.ns(i)
        if up:
            netns.ip("-n", self.origin_ns, "link", "add", f"o{i}", "type", "veth", "peer",
                     "name", "eth1", "netns", ns)
            netns.ip("-n", self.origin_ns, "link", "set", f"o{i}", "master", "br1")
            netns.ip("-n", self.origin_ns, "link", "set", f"o{i}", "up")
            netns.ip("-n", ns, "addr", "add", f"10.78.0.{10 + i}/24", "dev", "eth1")
            netns.ip("-n", ns, "link", "set", "eth1", "up")
        else:
            netns.ip("-n", ns, "link", "del", "eth1")

    def set_up_machine(self, m: Member) -> None:
        """What every server has before pkgcache: its sources (the signed repository, by name),
        the archive key, a pip config naming the index, and lists from apt-get update."""
        assert self.origins is not None and self.key is not None
        p = m.path
        p("/etc/hosts").write_text(f"127.0.0.1 localhost\n{ORIGIN_IP} {self.host}\n")
        p("/etc/resolv.conf").write_text("# no DNS in the lab\n")
        p("/etc/apt/keyrings").mkdir(parents=True, exist_ok=True)
        p("/etc/apt/keyrings/w21.gpg").write_bytes(self.key.public.read_bytes())
        for f in ("/etc/apt/sources.list", "/etc/apt/sources.list.d/debian.sources"):
            p(f).unlink(missing_ok=True)
        p("/etc/apt/sources.list.d/w21.list").write_text(
            f"deb [signed-by=/etc/apt/keyrings/w21.gpg] {self.origins.url('apt')} ./\n")
        p("/etc/pip.conf").write_text(
            f"[global]\nindex-url = {self.origins.url('index', '/simple/')}\n"
            f"trusted-host = {self.host}\n")
        p("/root/requirements.txt").write_text(PIP_REQUIREMENTS)
        m.sh("apt-get update -q")

    def install_pkgcache(self, m: Member) -> None:
        """``apt-get install ./pkgcache_*.deb`` in the member, as the README says."""
        m.root.copy_in(self.deb, f"/root/{self.deb.name}")
        m.sh("cd /root && apt-get install -y -q ./pkgcache_*.deb")

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    def publish_v2(self) -> None:
        """A newer version in the archive (the readers' lists are now stale)."""
        assert self.origins is not None
        self.origins.repo.add("w21-alpha", "1.1", depends="w21-beta")
        self.origins.repo.publish()

    def down(self) -> None:
        """Stop the servers, kill what the lab started, delete the namespaces."""
        if self.origins is not None:
            self.origins.stop()
            self.origins = None
        for m in self.members:
            m.root.halt()
        self.lab.down()
        netns.ip("netns", "del", self.origin_ns, check=False)
        if self.key is not None:
            self.key.close()
            self.key = None


def dpkg_versions(m: Member, names: tuple[str, ...]) -> dict[str, str]:
    """name -> installed version (dpkg-query) in the member."""
    out = m.sh("dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n' "
               + " ".join(names) + " || true", check=False).stdout
    got = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "ii":
            got[parts[0]] = parts[1]
    return got

