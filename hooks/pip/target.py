"""The target interpreter: its tags, marker environment and build fingerprint.

Tags and markers come from the interpreter pip installs into, not from the one running pkgcache,
so they are read by a small script run under the target (with our own ``packaging`` on its path).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import packaging

# Runs under the target interpreter with -I; argv[1] is the directory holding `packaging`.
_PROBE = r"""
import json, os, platform, sys, sysconfig
own_path = [p for p in sys.path if p and (sys.prefix == sys.base_prefix
                                          or not p.startswith(sys.prefix))]
try:
    import site
    own_path += site.getsitepackages([sys.base_prefix])
except Exception:
    pass
sys.path.insert(0, sys.argv[1])
from packaging import markers, tags
ts = [str(t) for t in tags.sys_tags()]
libc, ver = platform.libc_ver()
musl = [t.platform for t in tags.sys_tags() if "musllinux" in t.platform]
if musl:
    libc, ver = "musl", ".".join(musl[0].split("_")[1:3])
distro = ""
try:
    with open("/etc/os-release", encoding="utf-8") as f:
        kv = dict(l.rstrip("\n").split("=", 1) for l in f if "=" in l)
    distro = kv.get("ID", "").strip('"') + kv.get("VERSION_ID", "").strip('"')
except OSError:
    pass
print(json.dumps({
    "tags": ts, "env": markers.default_environment(),
    "interpreter": tags.interpreter_name() + tags.interpreter_version(),
    "abi": ts[0].split("-")[1] if ts else "none", "machine": platform.machine(),
    "libc": (libc or "unknown") + (ver or ""), "distro": distro or "unknown",
    "executable": sys.executable, "path": own_path,
    "version": "%d.%d.%d" % sys.version_info[:3],
}))
"""


class TargetError(Exception):
    """The target interpreter could not be found or queried."""


@dataclass
class Target:
    """What pkgcache knows about the interpreter it installs into."""

    python: str
    tags: list[str]
    env: dict[str, str]
    interpreter: str
    abi: str
    machine: str
    libc: str
    distro: str
    path: list[str] = field(default_factory=list)
    version: str = ""

    @cached_property
    def tag_rank(self) -> dict[str, int]:
        """Supported tags (lower-case ``interpreter-abi-platform``, as ``store.wheel_tags``
        gives them; manylinux aliases included) mapped to priority."""
        rank: dict[str, int] = {}
        for i, text in enumerate(self.tags):
            interpreters, abis, platforms = text.lower().split("-")
            for tag in (f"{p}-{a}-{m}" for p in interpreters.split(".")
                        for a in abis.split(".") for m in platforms.split(".")):
                rank.setdefault(tag, i)
        return rank

    @property
    def fingerprint(self) -> str:
        """Identity of a locally built wheel: interpreter, ABI, machine, libc, distro."""
        return "-".join((self.interpreter, self.abi, self.machine, self.libc, self.distro))

    def supports(self, tags: frozenset[str]) -> bool:
        """True if any of a wheel's tags is supported by the target."""
        rank = self.tag_rank
        return any(t in rank for t in tags)

    def has_pip(self) -> bool:
        """True if the target interpreter can run ``-m pip`` itself.

        self.path holds the base interpreter's paths (the probe is shared by every venv of one
        binary); a venv's own site-packages is found from its pyvenv.cfg.
        """
        paths = list(self.path)
        venv = Path(self.python).parent.parent
        cfg = venv / "pyvenv.cfg"
        if cfg.is_file():
            mm = ".".join(self.version.split(".")[:2])
            try:
                text = cfg.read_text(encoding="utf-8", errors="replace").lower()
            except OSError:
                text = ""
            system = "include-system-site-packages = true" in text.replace("\t", " ")
            paths = [str(venv / "lib" / f"python{mm}" / "site-packages")] + (paths if system
                                                                           else [])
        return any(os.path.isdir(os.path.join(p, "pip")) for p in paths)


def find_python(spec: str | None) -> str:
    """The target interpreter: --python (file or venv dir), $VIRTUAL_ENV, python3 or ours."""
    if spec:
        p = Path(spec)
        if p.is_dir():
            p = p / "bin" / "python"
        elif os.sep not in spec:
            found = shutil.which(spec)
            if found:
                p = Path(found)
        if not p.exists():
            raise TargetError(f"{spec}: no such interpreter or virtual environment")
        return str(p.absolute())
    venv = os.environ.get("VIRTUAL_ENV")
    if venv and (Path(venv) / "bin" / "python").exists():
        return str(Path(venv) / "bin" / "python")
    return shutil.which("python3") or sys.executable


def _probe_key(python: str) -> str:
    """Identity of the real interpreter binary (all venvs made from it share one probe)."""
    real = os.path.realpath(python)
    st = os.stat(real)
    raw = json.dumps([real, st.st_ino, st.st_size, st.st_mtime_ns, packaging.__version__,
                      sys.version])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def probe(python: str, memo_dir: Path | None = None) -> Target:
    """Query the target interpreter (result memoised in memo_dir by binary identity).

    Tags, markers and the fingerprint depend on the binary (and the host), not on the venv.
    """
    try:
        key = _probe_key(python)
    except OSError as exc:
        raise TargetError(f"{python}: {exc.strerror}") from None
    memo = memo_dir / f"{key}.json" if memo_dir else None
    data = None
    if memo is not None:
        try:
            data = json.loads(memo.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
    if data is None:
        pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(packaging.__file__)))
        try:
            out = subprocess.run([python, "-I", "-c", _PROBE, pkg_parent], capture_output=True,
                                 text=True, timeout=60, check=False)
        except OSError as exc:
            raise TargetError(f"{python}: cannot run: {exc.strerror}") from None
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or ["no output"])[-1]
            raise TargetError(f"{python}: cannot query the interpreter: {last}")
        data = json.loads(out.stdout)
        if memo is not None:
            from cache_core import atomic_write

            try:
                atomic_write(memo, json.dumps(data))
            except OSError:
                pass
    return Target(python=python, tags=data["tags"], env=data["env"],
                  interpreter=data["interpreter"], abi=data["abi"], machine=data["machine"],
                  libc=data["libc"], distro=data["distro"], path=data.get("path", []),
                  version=data.get("version", ""))
