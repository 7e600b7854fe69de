"""The apt world: small .debs built with dpkg-deb, a flat repository served by the support HTTP
server (a DirServer that logs every request), and a sandbox root where the real apt-get/dpkg run
(APT_CONFIG + dpkg --root, real locking) with pkgcache's snippet calling this checkout."""

from __future__ import annotations

import json
import os
import pathlib
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.support import PY, REPO, until_stopped
from tests.support.http import DirServer, serve_dir

SNIPPET = REPO / "hooks" / "apt" / "data" / "05pkgcache"
TOOLS = ("apt-get", "dpkg", "dpkg-deb", "apt-ftparchive")


def build_deb(
    outdir: pathlib.Path,
    name: str,
    version: str,
    *,
    arch: str = "all",
    depends: str | None = None,
    recommends: str | None = None,
    size: int = 20000,
    seed: int = 0,
) -> pathlib.Path:
    """Build a small binary package with `dpkg-deb` (no maintainer scripts)."""
    work = outdir / f".build-{name}-{version.replace(':', '_')}-{seed}"
    if work.exists():
        shutil.rmtree(work)
    (work / "DEBIAN").mkdir(parents=True)
    data = work / "usr" / "share" / "pkgcache-test" / name
    data.mkdir(parents=True)
    rnd = random.Random(f"{name}-{version}-{seed}")
    (data / "payload.bin").write_bytes(rnd.randbytes(size))
    control = [
        f"Package: {name}",
        f"Version: {version}",
        f"Architecture: {arch}",
        "Maintainer: pkgcache tests <tests@example.invalid>",
        "Priority: optional",
        "Section: misc",
        f"Description: pkgcache test package {name}",
    ]
    if recommends:
        control.insert(3, f"Recommends: {recommends}")
    if depends:
        control.insert(3, f"Depends: {depends}")
    (work / "DEBIAN" / "control").write_text("\n".join(control) + "\n")
    out = outdir / f"{name}_{version.split(':')[-1]}_{arch}.deb"
    subprocess.run(
        ["dpkg-deb", "-Znone", "--root-owner-group", "--build", str(work), str(out)],
        check=True, capture_output=True,
    )
    shutil.rmtree(work)
    return out


@dataclass
class Repo:
    """A flat repository (`deb [trusted=yes] URL ./`) in `path`."""

    path: pathlib.Path
    debs: dict[str, pathlib.Path] = field(default_factory=dict)

    def add(self, name: str, version: str, **kw: object) -> pathlib.Path:
        for old in self.path.glob(f"{name}_*.deb"):
            old.unlink()
        deb = build_deb(self.path, name, version, **kw)  # type: ignore[arg-type]
        self.debs[name] = deb
        return deb

    def publish(self) -> None:
        run = lambda *a: subprocess.run(a, cwd=self.path, check=True, capture_output=True).stdout  # noqa: E731
        (self.path / "Packages").write_bytes(run("apt-ftparchive", "packages", "."))
        (self.path / "Release").write_bytes(
            run("apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=pkgcache-test",
                "release", "."))
        # The server answers If-Modified-Since with whole seconds: a republish within the same
        # second would get a 304 and apt would keep the old index. Each publish is newer.
        stamp = max(int(time.time()), getattr(self, "_published", 0) + 1)
        self._published = stamp
        for name in ("Packages", "Release"):
            os.utime(self.path / name, (stamp, stamp))


