"""Run the recipes of docs/recipes.md in throwaway Debian 12 roots (no Docker, VirtualBox or cloud-init here).

A root is extracted from an ``mmdebstrap --variant=minbase`` tarball (the package set of the
``debian:bookworm`` image) and gets the image's ``docker-clean`` apt snippet. The cache is a host
directory bind-mounted at the recipe's cache path inside a private mount namespace, so nothing
stays mounted on the host. Commands run as root through ``unshare ... chroot``; ``net=False``
adds ``--net`` (a new network namespace with nothing in it): no network at all.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.deb.debroot import ROOT_ENV, SUITE, cached_tarball
from tests.support.docs import doc_block

CACHE_TARGET = "/var/cache/vps-configurator"
# debuerreotype's /etc/apt/apt.conf.d/docker-clean, as in the debian:bookworm image.
DOCKER_CLEAN = (
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
    '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
    'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
    '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
    'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n'
)


def recipe_block(heading: str, lang: str) -> str:
    """The first ```lang block under the heading ``heading`` of docs/recipes.md, as printed."""
    return doc_block("docs/recipes.md", heading, lang)


def minbase_tarball() -> Path:
    """A bookworm minbase tarball, built by mmdebstrap or reused for a day."""
    return cached_tarball(f"{SUITE}-minbase", ["--variant=minbase"])


@dataclass
class Step:
    """One command run in the root and what it printed."""

    script: str
    rc: int
    output: str


@dataclass
class MinRoot:
    """A minbase root with docker-clean; ``cache`` is bind-mounted at CACHE_TARGET."""

    path: Path
    cache: Path
    steps: list[Step] = field(default_factory=list)

    @classmethod
    def create(cls, path: Path, cache: Path) -> MinRoot:
        path.mkdir(mode=0o755)
        subprocess.run(["tar", "-C", str(path), "-xf", str(minbase_tarball())], check=True)
        shutil.copy("/etc/resolv.conf", path / "etc/resolv.conf")
        (path / "etc/apt/apt.conf.d/docker-clean").write_text(DOCKER_CLEAN)
        # The host's extra CAs (a site or egress proxy CA; none on a stock host): picked up
        # when a recipe installs ca-certificates.
        extra = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
        if extra:
            dest = path / "usr/local/share/ca-certificates"
            dest.mkdir(parents=True, exist_ok=True)
            for crt in extra:
                shutil.copy(crt, dest / crt.name)
        cache.mkdir(mode=0o755, exist_ok=True)
        return cls(path, cache)

    def put(self, dest: str, data: bytes | Path, mode: int = 0o644) -> None:
        """Write a file into the root (dest as seen inside)."""
        target = self.path / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Path):
            shutil.copy(data, target)
        else:
            target.write_bytes(data)
        os.chmod(target, mode)

    def run(self, script: str, *, mount: str | None = CACHE_TARGET, net: bool = True,
            shell: str = "/bin/sh -ec", timeout: float = 900) -> Step:
        """Run script in the root (cache bind-mounted at mount); the step is recorded."""
        inner = []
        if mount:
            target = self.path / mount.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            inner.append(f"mount --bind {shlex.quote(str(self.cache))} {shlex.quote(str(target))}")
        inner.append(f"exec chroot {shlex.quote(str(self.path))} {shell} {shlex.quote(script)}")
        cmd = ["unshare", "--mount", "--pid", "--fork", f"--mount-proc={self.path}/proc",
               *([] if net else ["--net"]), "/bin/sh", "-ec", " && ".join(inner)]
        proc = subprocess.run(cmd, env=ROOT_ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
        step = Step(script, proc.returncode, proc.stdout)
        self.steps.append(step)
        return step

    def check(self, step: Step) -> Step:
        assert step.rc == 0, f"in root: {step.script!r} exited {step.rc}:\n{step.output[-4000:]}"
        return step

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def need_to_get(output: str) -> list[str]:
    """apt's "Need to get X" figures, in order."""
    return re.findall(r"^Need to get (\S+ \S+?)(?:/| of|\s*$)", output, re.M)


# -- Dockerfile ------------------------------------------------------------------------------
def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    logical = ""
    for line in text.splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        word, _, rest = logical.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        logical = ""
    return out


def replay_dockerfile(root: MinRoot, text: str, context: Path, *,
                      offline_pip: bool = False) -> list[Step]:
    """Replay COPY and RUN (honouring ``--mount=type=cache,target=``) in root; FROM is the root.

    offline_pip: run the RUN steps that call ``pkgcache pip`` with no network at all.
    """
    steps = []
    for word, rest in dockerfile_instructions(text):
        if word == "FROM":
            assert rest.split()[0] in ("debian:bookworm", "debian:12"), rest
        elif word == "COPY":
            *srcs, dest = shlex.split(rest)
            for src in srcs:
                target = dest + os.path.basename(src) if dest.endswith("/") else dest
                root.put(target, context / src)
        elif word == "RUN":
            mount = None
            while rest.startswith("--"):
                opt, _, rest = rest.partition(" ")
                if opt.startswith("--mount="):
                    fields = dict(f.split("=", 1) for f in opt[len("--mount="):].split(","))
                    assert fields.get("type") == "cache", opt
                    mount = fields["target"]
                rest = rest.strip()
            net = not (offline_pip and "pkgcache pip" in rest)
            steps.append(root.check(root.run(rest, mount=mount, net=net, shell="/bin/sh -c")))
        else:
            raise AssertionError(f"unexpected Dockerfile instruction {word}")
    return steps
