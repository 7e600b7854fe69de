"""Real servers on 127.0.0.1 for the remote-tier tests: nginx (WebDAV), moto (S3 with SigV4
enforced) and a small fault server (500, 403, truncated, endless, silent)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

BEARER = "s3cret-bearer-token-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
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
    """nginx with a WebDAV store at /store/ (open) and /auth/ (bearer token required)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "www"
        (self.root / "store").mkdir(parents=True)
        (self.root / "auth").mkdir(parents=True)
        (base / "tmp").mkdir()
        self.port = free_port()
        self.access_log = base / "access.log"
        conf = base / "nginx.conf"
        conf.write_text(f"""
user root root;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {self.access_log};
    client_body_temp_path {base}/tmp;
    proxy_temp_path {base}/tmp; fastcgi_temp_path {base}/tmp;
    uwsgi_temp_path {base}/tmp; scgi_temp_path {base}/tmp;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
        location /store/ {{ dav_methods PUT DELETE; create_full_put_path on; }}
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
        return f"http://127.0.0.1:{self.port}/{loc}"

    def requests(self, method: str, part: str = "") -> int:
        """How many requests with this method (and path part) the access log shows."""
        time.sleep(0.05)
        text = self.access_log.read_text() if self.access_log.exists() else ""
        return sum(1 for line in text.splitlines() if f'"{method} ' in line and part in line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Moto:
    """moto's S3 server with SigV4 enforced: a user, a key, a policy, then a bucket."""

    def __init__(self) -> None:
        self.port = free_port()
        exe = Path(sys.executable).with_name("moto_server")
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        self.proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(self.port)], env=env,
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


class FaultServer:
    """A raw TCP server answering every request with one fault; counts connections."""

    def __init__(self, mode: str, body: bytes = b"") -> None:
        self.mode = mode
        self.body = body
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/base"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.mode == "silent":  # accepts, reads, never answers
                self._held.append(conn)
                return
            conn.settimeout(5)
            conn.recv(65536)
            m = self.mode
            if m in ("500", "403", "401"):
                text = {"500": "Internal Server Error", "403": "Forbidden",
                        "401": "Unauthorized"}[m]
                conn.sendall(f"HTTP/1.1 {m} {text}\r\nContent-Length: 0\r\n"
                             "Connection: close\r\n\r\n".encode())
            elif m == "truncated":
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.body)}\r\n"
                             "Connection: close\r\n\r\n".encode() + self.body[:len(self.body) // 2])
            elif m in ("endless", "trickle"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                chunk = os.urandom(65536)
                while not self._stop:
                    conn.sendall(chunk if m == "endless" else chunk[:100])
                    if m == "trickle":
                        time.sleep(0.2)
        except OSError:
            pass
        finally:
            if self.mode != "silent":
                conn.close()

    def stop(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self._held:
            c.close()


def nginx_available() -> bool:
    return shutil.which("nginx") is not None or os.path.exists("/usr/sbin/nginx")
