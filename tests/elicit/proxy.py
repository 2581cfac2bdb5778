"""Debian's nginx on loopback in front of a study server, under a sub-path (as the README's deployment recipe).

nginx comes from tests/browser/install-chromium.sh (run by the README test command). The proxy connects to the
app from 127.0.0.2, the one address the app is told to trust (`trusted_proxies`), and passes the client's
address in X-Forwarded-For, as the README's configuration does.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

PROXY_SOURCE = "127.0.0.2"

CONF = """\
{user}
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 512; }}
http {{
    include {mime};
    server_tokens off;
    log_format study '$remote_addr [$time_local] "$request_method $uri" $status $request_time';
    access_log {root}/access.log study;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    client_max_body_size 64k;
    client_header_timeout 10s;
    client_body_timeout 10s;
{http_extra}
    server {{
        listen 127.0.0.1:{port};
{server_extra}
        location = {prefix_bare} {{ return 301 {prefix}; }}
        location {prefix} {{
            proxy_pass http://{upstream}/;
            proxy_bind {source};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path is None:
        pytest.fail("nginx is not installed: run tests/browser/install-chromium.sh (the README test command does)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def nginx_in_front(upstream: str, root: Path, prefix: str = "/study/", http_extra: str = "", server_extra: str = ""):
    """Run nginx proxying http://127.0.0.1:PORT{prefix} to `upstream` (host:port); yields the public base URL.
    `http_extra`, `server_extra`: more directives for the http and the server block (the README's `limit_conn`)."""
    binary = nginx_binary()
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""  # workers read the temp dirs under root
    conf = root / "nginx.conf"
    conf.write_text(CONF.format(user=user, root=root, mime="/etc/nginx/mime.types", port=port, prefix=prefix,
                                prefix_bare=prefix.rstrip("/"), upstream=upstream, source=PROXY_SOURCE,
                                http_extra=http_extra, server_extra=server_extra))  # fmt: skip
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(root), "-e", str(root / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.time() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.time() > deadline:
                err = proc.stderr.read().decode() if proc.poll() is not None else ""
                log = (root / "error.log").read_text() if (root / "error.log").exists() else ""
                raise AssertionError(f"nginx did not start: {err}{log}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}{prefix}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        proc.stderr.close()
