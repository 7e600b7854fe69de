"""Split a pip command line into pkgcache's own options and the arguments passed to pip."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from hooks.common.errors import UsageError

# pip options that point at package sources: used for the online resolve, dropped offline.
_SOURCE_WITH_VALUE = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links")
_SOURCE_FLAGS = ("--no-index",)
INSTALLERS = ("pip", "uv")
_HASH = re.compile(r"--hash[= ]sha256:([0-9a-fA-F]{64})")
REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


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
            elif arg.startswith(("--trusted-host", "--cert", "--client-cert", "--proxy")):
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


# pip install options that take a value (so the value is not read as a requirement).
_WITH_VALUE = {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i",
               "--index-url", "--extra-index-url", "-f", "--find-links", "-t", "--target",
               "--prefix", "--root", "--platform", "--python-version", "--implementation",
               "--abi", "--src", "--upgrade-strategy", "--progress-bar", "--report",
               "--cache-dir", "--log", "--proxy", "--timeout", "--retries", "--trusted-host",
               "--cert", "--client-cert", "--exists-action", "--global-option", "-C",
               "--config-settings", "--only-binary", "--no-binary", "--build-constraint",
               "--keyring-provider", "--root-user-action", "--use-feature", "--use-deprecated",
               "--log-file", "--group", "--hash"}


def _takes_value(arg: str) -> bool:
    """True for an option whose value is the next argument (not a requirement)."""
    return arg in _WITH_VALUE or (_is_report(arg) and "=" not in arg)


def _pinned_line(text: str) -> bool | None:
    """One requirement (CLI argument or file line): True if ``==``-pinned, hash-pinned or None
    for a blank/comment line; False for anything else (ranges, paths, URLs, VCS)."""
    text = text.split(" #", 1)[0].strip()
    if not text or text.startswith("#"):
        return None
    hashed = "--hash" in text
    if not hashed and "==" not in text:  # neither pinned nor hashed: no parse (saves ~25 ms of
        return False                     # importing packaging.requirements on each run)
    from packaging.requirements import InvalidRequirement, Requirement

    spec = text.split(" --", 1)[0].split(" -", 1)[0].strip()
    try:
        req = Requirement(spec)
    except InvalidRequirement:
        return False
    if req.url:
        return False
    specs = list(req.specifier)
    exact = len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version
    return exact or (hashed and bool(specs))


def _file_pinned(path: str, seen: set[str]) -> bool:
    real = os.path.realpath(path)
    if real in seen:
        return True
    seen.add(real)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().replace("\\\n", " ")
    except (OSError, UnicodeDecodeError):
        return False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("-r ", "--requirement ", "-r", "--requirement=")):
            inc = re.sub(r"^(-r|--requirement)[ =]?", "", line).strip()
            if not _file_pinned(os.path.join(os.path.dirname(path), inc), seen):
                return False
        elif line.startswith(("-c", "--constraint", "--hash", "#", "-i", "--index-url",
                              "--extra-index-url", "-f", "--find-links", "--trusted-host",
                              "--require-hashes", "--pre", "--only-binary", "--no-binary",
                              "--prefer-binary", "--no-index")):
            continue
        elif line.startswith("-"):  # -e, or an option pkgcache does not know: not pinned
            return False
        elif _pinned_line(line) is False:
            return False
    return True


def fully_pinned(pip_args: list[str]) -> bool:
    """True if every requirement named (arguments and -r files) is ``==`` or hash pinned.

    Such a request (e.g. a pip-compile lock) is served from the cache with no index request
    when every file is cached. Unknown syntax counts as not pinned (the safe side: resolve
    online, like pip).
    """
    any_req = False
    args = iter(pip_args)
    for arg in args:
        if arg == "--":
            return False
        if arg in ("-r", "--requirement") or arg.startswith("--requirement="):
            path = arg.split("=", 1)[1] if "=" in arg else next(args, "")
            if not _file_pinned(path, set()):
                return False
            any_req = True
        elif arg in ("-e", "--editable") or arg.startswith("--editable="):
            return False
        elif _takes_value(arg):
            next(args, None)
        elif arg.startswith("-"):
            if arg.startswith("-r") and len(arg) > 2:
                if not _file_pinned(arg[2:], set()):
                    return False
                any_req = True
            continue
        else:
            if _pinned_line(arg) is not True:
                return False
            any_req = True
    return any_req


def dry_run(pip_args: list[str]) -> bool:
    """True if pip will only simulate: ``--dry-run`` (or a prefix optparse accepts, from
    ``--dr``), $PIP_DRY_RUN, or ``dry-run`` in pip's config ([global]/[install])."""
    args = iter(pip_args)
    for arg in args:
        if arg == "--":
            break
        if len(arg) >= 4 and "--dry-run".startswith(arg):
            return True
        if _takes_value(arg):
            next(args, None)
    value = os.environ.get("PIP_DRY_RUN")
    if value is None:
        value = _config_value("dry-run") or _config_value("dry_run")
    return value.strip().lower() in ("1", "true", "yes", "y", "on", "t")


