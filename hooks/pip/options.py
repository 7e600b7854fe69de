"""Split a pip command line into pkgcache's own options and the arguments passed to pip."""

from __future__ import annotations

from dataclasses import dataclass, field

# pip options that point at package sources: used for the online resolve, dropped offline.
_SOURCE_WITH_VALUE = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links")
_SOURCE_FLAGS = ("--no-index",)
INSTALLERS = ("pip", "uv")


class UsageError(Exception):
    """Bad pkgcache-specific options."""


@dataclass
class PipOptions:
    """pkgcache's options plus the user's pip arguments (in their order)."""

    pip_args: list[str] = field(default_factory=list)
    python: str | None = None
    refresh: bool = False
    offline: bool = False
    installer: str | None = None
    dest: str | None = None
    help: bool = False

    @property
    def no_index(self) -> bool:
        """True if the user asked pip not to use any index."""
        return "--no-index" in self.pip_args

    def offline_args(self) -> list[str]:
        """The user's arguments without index / find-links options (the cache replaces them)."""
        out: list[str] = []
        args = iter(self.pip_args)
        for arg in args:
            if arg == "--":
                out.append(arg)
                out.extend(args)
                break
            if arg in _SOURCE_FLAGS:
                continue
            if arg in _SOURCE_WITH_VALUE:
                next(args, None)
                continue
            if any(arg.startswith(o + "=") for o in _SOURCE_WITH_VALUE if o.startswith("--")):
                continue
            if (arg.startswith("-i") or arg.startswith("-f")) and len(arg) > 2 \
                    and not arg.startswith("--"):
                continue
            out.append(arg)
        return out

    def build_args(self) -> list[str]:
        """Options that change how sdists are built."""
        return build_args(self.pip_args)

    def source_args(self) -> list[str]:
        """Only the user's index / find-links options (for fetching and build dependencies)."""
        out: list[str] = []
        args = iter(self.pip_args)
        for arg in args:
            if arg == "--":
                break
            if arg in _SOURCE_FLAGS:
                out.append(arg)
            elif arg in _SOURCE_WITH_VALUE:
                value = next(args, None)
                if value is not None:
                    out += [arg, value]
            elif any(arg.startswith(o + "=") for o in _SOURCE_WITH_VALUE if o.startswith("--")):
                out.append(arg)
            elif arg.startswith("--trusted-host") or arg in ("--cert", "--client-cert"):
                out.append(arg)
                if "=" not in arg:
                    value = next(args, None)
                    if value is not None:
                        out.append(value)
        return out


_BUILD_FLAGS = ("--no-build-isolation", "--use-pep517", "--no-use-pep517", "--pre")
_BUILD_WITH_VALUE = ("-C", "--config-settings", "--build-constraint")


def build_args(pip_args: list[str]) -> list[str]:
    """The user's options that change how sdists are built (passed to ``pip wheel``)."""
    out: list[str] = []
    args = iter(pip_args)
    for arg in args:
        if arg == "--":
            break
        if arg in _BUILD_FLAGS:
            out.append(arg)
        elif arg in _BUILD_WITH_VALUE:
            value = next(args, None)
            if value is not None:
                out += [arg, value]
        elif any(arg.startswith(o + "=") for o in _BUILD_WITH_VALUE if o.startswith("--")):
            out.append(arg)
    return out


def _value(arg: str, args: list[str], i: int, name: str) -> tuple[str, int]:
    if arg.startswith(name + "="):
        return arg.split("=", 1)[1], i
    if i + 1 >= len(args):
        raise UsageError(f"{name} needs a value")
    return args[i + 1], i + 1


def parse(argv: list[str], *, with_dest: bool = False) -> PipOptions:
    """Take pkgcache's options out of argv; everything else goes to pip unchanged."""
    opts = PipOptions()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            opts.pip_args += argv[i:]
            break
        if arg in ("-h", "--help"):
            opts.help = True
        elif arg == "--refresh":
            opts.refresh = True
        elif arg == "--offline":
            opts.offline = True
        elif arg == "--python" or arg.startswith("--python="):
            opts.python, i = _value(arg, argv, i, "--python")
        elif arg == "--installer" or arg.startswith("--installer="):
            opts.installer, i = _value(arg, argv, i, "--installer")
            if opts.installer not in INSTALLERS:
                raise UsageError(f"--installer must be one of {', '.join(INSTALLERS)}")
        elif with_dest and (arg in ("-d", "--dest") or arg.startswith("--dest=")):
            opts.dest, i = _value(arg, argv, i, "--dest" if arg != "-d" else "-d")
        else:
            opts.pip_args.append(arg)
        i += 1
    if opts.refresh and opts.offline:
        raise UsageError("--refresh and --offline exclude each other")
    return opts