class Sandbox:
    """A throwaway root where the real apt-get/dpkg install into `root`."""

    def __init__(self, base: pathlib.Path, repo_url: str, cache_dir: pathlib.Path) -> None:
        self.base = base
        self.root = base / "root"
        self.cache_dir = cache_dir
        self.code, self.python = REPO, PY  # what the hooks run: this checkout, the tests' Python
        r = self.root
        for d in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d",
                  "etc/apt/trusted.gpg.d", "var/lib/apt/lists/partial",
                  "var/cache/apt/archives/partial", "var/lib/dpkg/info", "var/lib/dpkg/updates",
                  "var/lib/dpkg/triggers", "var/log/apt", "usr/bin"):
            (r / d).mkdir(parents=True, exist_ok=True)
        (r / "var/lib/dpkg/status").write_text("")
        (r / "var/lib/dpkg/available").write_text("")
        (r / "etc/apt/sources.list").write_text(f"deb [trusted=yes] {repo_url} ./\n")
        self.apt_config = base / "apt.conf"
        self.apt_config.write_text(
            f'Dir::Etc "{r}/etc/apt";\n'
            f'Dir::State "{r}/var/lib/apt";\n'
            f'Dir::State::status "{r}/var/lib/dpkg/status";\n'
            f'Dir::Cache "{r}/var/cache/apt";\n'
            f'Dir::Log "{r}/var/log/apt";\n'
            f'DPkg::Options {{ "--root={r}"; "--log={r}/var/log/dpkg.log"; '
            '"--force-script-chrootless"; };\n'
            'APT::Sandbox::User "root";\n'
            'Acquire::Languages "none";\n'
            'Acquire::http::Proxy "DIRECT";\n'
            'Acquire::Retries "0";\n'
            'APT::Get::Assume-Yes "true";\n'
        )
        # The command the shipped snippet calls, redirected to this checkout.
        self.pkgcache_bin = r / "usr/bin/pkgcache"
        self.write_pkgcache_wrapper()

    def write_pkgcache_wrapper(self, body: str | None = None, *, pythonpath: str = "",
                               options: str | None = None) -> None:
        """The sandbox's /usr/bin/pkgcache: runs this checkout's CLI on the test cache."""
        if options is None:
            options = f'--cache-dir "{self.cache_dir}"'
        self.wrapper_options = options
        if body is None:
            path = f"{pythonpath}:{self.code}" if pythonpath else str(self.code)
            body = f'PYTHONPATH="{path}" exec "{self.python}" -m hooks.cli {options} "$@"\n'

        self.pkgcache_bin.write_text("#!/bin/sh\n" + body)
        self.pkgcache_bin.chmod(0o755)

    def trace_hooks(self, log: pathlib.Path) -> None:
        """The sandbox's pkgcache run with -X importtime, each process's arguments and imports
        kept in log (hook_imports reads them)."""
        log.mkdir(exist_ok=True)
        self.write_pkgcache_wrapper(
            f'echo "$*" > "{log}/$$.args"\n'
            f'PYTHONPATH="{self.code}" exec "{self.python}" -X importtime -m hooks.cli '
            f'{self.wrapper_options} "$@" 2> "{log}/$$.err"\n', options=self.wrapper_options)

    def for_other_users(self) -> None:
        """Hooks that other users can run too: the world-readable copy of the code on the
        system's Python (the checkout and its venv may be private)."""
        from tests.support.user import USER_PY, readable_tree

        self.code, self.python = readable_tree(), USER_PY
        self.write_pkgcache_wrapper()

    @property
    def archives(self) -> pathlib.Path:
        return self.root / "var/cache/apt/archives"

    @property
    def parts(self) -> pathlib.Path:
        return self.root / "etc/apt/apt.conf.d"

    def snippet_text(self) -> str:
        return SNIPPET.read_text().replace("/usr/bin/pkgcache", str(self.pkgcache_bin))

    def install_snippet(self) -> None:
        (self.parts / "05pkgcache").write_text(self.snippet_text())

    def install_docker_clean(self) -> None:
        a = self.archives
        c = self.root / "var/cache/apt"
        cmd = f"rm -f {a}/*.deb {a}/partial/*.deb {c}/*.bin || true"
        (self.parts / "docker-clean").write_text(
            f'DPkg::Post-Invoke {{ "{cmd}"; }};\n'
            f'APT::Update::Post-Invoke {{ "{cmd}"; }};\n'
            'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n'
        )

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PKGCACHE", "APT_"))}
        cfg = self.base / "pkgcache.yaml"
        if not cfg.exists():
            cfg.write_text("performance:\n  cache:\n    enabled: true\n")
        # the member's own state dir: where the hooks find it on a real machine (beside apt's
        # Dir::State), never the host's /var/lib/pkgcache (record times, Release freshness)
        env.update(APT_CONFIG=str(self.apt_config), LC_ALL="C", DEBIAN_FRONTEND="noninteractive",
                   PKGCACHE_CONFIG=str(cfg), PKGCACHE_STATE_DIR=str(self.root / "var/lib/pkgcache"))
        return env

    def apt(self, *args: str, binary: str = "apt-get", check: bool = False,
            env: dict[str, str] | None = None,
            cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([binary, *args], env=env or self.env(), capture_output=True,
                             text=True, timeout=300, cwd=cwd)
        if check and res.returncode != 0:
            raise AssertionError(f"{binary} {args} -> {res.returncode}\n{res.stdout}\n{res.stderr}")
        return res

    def pkgcache(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.pkgcache_bin), *args], env=self.env(),
                              capture_output=True, text=True, timeout=300)

    def installed(self, name: str) -> str | None:
        res = subprocess.run(["dpkg-query", f"--admindir={self.root}/var/lib/dpkg", "-W",
                              "-f=${Status} ${Version}", name], capture_output=True, text=True)
        if res.returncode != 0 or not res.stdout.startswith("install ok installed"):
            return None
        return res.stdout.split()[-1]

    def debs_in_archives(self) -> list[str]:
        return sorted(p.name for p in self.archives.glob("*.deb"))