_NETWORK_OPTIONS = ("--cert", "--client-cert", "--trusted-host", "--proxy")


def own_network(pip_args: list[str]) -> str | None:
    """The first setting by which pip reaches its indexes in a way pkgcache's own client does
    not (a CA bundle, a client certificate, a trusted host, a proxy), on the command line
    (also as an optparse prefix), in $PIP_* or in pip's config; None if there is none.
    pkgcache's probe and view cannot speak for such an index: pip reaches it itself."""
    for arg in pip_args:
        if arg == "--":
            break
        name = arg.split("=", 1)[0]
        if len(name) >= 4 and any(o.startswith(name) for o in _NETWORK_OPTIONS):
            return name
    for opt in _NETWORK_OPTIONS:
        var = "PIP_" + opt[2:].upper().replace("-", "_")
        if os.environ.get(var) and var != "PIP_CERT":  # (pkgcache's client reads $PIP_CERT)
            return var
        if _config_value(opt[2:]) or _config_value(opt[2:].replace("-", "_")):
            return f"{opt[2:]} in pip's config"
    return None


def _is_report(arg: str) -> bool:
    """--report (or an optparse prefix of it from ``--rep``), with or without ``=VALUE``."""
    name = arg.split("=", 1)[0]
    return len(name) >= 5 and "--report".startswith(name)


def user_report(pip_args: list[str]) -> str | None:
    """The user's own ``--report`` file (the last one, as pip keeps it), None if none."""
    found = None
    args = iter(pip_args)
    for arg in args:
        if arg == "--":
            break
        if _is_report(arg):
            found = arg.split("=", 1)[1] if "=" in arg else next(args, None)
        elif _takes_value(arg):
            next(args, None)
    return found


def without_report(pip_args: list[str]) -> list[str]:
    """pip_args without the user's ``--report`` and its value: pkgcache's own resolves write
    their own report (pip keeps the last one given)."""
    out: list[str] = []
    args = iter(pip_args)
    for arg in args:
        if arg == "--":
            out.append(arg)
            out.extend(args)
            break
        if _is_report(arg):
            if "=" not in arg:
                next(args, None)
            continue
        out.append(arg)
        if _takes_value(arg):
            value = next(args, None)
            if value is not None:
                out.append(value)
    return out


def index_url(pip_args: list[str]) -> str:
    """The index pip will use first: -i/--index-url, $PIP_INDEX_URL, pip's config, or PyPI."""
    args = iter(pip_args)
    for arg in args:
        if arg == "--":
            break
        if arg in ("-i", "--index-url"):
            return next(args, "") or "https://pypi.org/simple/"
        if arg.startswith("--index-url="):
            return arg.split("=", 1)[1]
        if arg.startswith("-i") and len(arg) > 2 and not arg.startswith("--"):
            return arg[2:]
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    return _config_value("index-url") or "https://pypi.org/simple/"


def pip_timeout(pip_args: list[str]) -> float:
    """pip's socket timeout in seconds: --timeout, $PIP_DEFAULT_TIMEOUT/$PIP_TIMEOUT, else 15."""
    value = os.environ.get("PIP_TIMEOUT") or os.environ.get("PIP_DEFAULT_TIMEOUT") or "15"
    args = iter(pip_args)
    for arg in args:
        if arg == "--":
            break
        if arg in ("--timeout", "--default-timeout"):
            value = next(args, value)
        elif arg.startswith(("--timeout=", "--default-timeout=")):
            value = arg.split("=", 1)[1]
    try:
        return max(0.0, float(value))
    except ValueError:
        return 15.0


def verbose(pip_args: list[str]) -> bool:
    """True with -v/--verbose (pip's full output is then shown) or PKGCACHE_DEBUG=1."""
    if os.environ.get("PKGCACHE_DEBUG"):
        return True
    for arg in pip_args:
        if arg == "--":
            break
        if arg == "--verbose" or re.fullmatch(r"-v+", arg):
            return True
    return False


