"""The one HTTP client policy: proxies from the environment, TLS and its CA bundle, timeouts,
and URL redaction. The remote stores (WebDAV/Bazel HTTP, S3) and the drivers' client
(hooks.common.http) both take it from here.

Proxies: ``http_proxy``/``https_proxy`` (then ``all_proxy``; either case, lower case wins) and
``no_proxy``/``NO_PROXY`` (host names, domain suffixes, addresses, ``host:port``, ``*``). An HTTP
proxy is spoken to in plain HTTP whatever its URL's scheme says (as urllib does); a socks proxy is
not used. Plain HTTP goes to the proxy in absolute form; HTTPS through a CONNECT tunnel, the
certificate checked against the origin's name. ``user:password@`` in a proxy URL becomes a
Proxy-Authorization header. Credentials never cross hosts on a redirect (``opener``).
TLS checks certificates against the system bundle (OpenSSL honours SSL_CERT_FILE/SSL_CERT_DIR) or a
CA file the caller names; a named CA file that is missing is an error, never the system bundle.
Every message shows a URL through ``redact``.
"""

from __future__ import annotations

import base64
import errno
import ipaddress
import os
import re
import time
import urllib.parse
from dataclasses import dataclass, field

TYPE_CHECKING = False  # redaction alone (config, messages) loads no ssl, http.client or urllib.request
if TYPE_CHECKING:
    import http.client
    import socket
    import ssl
    import urllib.request
    from typing import IO, Any

    Addr = tuple[int, int, int, Any]  # family, type, proto, sockaddr

DEFAULT_TIMEOUT = 30.0         # seconds: connect and each read, unless the caller says otherwise
USER_AGENT = "pkgcache/1"
_SECRET_NAME = re.compile(r"token|auth|key|sig|secret|pass|pwd|credential|session|cookie|"
                          r"x-amz-|x-goog-|jwt|bearer", re.I)


# -- redaction -----------------------------------------------------------------------------------
def _secret_params(query: str) -> bool:
    return any(_SECRET_NAME.search(name) for name, _ in
               urllib.parse.parse_qsl(query, keep_blank_values=True))


def has_secret(url: str) -> bool:
    """True if url carries credentials: user:password@ or a token-like query parameter."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return True
    return "@" in parts.netloc or _secret_params(parts.query)


def redact(url: str) -> str:
    """The URL without user:password@ and with token-like query values hidden (for messages).
    A URL without a scheme (git's ``user@host:path``) is returned as it is."""
    try:
        parts = urllib.parse.urlsplit(url)
        if not parts.scheme or not parts.netloc:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port:
            host += f":{parts.port}"
    except ValueError:
        return "<bad url>"
    netloc = host if "@" in parts.netloc else parts.netloc
    query = parts.query
    if query and _secret_params(query):
        query = urllib.parse.urlencode(
            [(k, "REDACTED" if _SECRET_NAME.search(k) else v)
             for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True)], safe="/:")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def scrub(text: str, secrets: list[str]) -> str:
    """text with each secret value (4 characters or more) replaced by ``***``: for messages built
    from errors that might quote one."""
    for value in secrets:
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


# -- TLS and proxies -----------------------------------------------------------------------------
def ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    """TLS with certificate checks: the system bundle, or only cafile when one is named.
    A named cafile that is not a file is an error (FileNotFoundError), never the system bundle."""
    import ssl

    if cafile and not os.path.isfile(cafile):
        raise FileNotFoundError(errno.ENOENT, "CA file not found", cafile)
    return ssl.create_default_context(cafile=cafile)


@dataclass(frozen=True)
class Proxy:
    """A proxy from the environment: where to connect, and its credentials (never printed)."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)  # Proxy-Authorization

    @property
    def display(self) -> str:
        """host:port, safe to print."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def proxy_for(scheme: str, host: str, port: int | None = None) -> Proxy | None:
    """The proxy the environment names for scheme://host[:port], None to go direct (no proxy
    set, or the host matches no_proxy/NO_PROXY)."""
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme.lower()) or proxies.get("all")
    if not url:
        return None
    if bypassed(host, port, proxies.get("no", "")):
        return None
    if "://" not in url:
        url = "http://" + url
    try:
        p = urllib.parse.urlsplit(url)
        pport = p.port or 80
    except ValueError:
        return None
    if not p.hostname or p.scheme.lower() not in ("http", "https"):
        return None  # socks5:// and the like: not an HTTP proxy (curl's all_proxy): go direct
    auth = None
    if p.username is not None:
        raw = f"{urllib.parse.unquote(p.username)}:{urllib.parse.unquote(p.password or '')}"
        auth = "Basic " + base64.b64encode(raw.encode()).decode("ascii")
    return Proxy(p.hostname, pport, auth)


def bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether no_proxy (comma-separated: ``*``, host names, ``.domain`` or ``domain`` suffixes,
    IP addresses, any of them with ``:port``) names host, as curl and urllib read it."""
    host = host.lower().strip("[]")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, eport = entry.rpartition(":") if entry.count(":") == 1 or "]:" in entry \
            else (entry, "", "")
        if eport and (not eport.isdigit() or port is None or int(eport) != port):
            continue
        name = name.strip("[]").lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def resolve(host: str, port: int, timeout: float) -> list[Addr]:
    """getaddrinfo for a TCP connection, given at most timeout seconds (TimeoutError after):
    the lookup runs in a daemon thread, so an unreachable resolver (network gone, link up)
    costs the caller that budget, not the resolver's 10-20 s of retries."""
    import socket
    import threading

    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        literal = True
    except ValueError:
        literal = False
    if literal:
        return [(f, t, p, a) for f, t, p, _, a in
                socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)]
    out: list[list[Addr] | OSError] = []

    def lookup() -> None:
        try:
            out.append([(f, t, p, a) for f, t, p, _, a in
                        socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)])
        except OSError as exc:
            out.append(exc)

    worker = threading.Thread(target=lookup, name="pkgcache-resolve", daemon=True)
    worker.start()
    worker.join(max(0.0, timeout))
    if not out:
        raise TimeoutError(errno.ETIMEDOUT, f"resolving {host} timed out")
    got = out[0]
    if isinstance(got, OSError):
        raise got
    return got


def create_connection(address: tuple[str, int], timeout: float | None = None,
                      source_address: tuple[str, int] | None = None) -> socket.socket:
    """socket.create_connection with one budget for everything: name resolution and the
    connects to every address it returns share timeout, each address an equal share of what
    is left (socket's own resolves without a limit and gives each address the whole timeout).
    The socket keeps timeout for its later I/O."""
    import socket

    host, port = address
    budget = 30.0 if timeout is None else timeout
    deadline = time.monotonic() + budget
    error: OSError | None = None
    addrs = resolve(host, port, budget)
    for i, (family, type_, proto, sockaddr) in enumerate(addrs):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, type_, proto)
        try:  # each address a share of what is left: a dead IPv6 route leaves time for IPv4
            sock.settimeout(left / (len(addrs) - i))
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.settimeout(timeout)
        return sock
    if error is None or deadline - time.monotonic() <= 0:
        raise TimeoutError(errno.ETIMEDOUT, f"connecting to {host} timed out")
    raise error


def connection(scheme: str, host: str, port: int, timeout: float, *,
               cafile: str | None = None) -> tuple[http.client.HTTPConnection, Proxy | None]:
    """An unconnected connection to scheme://host:port along the policy's route, and the proxy
    taken (None: direct). Through a proxy, plain HTTP requests must name the absolute URL (see
    ``target``) and carry ``proxy_headers``; HTTPS is tunnelled (CONNECT), nothing to add."""
    import http.client

    proxy = proxy_for(scheme, host, port)
    conn: http.client.HTTPConnection
    to = (proxy.host, proxy.port) if proxy else (host, port)
    if scheme == "https":
        conn = http.client.HTTPSConnection(*to, timeout=timeout, context=ssl_context(cafile))
        if proxy is not None:
            conn.set_tunnel(host, port, proxy_headers(proxy))
    else:
        conn = http.client.HTTPConnection(*to, timeout=timeout)
    # http.client connects through this per-instance hook: one budget for resolve + connect
    conn._create_connection = create_connection  # type: ignore[attr-defined]  # noqa: SLF001
    return conn, proxy


def proxy_headers(proxy: Proxy | None) -> dict[str, str]:
    """The headers a request to the proxy carries (its credentials, if any)."""
    return {"Proxy-Authorization": proxy.authorization} if proxy and proxy.authorization else {}


def target(scheme: str, netloc: str, path: str, proxy: Proxy | None) -> str:
    """The request target: the path, or the absolute URL for plain HTTP through a proxy."""
    return f"{scheme}://{netloc}{path}" if proxy is not None and scheme == "http" else path


