"""Real stores on 127.0.0.1 for the remote tier and the fleet: nginx (WebDAV) and moto (S3 with
SigV4 enforced). The fault server is tests.support.http.FaultServer."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import REPO

BEARER = "s3cret-bearer-token-123"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for servers that cannot be told port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    """Wait until port accepts connections (or proc exits, or timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}") from None
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


class Nginx:
    """nginx with a WebDAV store at /store/ (open), /auth/ (bearer token required), /dav/
    (open, with COPY: a store that can create-if-absent, for leases) and /brief/ (store/'s
    objects, read-only, idle connections closed after 1 s)."""

    def __init__(self, base: Path, *, tls: bool = False) -> None:
        self.base = base
        self.root = base / "www"
        self.scheme = "https" if tls else "http"
        (self.root / "store").mkdir(parents=True)
        (self.root / "auth").mkdir(parents=True)
        (self.root / "dav").mkdir(parents=True)
        (base / "tmp").mkdir()
        self.port = free_port()
        self.access_log = base / "access.log"
        conf = base / "nginx.conf"
        listen = f"listen 127.0.0.1:{self.port};"
        if tls:
            self.ca_file = self_signed_cert(base)
            listen = (f"listen 127.0.0.1:{self.port} ssl; ssl_certificate {self.ca_file}; "
                      f"ssl_certificate_key {base}/key.pem;")
        conf.write_text(f"""
user root root;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log;
events {{ worker_connections 64; }}
http {{
    log_format conn '$remote_addr - - [$time_local] "$request" $status $body_bytes_sent c=$connection';
    access_log {self.access_log} conn;
    client_body_temp_path {base}/tmp;
    proxy_temp_path {base}/tmp; fastcgi_temp_path {base}/tmp;
    uwsgi_temp_path {base}/tmp; scgi_temp_path {base}/tmp;
    client_max_body_size 0;
    server {{
        {listen}
        root {self.root};
        location /store/ {{ dav_methods PUT DELETE; create_full_put_path on; }}
        location /dav/ {{ dav_methods PUT DELETE MKCOL COPY MOVE; create_full_put_path on; }}
        location /brief/ {{ alias {self.root}/store/; keepalive_timeout 1s; }}
        location /auth/ {{
            if ($http_authorization != "Bearer {BEARER}") {{ return 401; }}
            dav_methods PUT DELETE; create_full_put_path on;
        }}
    }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(base), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def url(self, loc: str = "store") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{loc}"

    def requests(self, method: str, part: str = "") -> int:
        """How many requests with this method (and path part) the access log shows."""
        time.sleep(0.05)
        text = self.access_log.read_text() if self.access_log.exists() else ""
        return sum(1 for line in text.splitlines() if f'"{method} ' in line and part in line)

    def connections(self, method: str, part: str = "") -> set[int]:
        """The connections (nginx's serial numbers) that carried those requests."""
        time.sleep(0.05)
        text = self.access_log.read_text() if self.access_log.exists() else ""
        return {int(line.rsplit(" c=", 1)[1]) for line in text.splitlines()
                if f'"{method} ' in line and part in line and " c=" in line}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def self_signed_cert(base: Path) -> str:
    """A certificate for 127.0.0.1 (base/cert.pem, its key in base/key.pem): also its own CA."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(base / "key.pem"), "-out", str(base / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    return str(base / "cert.pem")


class Moto:
    """moto's S3 server with SigV4 enforced: a user, a key, a policy, then a bucket."""

    def __init__(self) -> None:
        self.port = free_port()
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3", PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.moto_atomic",
                                      "-H", "127.0.0.1", "-p", str(self.port)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, 60)
        import boto3  # test environment only (comes with moto)

        self.endpoint = f"http://127.0.0.1:{self.port}"
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="fleet")
        iam.put_user_policy(UserName="fleet", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="fleet")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                               aws_access_key_id=self.access_key,
                               aws_secret_access_key=self.secret_key)
        self.s3.create_bucket(Bucket="fleet")

    def remote(self, **extra: object) -> dict[str, object]:
        d: dict[str, object] = {"url": "s3://fleet/pkgcache", "endpoint": self.endpoint,
                                "region": "us-east-1", "access_key_id": self.access_key,
                                "secret_access_key": self.secret_key}
        d.update(extra)
        return d

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def nginx_available() -> bool:
    """Whether nginx is installed."""
    return shutil.which("nginx") is not None or os.path.exists("/usr/sbin/nginx")


class Store:
    """One backend under test: its config entry and a way to tamper with it behind our back."""

    def __init__(self, kind: str, remote: dict[str, Any], write: Callable[[str, bytes], None],
                 read: Callable[[str], bytes | None]) -> None:
        self.kind = kind
        self._remote = remote
        self.write = write   # write(name, data): replace an object in the store directly
        self.read = read     # read(name) -> bytes or None

    def remote(self, **extra: Any) -> dict[str, Any]:
        """The remote's config entry (extra on top)."""
        d = dict(self._remote, read_timeout=20)  # 2 cores shared by many jobs: moto can lag
        d.update(extra)
        return d


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def dir_store(kind: str, base: Path, url: str) -> Store:
    """A store whose objects are files under base (file:// or nginx's WebDAV root)."""
    return Store(kind, {"url": url}, lambda n, d: _write(base / n, d), lambda n: _read(base / n))


def file_store(base: Path) -> Store:
    """A file:// store in base (created)."""
    base.mkdir()
    return dir_store("file", base, f"file://{base}")


def nginx_store(ng: Nginx) -> Store:
    """nginx's open WebDAV location."""
    return dir_store("nginx", ng.root / "store", ng.url())


def s3_store(moto: Moto, tag: str = "t") -> Store:
    """A fresh prefix in moto's bucket (SigV4)."""
    prefix = tag + secrets.token_hex(6)

    def s3_write(name: str, data: bytes) -> None:
        moto.s3.put_object(Bucket="fleet", Key=f"{prefix}/{name}", Body=data)

    def s3_read(name: str) -> bytes | None:
        try:
            return moto.s3.get_object(Bucket="fleet", Key=f"{prefix}/{name}")["Body"].read()
        except Exception:  # noqa: BLE001 - NoSuchKey
            return None
    return Store("s3", moto.remote(url=f"s3://fleet/{prefix}"), s3_write, s3_read)


def write_keypair(path: Path, name: str) -> str:
    """A signing key made like `pkgcache remote keygen`: the secret in path (0600), the public
    key returned."""
    from cache_core.storage.remote.records import generate_keypair

    secret, public = generate_keypair(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return public