def hash_mode(pip_args: list[str]) -> bool:
    """True if pip will run in hash-checking mode (--require-hashes, or a --hash anywhere)."""
    args = iter(pip_args)
    for arg in args:
        if arg == "--":
            break
        if arg == "--require-hashes" or arg.startswith("--hash"):
            return True
        if arg in ("-r", "--requirement") or arg.startswith(("--requirement=", "-r")):
            path = (arg.split("=", 1)[1] if "=" in arg
                    else next(args, "") if arg in ("-r", "--requirement") else arg[2:])
            if _file_has_hash(path, set()):
                return True
    return False


def _file_has_hash(path: str, seen: set[str]) -> bool:
    real = os.path.realpath(path)
    if real in seen:
        return False
    seen.add(real)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return False
    if "--hash" in text or "--require-hashes" in text:
        return True
    for m in re.finditer(r"^\s*(?:-r|--requirement)[ =]?\s*(\S+)", text, re.M):
        if _file_has_hash(os.path.join(os.path.dirname(path), m.group(1)), seen):
            return True
    return False


def has_extra_index(pip_args: list[str]) -> bool:
    """True if the command line names an --extra-index-url."""
    return any(a == "--extra-index-url" or a.startswith("--extra-index-url=") for a in pip_args)


def extra_index_urls() -> list[str]:
    """Extra indexes from $PIP_EXTRA_INDEX_URL or pip's config files (whitespace-separated)."""
    if os.environ.get("PIP_EXTRA_INDEX_URL"):
        return os.environ["PIP_EXTRA_INDEX_URL"].split()
    return _config_value("extra-index-url").split()


_target: list[str] = []  # the target interpreter of this run (set_target), for its pip.conf


def set_target(python: str) -> None:
    """Name this run's target interpreter: its venv's ``pip.conf`` is one of pip's files."""
    _target[:] = [python]


def pip_config_files(venv: str | None) -> list[str]:
    """The config files pip reads, lowest precedence first (present or not): each
    ``$XDG_CONFIG_DIRS/pip/pip.conf``, ``/etc/pip.conf``, ``~/.pip/pip.conf``,
    ``~/.config/pip/pip.conf`` (not when $PIP_CONFIG_FILE exists), ``{venv}/pip.conf``,
    $PIP_CONFIG_FILE; none at all when that is ``os.devnull``."""
    env = os.environ.get("PIP_CONFIG_FILE")
    if env == os.devnull:
        return []
    dirs = [d for d in (os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep) if d]
    files = [*[os.path.join(d, "pip", "pip.conf") for d in dirs], "/etc/pip.conf"]
    if not (env and os.path.exists(env)):
        home = os.path.expanduser("~")
        files += [os.path.join(home, ".pip", "pip.conf"),
                  os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"),
                               "pip", "pip.conf")]
    if venv:
        files.append(os.path.join(venv, "pip.conf"))
    return files + ([env] if env else [])


def target_venv(python: str) -> str:
    """The prefix (``sys.prefix``) of an interpreter path: ``VENV/bin/python`` → ``VENV``."""
    return os.path.dirname(os.path.dirname(os.path.abspath(python)))


def _config_value(key: str) -> str:
    files = pip_config_files(target_venv(_target[0]) if _target else None)
    found = ""
    for f in files:
        try:  # (a file that cannot name the key is not parsed: no configparser on most runs)
            with open(f, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError):
            continue
        if key not in text.lower():
            continue
        import configparser

        cp = configparser.ConfigParser(interpolation=None)
        try:
            cp.read_string(text, source=f)
        except configparser.Error:
            continue
        for section in ("global", "install"):
            if cp.has_option(section, key):
                found = cp.get(section, key).strip()
    return found


def _norm(url: str) -> str:
    url = url.strip()
    if "@" in url or "?" in url:  # only then can redacting change it (saves importing ssl)
        from hooks.common.http import redact

        url = redact(url)
    return url.rstrip("/")


def _foreign(path: str) -> int | None:
    """The uid of another party who can change what path holds (path itself or a directory
    above it that is not ours or root's, or writable by group/others without the sticky bit),
    -1 for "anyone" (a group/world-writable path of ours), None if only we and root can."""
    me = os.geteuid()
    cur, first = path, True
    while True:
        try:
            st = os.stat(cur)
        except OSError:
            return None
        if st.st_uid not in (0, me):
            return st.st_uid
        if st.st_mode & 0o022 and (first or not st.st_mode & 0o1000):
            return -1
        parent = os.path.dirname(cur)
        if parent == cur:
            return None
        cur, first = parent, False


def only_ours(path: str) -> bool:
    """True if no one but this process's user and root can change what path holds."""
    return _foreign(path) is None


