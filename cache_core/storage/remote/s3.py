"""``s3://bucket/prefix``: cas/ and ac/ objects in an S3-compatible store (AWS, MinIO, Ceph RGW,
R2, Garage), signed with a small standard-library AWS Signature V4 signer.

The payload's SHA-256 is known before every upload (it is the object's name), so uploads sign the
payload itself (``x-amz-content-sha256: <hex>``) rather than UNSIGNED-PAYLOAD. Credentials, first
found wins: config (access_key_id/secret_access_key/session_token), the environment
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), a credentials file
(``credentials_file`` or ~/.aws/credentials, profile ``profile``/$AWS_PROFILE/default).
"""

from __future__ import annotations

import configparser
import datetime
import hashlib
import hmac
import http.client
import os
import re
import urllib.parse
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from .base import ListRefused, RemoteError, RemoteMissing, register
from .http import HttpClient, check_status, lease_fault, read_secret

if TYPE_CHECKING:
    from .config import RemoteSpec

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_CODE = re.compile(rb"<Code>([A-Za-z]+)</Code>")
# a listing's bounds (a lying server must not keep pull --all, gc or status running): a page of
# 1000 keys is ~300 KB; 100 000 pages are 100 M objects; the whole listing shares one budget
MAX_LIST_PAGE = 16 << 20
MAX_LIST_PAGES = 100_000
LIST_PAGE_SECONDS = 60.0
LIST_BUDGET = 1800.0
# 403 codes that mean "your credentials are wrong", not "no such object": an error, not a miss.
AUTH_FAILURES = {b"SignatureDoesNotMatch", b"InvalidAccessKeyId", b"InvalidToken",
                 b"ExpiredToken", b"InvalidClientTokenId", b"AuthorizationHeaderMalformed"}


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def sign_v4(method: str, host: str, path: str, query: dict[str, str], headers: dict[str, str],
            payload_sha256: str, access_key: str, secret_key: str, region: str,
            now: datetime.datetime | None = None, service: str = "s3") -> dict[str, str]:
    """Return headers plus x-amz-date, x-amz-content-sha256 and Authorization (SigV4)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    out = dict(headers)
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_sha256
    signed = {k.lower(): " ".join(str(v).split()) for k, v in out.items()}
    signed["host"] = host
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{signed[n]}\n" for n in names)
    signed_headers = ";".join(names)
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(query.items()))
    canonical = "\n".join([method, urllib.parse.quote(path, safe="/-_.~"), canonical_query,
                           canonical_headers, signed_headers, payload_sha256])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret_key).encode(), day), region), service),
                "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                            f"SignedHeaders={signed_headers}, Signature={signature}")
    return out


def load_credentials(opts: dict[str, Any]) -> tuple[str, str, str | None]:
    """(access key, secret key, session token) from config, environment or credentials file."""
    if opts.get("access_key_id") and opts.get("secret_access_key"):
        return opts["access_key_id"], opts["secret_access_key"], opts.get("session_token")
    env = os.environ
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_SESSION_TOKEN")
    path = opts.get("credentials_file") or os.path.expanduser("~/.aws/credentials")
    profile = opts.get("profile") or env.get("AWS_PROFILE") or "default"
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(read_secret(path, 1 << 20))
        sec = parser[profile]
        return (sec["aws_access_key_id"], sec["aws_secret_access_key"],
                sec.get("aws_session_token"))
    except (OSError, KeyError, configparser.Error):
        raise RemoteError("no S3 credentials (config, environment or credentials file)") from None


@register("s3")
class S3Backend:
    """GET/HEAD/PUT on <bucket>/<prefix>/{cas,ac}/<hex>, SigV4-signed."""

    def __init__(self, spec: RemoteSpec) -> None:
        p = urllib.parse.urlsplit(spec.url)
        opts = spec.options
        self.bucket = p.hostname or ""
        self.prefix = p.path.strip("/")
        self.region = opts.get("region") or os.environ.get("AWS_REGION") or "us-east-1"
        endpoint = opts.get("endpoint") or f"https://s3.{self.region}.amazonaws.com"
        self.addressing = opts.get("addressing") or ("path" if opts.get("endpoint") else "virtual")
        ep = urllib.parse.urlsplit(endpoint)
        if self.addressing == "virtual":
            netloc = f"{self.bucket}.{ep.netloc}"
            self.root = ""
        else:
            netloc = ep.netloc
            self.root = f"/{self.bucket}"
        self.client = HttpClient(f"{ep.scheme}://{netloc}", spec.timeout, spec.idle_timeout,
                                 opts.get("ca_file"))
        self.opts = opts
        self._creds: tuple[str, str, str | None] | None = None

    def _key_path(self, name: str) -> str:
        return f"{self.root}/{self.prefix}/{name}" if self.prefix else f"{self.root}/{name}"

    def _signed(self, method: str, path: str, payload: str, query: dict[str, str] | None = None,
                extra: dict[str, str] | None = None) -> dict[str, str]:
        if self._creds is None:
            self._creds = load_credentials(self.opts)
        access, secret, token = self._creds
        headers = dict(extra or {})
        if token:
            headers["x-amz-security-token"] = token
        return sign_v4(method, self.client.netloc, path, query or {}, headers, payload, access,
                       secret, self.region)

    def _check(self, method: str, resp: http.client.HTTPResponse, body: bytes = b"") -> None:
        if resp.status == 403:
            m = _CODE.search(body)
            if m and m.group(1) in AUTH_FAILURES:
                raise RemoteError(f"{method} refused: {m.group(1).decode()} (wrong credentials?)")
        check_status(method, resp.status)

    def get(self, name: str, deadline: float) -> Iterator[bytes]:
        """Stream the object."""
        path = self._key_path(name)
        conn, resp = self.client.request("GET", path, self._signed("GET", path, EMPTY_SHA256),
                                         deadline)
        if resp.status != 200:
            self._check("GET", resp, self.client.finish(conn, resp))
            raise RemoteError(f"GET answered HTTP {resp.status}")
        return self.client.stream(conn, resp, deadline)

    def head(self, name: str, deadline: float) -> int | None:
        """Size or None."""
        path = self._key_path(name)
        conn, resp = self.client.request("HEAD", path, self._signed("HEAD", path, EMPTY_SHA256),
                                         deadline)
        conn.close()
        if resp.status in (403, 404):
            return None
        self._check("HEAD", resp)
        length = resp.getheader("Content-Length") or ""
        return int(length) if length.isdigit() else -1

    def put(self, name: str, body: IO[bytes], size: int, sha256: str, deadline: float,
            *, if_none_match: bool = False) -> None:
        """PUT with the payload's SHA-256 signed; If-None-Match: * never overwrites content."""
        path = self._key_path(name)
        extra = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        if if_none_match:
            extra["If-None-Match"] = "*"
        conn, resp = self.client.request("PUT", path, self._signed("PUT", path, sha256, None, extra),
                                         deadline, body)
        err = HttpClient.small_body(resp)
        conn.close()
        try:
            self._check("PUT", resp, err)
        except RemoteMissing:
            raise RemoteError(f"PUT answered HTTP {resp.status} (no write access?)") from None

    def list(self, kind: str) -> Iterator[str]:
        """ListObjectsV2 under prefix/kind/ (paged)."""
        return (hexname for hexname, _, _ in self.entries(kind))

    def entries(self, kind: str) -> Iterator[tuple[str, int, float]]:
        """(hex, size, Last-Modified) from ListObjectsV2 under prefix/kind/ (paged). Bounded:
        MAX_LIST_PAGE bytes a page, MAX_LIST_PAGES pages, LIST_BUDGET seconds in all, no
        continuation token twice (RemoteError); a refused listing (403: ListBucket denied) or
        one past LIST_BUDGET is ListRefused (no breaker)."""
        import time

        prefix = f"{self.prefix}/{kind}/" if self.prefix else f"{kind}/"
        token: str | None = None
        seen: set[str] = set()
        ends = time.monotonic() + LIST_BUDGET
        for _ in range(MAX_LIST_PAGES):
            if time.monotonic() >= ends:  # a long listing of a big bucket is no fault of the
                # store's (a timeout would open the breaker for apt and pip on this host)
                raise ListRefused(f"listing {kind}/ took over {LIST_BUDGET / 60:.0f} min; "
                                  "stopped")
            q = {"list-type": "2", "prefix": prefix}
            if token:
                q["continuation-token"] = token
            path = self.root or "/"
            qs = urllib.parse.urlencode(sorted(q.items()), quote_via=urllib.parse.quote)
            deadline = min(time.monotonic() + LIST_PAGE_SECONDS, ends)
            conn, resp = self.client.request("GET", f"{path}?{qs}",
                                             self._signed("GET", path, EMPTY_SHA256, q), deadline)
            if resp.status == 200:  # stream() keeps or closes the connection itself
                data = self._page(self.client.stream(conn, resp, deadline), kind)
            else:
                data = b""
                try:
                    self._check("GET", resp, self.client.finish(conn, resp))
                except RemoteMissing:
                    raise ListRefused(f"cannot list {kind}/: HTTP {resp.status} (is listing "
                                      "the bucket allowed to these credentials?)") from None
            for m in re.finditer(rb"<Contents>(.*?)</Contents>", data, re.S):
                part = m.group(1)
                key, size, mod = (re.search(rb"<%s>([^<]*)</%s>" % (t, t), part)
                                  for t in (b"Key", b"Size", b"LastModified"))
                hexname = key.group(1).decode().rsplit("/", 1)[-1] if key else ""
                if len(hexname) == 64:
                    yield (hexname, int(size.group(1)) if size else 0,
                           _epoch(mod.group(1).decode() if mod else ""))
            nxt = re.search(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>", data)
            if not nxt:
                return
            token = nxt.group(1).decode()
            if token in seen:
                raise RemoteError(f"listing {kind}/ loops (a continuation token came twice)")
            seen.add(token)
        raise RemoteError(f"listing {kind}/ has more than {MAX_LIST_PAGES} pages")

    @staticmethod
    def _page(body: Iterator[bytes], kind: str) -> bytes:
        """One listing page's bytes, MAX_LIST_PAGE at most (RemoteError past it)."""
        chunks, total = [], 0
        try:
            for chunk in body:
                total += len(chunk)
                if total > MAX_LIST_PAGE:
                    raise RemoteError(f"a listing page of {kind}/ is larger than "
                                      f"{MAX_LIST_PAGE >> 20} MiB")
                chunks.append(chunk)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()  # the connection is closed, not kept, when the page was cut short
        return b"".join(chunks)

    # -- leases (lease.py): PutObject with If-None-Match: * ---------------------------------------
    def create_lease(self, name: str, body: bytes, deadline: float) -> bool | None:
        """True if created, False if it exists (409/412), None if the store cannot create
        if absent (405/501, another 4xx); RemoteError for a 5xx, 401 or 403 (lease_fault)."""
        import hashlib
        import io

        path = self._key_path(name)
        extra = {"Content-Length": str(len(body)), "Content-Type": "application/octet-stream",
                 "If-None-Match": "*"}
        conn, resp = self.client.request(
            "PUT", path, self._signed("PUT", path, hashlib.sha256(body).hexdigest(), None, extra),
            deadline, io.BytesIO(body))
        HttpClient.small_body(resp)
        conn.close()
        if resp.status == 200:
            return True
        if resp.status in (409, 412):
            return False
        lease_fault("PUT", resp.status)
        return None

    def read_lease(self, name: str, deadline: float) -> bytes | None:
        """The lease's body, None if it is gone."""
        try:
            return b"".join(self.get(name, deadline))[:4096]
        except RemoteMissing:
            return None

    def drop_lease(self, name: str, deadline: float) -> None:
        """DELETE the lease."""
        path = self._key_path(name)
        conn, resp = self.client.request("DELETE", path,
                                         self._signed("DELETE", path, EMPTY_SHA256), deadline)
        HttpClient.small_body(resp)
        conn.close()

    def rename(self, src: str, dst: str, deadline: float) -> None:
        """CopyObject src to dst, then DeleteObject src (``remote gc`` condemns objects to
        trash/ first): RemoteMissing if src is gone."""
        path = self._key_path(dst)
        key = f"{self.prefix}/{src}" if self.prefix else src
        extra = {"Content-Length": "0", "x-amz-copy-source": urllib.parse.quote(f"/{self.bucket}/{key}")}
        conn, resp = self.client.request("PUT", path,
                                         self._signed("PUT", path, EMPTY_SHA256, None, extra),
                                         deadline, b"")
        body = HttpClient.small_body(resp)
        conn.close()
        if resp.status == 404:
            raise RemoteMissing(src)
        self._check("PUT", resp, body)
        if b"<Error>" in body:  # CopyObject may fail after its 200
            m = _CODE.search(body)
            raise RemoteError(f"copy failed: {m.group(1).decode() if m else 'error'}")
        self.delete(src, deadline)

    def delete(self, name: str, deadline: float) -> None:
        """DeleteObject (SigV4; a missing object is fine)."""
        path = self._key_path(name)
        conn, resp = self.client.request("DELETE", path,
                                         self._signed("DELETE", path, EMPTY_SHA256), deadline)
        err = HttpClient.small_body(resp)
        conn.close()
        if resp.status not in (404, 410):
            try:
                self._check("DELETE", resp, err)
            except RemoteMissing:
                raise RemoteError(f"DELETE answered HTTP {resp.status} (no delete access?)") from None


def _epoch(iso: str) -> float:
    """Seconds since the epoch of an S3 LastModified (``2026-12-06T03:24:14.000Z``); now if
    unreadable (an object of unknown age counts as new: gc keeps it)."""
    import time

    try:
        return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()