def opener(cafile: str | None = None) -> urllib.request.OpenerDirector:
    """A urllib opener with this policy: http/https only (no file:, ftp:, data: even via
    redirects), the environment's proxies and no_proxy, checked TLS."""
    import urllib.request

    director = urllib.request.OpenerDirector()
    for handler in (_proxy_handler(), urllib.request.UnknownHandler(),
                    urllib.request.HTTPHandler(), _https_handler(cafile),
                    urllib.request.HTTPDefaultErrorHandler(), _redirect_handler(),
                    urllib.request.HTTPErrorProcessor()):
        director.add_handler(handler)
    director.addheaders = [("User-Agent", USER_AGENT), ("Accept", "*/*")]
    return director


def _https_handler(cafile: str | None) -> urllib.request.BaseHandler:
    """urllib's HTTPS handler with ``ssl_context(cafile)``; if that fails (a missing or bad CA
    file), one whose every request fails with URLError, as an unreachable server does."""
    import urllib.error
    import urllib.request

    try:
        return urllib.request.HTTPSHandler(context=ssl_context(cafile))
    except OSError as exc:  # ssl.SSLError too
        reason = exc

    class Refusing(urllib.request.BaseHandler):
        def https_open(self, req: urllib.request.Request) -> None:
            raise urllib.error.URLError(reason)

    return Refusing()


def _same_origin(url: str, new_url: str) -> bool:
    """Whether new_url is on url's host and port (or an upgrade from http:80 to https:443 on
    it): where a redirect may take credentials."""
    try:
        a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(new_url)
        ports = {"http": 80, "https": 443}
        pa, pb = a.port or ports.get(a.scheme.lower()), b.port or ports.get(b.scheme.lower())
    except ValueError:
        return False
    if not a.hostname or (a.hostname or "").lower() != (b.hostname or "").lower():
        return False
    return (a.scheme.lower(), pa) == (b.scheme.lower(), pb) or (
        (a.scheme.lower(), pa, b.scheme.lower(), pb) == ("http", 80, "https", 443))


_HOST_CREDENTIALS = ("authorization", "cookie")


def _redirect_handler() -> urllib.request.HTTPRedirectHandler:
    """urllib's redirects, but credentials never cross hosts: Proxy-Authorization never follows
    a redirect (the proxy handler adds the new route's own, if any), and Authorization and
    Cookie follow only to the same host and port (``_same_origin``)."""
    import urllib.request

    class RedirectHandler(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int,
                             msg: str, headers: http.client.HTTPMessage, newurl: str,
                             ) -> urllib.request.Request | None:
            new = super().redirect_request(req, fp, code, msg, headers, newurl)
            if new is None:
                return None
            keep = _same_origin(req.full_url, new.full_url)
            for name in list(new.headers):
                low = name.lower()
                if low == "proxy-authorization" or (not keep and low in _HOST_CREDENTIALS):
                    new.remove_header(name)
            return new

    return RedirectHandler()


def _proxy_handler() -> urllib.request.ProxyHandler:
    """urllib's proxy handler with the environment's proxies (all_proxy filling http and https),
    no_proxy read by ``bypassed`` (ports and IPv6 too)."""
    import urllib.request

    class ProxyHandler(urllib.request.ProxyHandler):
        def proxy_open(self, req: urllib.request.Request, proxy: str, type: str) -> object:
            p = urllib.parse.urlsplit(f"//{req.host}")
            no_proxy = urllib.request.getproxies_environment().get("no", "")
            if bypassed(p.hostname or "", p.port or (443 if type == "https" else 80), no_proxy):
                return None
            return super().proxy_open(req, proxy, type)

    return ProxyHandler(_urllib_proxies())


def _urllib_proxies() -> dict[str, str]:
    """The environment's proxies for urllib's ProxyHandler, all_proxy filling http and https."""
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    for scheme in ("http", "https"):
        if not proxies.get(scheme) and proxies.get("all"):
            proxies[scheme] = proxies["all"]
    return {k: v for k, v in proxies.items() if k in ("http", "https")
            and ("://" not in v or v.lower().startswith(("http://", "https://")))}


def goes_direct(url: str) -> bool:
    """Whether a request for url connects to its host itself (no proxy on the way)."""
    try:
        p = urllib.parse.urlsplit(url)
        return proxy_for(p.scheme, p.hostname or "", p.port) is None
    except ValueError:
        return True