def local_path(value: str) -> str | None:
    """The real path a find-links / index value names on this machine (None: not local)."""
    from urllib.parse import unquote, urlsplit

    value = value.strip()
    if value.startswith("file:"):
        value = unquote(urlsplit(value).path)
    elif "://" in value:
        return None
    return os.path.realpath(os.path.expanduser(value))


def token(value: str) -> str:
    """A source as provenance records it: a URL without credentials, or for a local path its
    real path as ``file://`` URL, tagged ``#user=UID`` when someone else can write it (then it
    only ever vouches for requests that name that very location, as that user still owns it)."""
    path = local_path(value)
    if path is None:
        return _norm(value)
    from urllib.parse import quote

    who = _foreign(path)
    return "file://" + quote(path) + ("" if who is None else f"#user={who}")


def source_list(pip_args: list[str]) -> list[tuple[str, str]]:
    """(kind, value) of every index ("index") and find-links location ("links") this request
    reads, as given (before normalising): the command line, $PIP_*, pip's config, then the
    options inside its -c/-r files, line by line as pip applies them (a file's --index-url
    replaces every index, --no-index drops those named so far, --extra-index-url adds one)."""
    no_index = "--no-index" in pip_args
    indexes = [index_url(pip_args), *(extra_index_urls() if not has_extra_index(pip_args)
                                      else [])]
    links: list[str] = []
    args = iter(pip_args)
    for arg in args:
        if arg == "--":
            break
        if arg in ("--extra-index-url", "-f", "--find-links"):
            value = next(args, None)
            if value:
                (indexes if arg == "--extra-index-url" else links).append(value)
        elif arg.startswith(("--extra-index-url=", "--find-links=")):
            (indexes if arg.startswith("--extra") else links).append(arg.split("=", 1)[1])
        elif arg.startswith("-f") and len(arg) > 2 and not arg.startswith("--"):
            links.append(arg[2:])
    if no_index:
        indexes = []
    for name, value in file_sources(pip_args):  # line by line, as pip's req_file applies them
        if name == "--no-index":
            indexes = []
        elif name == "--index-url":
            indexes = [value]
        elif name == "--extra-index-url":
            indexes.append(value)
        else:
            links.append(value)
    return [(k, v) for k, v in [*[("index", u) for u in indexes],
                                *[("links", u) for u in links]] if v]


def sources(pip_args: list[str]) -> list[str]:
    """Every index and find-links location this request reads, as provenance tokens (see
    token): what a cached file's recorded sources are compared with."""
    return sorted({token(v) for _, v in source_list(pip_args)})


def origin(url: str, pip_args: list[str], found: list[tuple[str, str]] | None = None
           ) -> list[str]:
    """The sources of this request a file pip took from url came from (one group: all of
    them are required of a later request), [] if none can be named.

    A ``file:`` URL inside a local find-links directory: that directory alone. Otherwise the
    indexes and remote find-links pages on the URL's own host, else all of them and every local
    find-links page (pip does not say which one named the file: a later request must then read
    every one of them). A local find-links location never vouches for a file outside it.
    found: source_list(pip_args), when the caller already has it (it reads pip's config).
    """
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    found = source_list(pip_args) if found is None else found
    # find-links pages (local files or remote URLs, not directories) can name any URL: a file
    # no source can be told for requires every one of them of a later request as well
    pages = [v for k, v in found if k == "links" and not os.path.isdir(local_path(v) or "")]
    if parts.scheme == "file":
        here = os.path.realpath(os.path.dirname(unquote(parts.path)))
        for kind, value in found:
            path = local_path(value)
            if kind == "links" and path is not None and os.path.isdir(path):
                if here == path or here.startswith(path.rstrip("/") + "/"):
                    return [token(value)]
        return sorted({token(v) for k, v in found if k == "index" and local_path(v) is not None}
                      | {token(v) for v in pages})
    remote = [v for k, v in found if k == "index" and local_path(v) is None]
    same = [v for v in remote + pages if local_path(v) is None
            and urlsplit(v.strip()).netloc.rsplit("@", 1)[-1] == parts.netloc]
    return sorted({token(v) for v in (same or remote + pages)})


def requirement_hashes(pip_args: list[str]) -> tuple[list[str], list[str]]:
    """(--hash digests, project names) from the -r files and arguments pip will read."""
    hashes: list[str] = [h for a in pip_args if a.startswith("--hash") for h in _HASH.findall(a)]
    names: list[str] = []
    for line in request_lines(pip_args):
        hashes += [h.lower() for h in _HASH.findall(line)]
        m = REQ_NAME.match(line) if not line.lstrip().startswith("-") else None
        if m:
            names.append(m.group(1))
    return hashes, names