@dataclass
class Lab:
    """One test's apt world: repo + server + sandbox + cache dir."""

    repo: Repo
    server: DirServer
    sb: Sandbox
    cache_dir: pathlib.Path

    def republish(self) -> None:
        """Publish the repository's index again (after adding or replacing a package)."""
        self.repo.publish()

    def cache(self):
        """The lab's cache, opened as root's CLI opens it."""
        from cache_core import PackageCache

        return PackageCache(str(self.cache_dir))

    def reprovision(self, *names: str) -> None:
        """What a re-provisioned machine looks like: packages (default alpha, beta) purged,
        archives empty, the server's request log cleared."""
        self.sb.apt("purge", *(names or ("alpha", "beta")), check=True)
        self.sb.apt("clean", check=True)
        assert self.sb.debs_in_archives() == []
        self.server.reset()

    def status(self) -> dict:
        """``pkgcache apt status --json`` through the sandbox's pkgcache."""
        res = self.sb.pkgcache("apt", "status", "--json")
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def stop(self) -> None:
        """Stop the repository's server."""
        self.server.stop()


DEFAULT_DEBS: tuple[tuple[str, str, dict], ...] = (
    ("alpha", "1.0-1", {"depends": "beta"}),
    ("beta", "2:1.0-1", {"arch": "amd64"}),
    ("gamma", "0.5", {"size": 5000}),
)


def make_lab(base: pathlib.Path, debs: tuple[tuple[str, str, dict], ...] = DEFAULT_DEBS,
             cache_dir: pathlib.Path | None = None) -> Lab:
    """A repository with debs published and served, a sandbox with the snippet installed."""
    repo = Repo(base / "repo")
    repo.path.mkdir(parents=True)
    for name, version, kw in debs:
        repo.add(name, version, **kw)
    repo.publish()
    server = serve_dir(repo.path)
    cache_dir = cache_dir or base / "pkgcache"
    sb = Sandbox(base / "sb", server.base, cache_dir)
    sb.install_snippet()
    return Lab(repo, server, sb, cache_dir)


def hook_imports(log: pathlib.Path, action: str) -> list[set[str]]:
    """The modules each `apt hook ACTION` process traced by Sandbox.trace_hooks imported (and
    no other line on its stderr: hooks print nothing on success)."""
    out = []
    for args in sorted(log.glob("*.args")):
        if args.read_text().strip().endswith(f"apt hook {action}"):
            lines = args.with_suffix(".err").read_text().splitlines()
            said = [ln for ln in lines if not ln.startswith("import time:")]
            assert said == [], said
            out.append({ln.rsplit("|", 1)[1].strip() for ln in lines[1:]})
    return out


def lab_in(base: pathlib.Path, **kw: object) -> Iterator[Lab]:
    """make_lab(base) for a fixture: stopped afterwards."""
    yield from until_stopped(make_lab(base, **kw))  # type: ignore[arg-type]


def skip_unless_tools(items: list, where: str, tools: tuple[str, ...], what: str) -> None:
    """Mark the items under tests/<where>/ (but the fast tier's) skipped without root or tools."""
    import pytest

    missing = [t for t in tools if shutil.which(t) is None
               and not os.path.exists(f"/usr/sbin/{t}")]
    if missing or os.geteuid() != 0:
        why = f"needs root and {', '.join(missing) or what}"
        for item in items:
            if f"tests/{where}/" in str(item.fspath) and not item.get_closest_marker("fast"):
                item.add_marker(pytest.mark.skip(reason=why))
