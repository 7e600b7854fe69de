"""The apt/apt-get command that runs a hook: found through /proc (apt passes its hooks no
arguments), so the hooks can follow apt's own request and stay out of simulations."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing and dataclasses are not imported: the warm seed's start-up
if TYPE_CHECKING:
    from typing import Any

REPLAY_ENV = "PKGCACHE_APT_REPLAY"  # set in the `--print-uris` child: its hooks do nothing
# apt-get/apt options that take a value (short and long forms).
_ARG_SHORT = set("octaP")
_ARG_LONG = {"--option", "--config-file", "--target-release", "--default-release",
             "--host-architecture", "--build-profiles", "--arch-only-profiles"}
# Runs that must get no deb placed in archives: simulations, and runs that download nothing
# (--no-download: apt fails or, with --ignore-missing, skips what is not there) or answer no at
# the prompt (--assume-no): a deb placed for them would change what apt does or reports.
_ASIDE_LONG = {"--simulate", "--just-print", "--dry-run", "--recon", "--no-act", "--print-uris",
               "--no-download", "--assume-no"}
_ASIDE_KEYS = {"apt::get::simulate": True, "apt::get::print-uris": True,
               "apt::get::download": False, "apt::get::assume-no": True}
_TRUE = {"1", "yes", "true", "with", "on", "enable"}
_FALSE = {"0", "no", "false", "without", "off", "disable"}


class AptInvocation:
    """One running apt/apt-get: its executable, arguments and working directory; words: the
    sub-command first, then its arguments; options: (option, value or "")."""

    __slots__ = ("pid", "exe", "argv", "cwd", "words", "options")

    def __init__(self, pid: int, exe: str, argv: list[str], cwd: str | None,
                 words: list[str] | None = None,
                 options: list[tuple[str, str]] | None = None) -> None:
        self.pid, self.exe, self.argv, self.cwd = pid, exe, argv, cwd
        self.words = words or []
        self.options = options or []

    @property
    def command(self) -> str | None:
        """apt's command word (install, upgrade, ...), or None."""
        return self.words[0] if self.words else None

    @property
    def places_nothing(self) -> bool:
        """-s/--simulate/--dry-run/--print-uris/--no-download/--assume-no/... or the same by
        -o on the line (APT::Get::Simulate=true, APT::Get::Download=false, ...)."""
        for opt, value in self.options:
            if opt in _ASIDE_LONG or opt == "-s":
                return True
            if opt in ("-o", "--option"):
                key, _, val = value.partition("=")
                want = _ASIDE_KEYS.get(key.strip().lower())
                if want is not None and val.strip().lower() in (_TRUE if want else _FALSE):
                    return True
        return False

    def config_files(self) -> list[str]:
        """The -c/--config-file arguments, as absolute paths."""
        out = []
        for opt, value in self.options:
            if opt in ("-c", "--config-file") and value:
                out.append(value if os.path.isabs(value) or not self.cwd
                           else os.path.join(self.cwd, value))
        return out


def parse_args(args: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """apt-get's arguments -> (non-option words, [(option, value)])."""
    words: list[str] = []
    options: list[tuple[str, str]] = []
    it = iter(args)
    for a in it:
        if a == "--":
            words.extend(it)
        elif a.startswith("--"):
            name, eq, value = a.partition("=")
            if name in _ARG_LONG and not eq:
                value = next(it, "")
            options.append((name, value))
        elif a.startswith("-") and len(a) > 1:
            for i, ch in enumerate(a[1:], 1):
                if ch in _ARG_SHORT:
                    options.append(("-" + ch, a[i + 1:] or next(it, "")))
                    break
                options.append(("-" + ch, ""))
        else:
            words.append(a)
    return words, options


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def current(max_depth: int = 8) -> AptInvocation | None:
    """The nearest apt/apt-get ancestor of this process, or None (python-apt, aptitude, ...)."""
    pid = os.getppid()
    try:
        for _ in range(max_depth):
            if pid <= 1:
                return None
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode("utf-8", "surrogateescape") for a in f.read().split(b"\0")]
            if argv and argv[-1] == "":
                argv.pop()
            if argv and os.path.basename(argv[0]) in ("apt-get", "apt"):
                # apt runs hooks from a fork of itself that did chdir("/tmp"): the cwd of the
                # request is the one of the topmost process with the same command line.
                while True:
                    up = _parent(pid)
                    try:
                        with open(f"/proc/{up}/cmdline", "rb") as f:
                            same = f.read().split(b"\0") == [a.encode("utf-8", "surrogateescape")
                                                             for a in argv] + [b""]
                    except OSError:
                        same = False
                    if not same or up <= 1:
                        break
                    pid = up
                try:
                    exe = os.readlink(f"/proc/{pid}/exe")
                except OSError:
                    exe = argv[0]
                try:
                    cwd: str | None = os.readlink(f"/proc/{pid}/cwd")
                except OSError:
                    cwd = None
                words, options = parse_args(argv[1:])
                return AptInvocation(pid, exe, argv, cwd, words, options)
            pid = _parent(pid)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _aside_in(cfg: Any) -> bool:
    """Does this apt configuration say simulate, print URIs, download nothing or answer no?"""
    return any(cfg.find_b(k, not want) == want for k, want in _ASIDE_KEYS.items())


def places_nothing(inv: AptInvocation | None, apt_pkg: Any | None) -> bool:
    """Must the apt running us get no deb placed (a simulation, --no-download, --assume-no:
    command line, -c files or apt's configuration)?"""
    if inv is not None and inv.places_nothing:
        return True
    if apt_pkg is None:
        return False
    if _aside_in(apt_pkg.config):
        return True
    if inv is not None:
        for path in inv.config_files():
            try:
                extra = apt_pkg.Configuration()
                apt_pkg.read_config_file(extra, path)
            except (OSError, SystemError):
                continue
            if _aside_in(extra):
                return True
    return False


def apply_config(inv: AptInvocation, apt_pkg: Any) -> None:
    """Give apt_pkg's configuration the -c files and -o options of apt's command line, in order
    (e.g. `-o Dir::Cache::archives=X`), so the hook works where that apt works."""
    cfg = apt_pkg.config
    for opt, value in inv.options:
        if opt in ("-c", "--config-file") and value:
            path = value if os.path.isabs(value) or not inv.cwd else os.path.join(inv.cwd, value)
            try:
                apt_pkg.read_config_file(cfg, path)
            except (OSError, SystemError):
                pass
        elif opt in ("-o", "--option") and "=" in value:
            key, _, val = value.partition("=")
            if key and not key.endswith("::"):
                cfg.set(key.strip(), val)