def request_lines(pip_args: list[str]) -> list[str]:
    """The requirement lines pip will read: arguments and the lines of the -r files."""
    lines: list[str] = []
    args = iter(pip_args)
    for arg in args:
        if arg in ("-r", "--requirement"):
            lines += _read_lines(next(args, ""))
        elif arg.startswith("--requirement="):
            lines += _read_lines(arg.split("=", 1)[1])
        elif arg.startswith("-r") and len(arg) > 2:
            lines += _read_lines(arg[2:])
        elif _takes_value(arg):
            next(args, None)  # an option's value (-i URL, -c FILE): not a requirement
        elif not arg.startswith("-"):
            lines.append(arg)
    return lines


def _read_lines(path: str) -> list[str]:
    return [line for line, _ in _walk(path, constraints=False)]


_COMMENT = re.compile(r"(^|\s+)#.*$")
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?=[^\s=-]))(\S.*)$")


def _walk(path: str, *, constraints: bool, depth: int = 0) -> list[tuple[str, str]]:
    """(line, file) of a requirements file as pip reads it: continuations joined, comments
    and blank lines dropped, ``${VAR}`` expanded, nested -r files (and -c files when
    constraints) read in place, relative to the file that names them."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(4 << 20)
    except (OSError, UnicodeDecodeError):
        return []
    out: list[tuple[str, str]] = []
    for line in text.replace("\\\n", " ").splitlines():
        line = _COMMENT.sub("", line).strip()
        if not line:
            continue
        line = _ENV_VAR.sub(lambda m: os.environ.get(m.group(1)) or m.group(0), line)
        m = _INCLUDE.match(line)
        if m and depth < 5 and (constraints or m.group(1) in ("-r", "--requirement")):
            inc = os.path.join(os.path.dirname(path), m.group(2).strip())
            out += _walk(inc, constraints=constraints, depth=depth + 1)
        else:
            out.append((line, path))
    return out


_SOURCE_OPTIONS = ("--index-url", "--extra-index-url", "--no-index", "--find-links")
# every long option a requirements file may hold (for optparse's unambiguous prefixes)
_FILE_OPTIONS = (*_SOURCE_OPTIONS, "--requirement", "--constraint", "--editable",
                 "--no-binary", "--only-binary", "--prefer-binary", "--require-hashes", "--pre",
                 "--trusted-host", "--use-feature", "--hash", "--global-option",
                 "--config-settings")


def file_sources(pip_args: list[str]) -> list[tuple[str, str]]:
    """The index and find-links options inside the -c and -r files pip reads (nested ones
    too), in pip's order (constraint files first): (``--index-url``, ``--extra-index-url``,
    ``--find-links`` or ``--no-index``, value); a find-links path is taken relative to its file
    when it exists there, as pip does."""
    cons: list[str] = []
    reqs: list[str] = []
    args = iter(pip_args)
    for arg in args:
        if arg == "--":
            break
        m = _INCLUDE.match(arg)
        if arg in ("-r", "--requirement", "-c", "--constraint"):
            (reqs if arg in ("-r", "--requirement") else cons).append(next(args, ""))
        elif m:
            (reqs if m.group(1) in ("-r", "--requirement") else cons).append(m.group(2))
        elif _takes_value(arg):
            next(args, None)
    out: list[tuple[str, str]] = []
    for path in (*cons, *reqs):
        for line, where in _walk(path, constraints=True):
            if line.startswith("-"):
                out += _line_sources(line, where)
    return out


def _line_sources(line: str, where: str) -> list[tuple[str, str]]:
    """The index and find-links options of one option line of the file where."""
    import shlex

    try:
        tokens = iter(shlex.split(line))
    except ValueError:
        return []
    out: list[tuple[str, str]] = []
    for tok in tokens:
        name, eq, value = tok.partition("=")
        if tok[:2] in ("-i", "-f"):
            name, value, eq = tok[:2], tok[2:], "=" if tok[2:] else ""
            name = "--index-url" if name == "-i" else "--find-links"
        elif name.startswith("--") and name not in _FILE_OPTIONS:
            full = [o for o in _FILE_OPTIONS if o.startswith(name)]
            name = full[0] if len(full) == 1 else name
        if name not in _SOURCE_OPTIONS:
            continue
        if name == "--no-index":
            out.append((name, ""))
            continue
        value = value if eq else next(tokens, "")
        if name == "--find-links":
            near = os.path.join(os.path.dirname(os.path.abspath(where)), value)
            value = near if value and os.path.exists(near) else value
        if value:
            out.append((name, value))
    return out
