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
import os
import re
import urllib.parse
from dataclasses import dataclass, field

TYPE_CHECKING = False  # redaction alone (config, messages) loads no ssl, http.client or urllib.request
if TYPE_CHECKING:
    import http.client
    import ssl
    import urllib.request
    from typing import IO

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


def connection(scheme: str, host: str, port: int, timeout: float, *,
               cafile: str | None = None) -> tuple[http.client.HTTPConnection, Proxy | None]:
    """An unconnected connection to scheme://host:port along the policy's route, and the proxy
    taken (None: direct). Through a proxy, plain HTTP requests must name the absolute URL (see
    ``target``) and carry ``proxy_headers``; HTTPS is tunnelled (CONNECT), nothing to add."""
    import http.client

    proxy = proxy_for(scheme, host, port)
    conn: http.client.HTTPConnection
    if scheme == "https":
        ctx = ssl_context(cafile)
        if proxy is None:
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx), None
        conn = http.client.HTTPSConnection(proxy.host, proxy.port, timeout=timeout, context=ctx)
        conn.set_tunnel(host, port, proxy_headers(proxy))
        return conn, proxy
    if proxy is None:
        return http.client.HTTPConnection(host, port, timeout=timeout), None
    return http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout), proxy


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
