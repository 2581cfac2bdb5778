"""The study server under faults, as a separate `softlabels elicit serve` process: slow clients are dropped within
the request timeout, bodies with a negative, missing or oversized Content-Length are refused before they are read
(the server's memory measured), and an unread body is never parsed as a next request.
(SIGKILL mid-study: tests/test_elicit.py::test_sigkill_mid_study_loses_nothing.)"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from elicit.fixtures import call, fake_cifar10, soft_study  # noqa: E402

TOKEN = "faults-admin-token-0123"
TIMEOUT = 2.0  # --request-timeout of the server under test
MB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    """A `softlabels elicit serve` process with --request-timeout 2; yields (port, Proc)."""
    study = soft_study(tmp_path, fake_cifar10(tmp_path / "cifar.npz"), range(10))
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - the child keeps its own copy
    proc = subprocess.Popen(
        [sys.executable, "-m", "softlabels", "elicit", "serve", str(study), "--port", str(port), "--quiet",
         "--request-timeout", str(TIMEOUT)],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, SOFTLABELS_ELICIT_TOKEN=TOKEN),
    )  # fmt: skip
    log.close()
    try:
        deadline = time.time() + 60
        while True:
            try:
                if call(f"http://127.0.0.1:{port}/api/study", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        yield port, Proc(proc.pid)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return sock


def _read_until_closed(sock: socket.socket, limit: float = 30) -> bytes:
    sock.settimeout(limit)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data


class Proc:
    """Resident memory and thread count of a process, from /proc (Linux)."""

    def __init__(self, pid: int):
        self.pid = pid

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def num_threads(self) -> int:
        return self._status("Threads")


def _rss(proc: Proc) -> float:
    return proc._status("VmRSS") / 1024  # kB -> MB


def test_slow_clients_are_dropped_within_the_timeout(served):
    port, proc = served
    partial = {
        "silent": b"",
        "half a request line": b"POST /api/respo",
        "headers unfinished": b"POST /api/response HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",
        "2 of 100 body bytes": b"POST /api/response HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 100\r\n\r\n{\"",
    }
    results = {}

    def hold(name: str, data: bytes) -> None:
        sock = _connect(port)
        t0 = time.perf_counter()
        if data:
            sock.sendall(data)
        reply = _read_until_closed(sock)
        results[name] = (time.perf_counter() - t0, reply)
        sock.close()

    threads = [threading.Thread(target=hold, args=item) for item in partial.items()]
    for t in threads:
        t.start()
    # 150 more half-sent requests at once (under --max-connections 200): they cost no thread each, and are dropped
    crowd = [_connect(port) for _ in range(150)]
    for sock in crowd:
        sock.sendall(b"POST /api/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 50\r\n\r\n{")
    time.sleep(0.5)
    threads_while_held = proc.num_threads()
    for t in threads:
        t.join(timeout=30)
    # each is closed with 408
    replies = [_read_until_closed(sock, 10)[:12] for sock in crowd]
    for sock in crowd:
        sock.close()
    counts = {code: sum(r == b"HTTP/1.1 " + code.encode() for r in replies) for code in ("408", "503")}
    for name, (seconds, reply) in results.items():
        assert TIMEOUT - 0.2 <= seconds <= TIMEOUT + 2, (name, seconds)
        assert reply.startswith(b"HTTP/1.1 408"), (name, reply[:80])
    assert counts["408"] == 150 and threads_while_held < 60, (
        counts, threads_while_held)
    assert call(f"http://127.0.0.1:{port}/api/study")[0] == 200  # and the server serves on
    times = ", ".join(f"{name} {s:.2f} s" for name, (s, _) in results.items())
    print(f"\nslow clients (--request-timeout {TIMEOUT:g}): dropped after {times}; 150 more half-sent requests held "
          f"with {threads_while_held} server threads, {counts['408']} closed with 408")


def _send_body(port: int, head: bytes, total: int, chunked: bool = False) -> tuple[bytes, int]:
    """Send `head`, then up to `total` bytes of body; returns (the reply, bytes the server took before closing)."""
    sock = _connect(port)
    sock.sendall(head)
    chunk = b"[" * (64 * 1024)
    if chunked:
        chunk = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent = 0
    sock.settimeout(5)
    try:
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    reply = b""
    try:
        reply = _read_until_closed(sock, 10)
    except OSError:
        pass
    sock.close()
    return reply, sent


def test_oversized_bodies_are_refused_before_they_are_read(served):
    port, proc = served
    for _ in range(3):  # warm up: imports and first allocations happen before the measurement
        call(f"http://127.0.0.1:{port}/api/response", b"{}")
        call(f"http://127.0.0.1:{port}/api/batch", {"participant": "warm"})
    before = _rss(proc)
    cases = {
        "Content-Length: -1": b"POST /api/response HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "Content-Length: abc": b"POST /api/response HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "Content-Length: 52428800": b"POST /api/response HTTP/1.1\r\nHost: x\r\nContent-Length: 52428800\r\n\r\n",
        "no Content-Length": b"POST /api/response HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "chunked": b"POST /api/response HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        "chunked + Content-Length": b"POST /api/batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                    b"Content-Length: 10\r\n\r\n",
    }  # fmt: skip
    expected = {"Content-Length: -1": 400, "Content-Length: abc": 400, "Content-Length: 52428800": 413,
                "no Content-Length": 411, "chunked": 411, "chunked + Content-Length": (400, 411)}  # fmt: skip
    lines = []
    for name, head in cases.items():
        reply, sent = _send_body(port, head, 50 * MB, chunked=name.startswith("chunked"))
        status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else None
        want = expected[name]
        assert status in (want if isinstance(want, tuple) else (want,)), (name, reply[:200])
        assert reply.count(b"HTTP/1.1 ") == 1, (name, reply[:300])  # one reply, then the connection is closed
        lines.append(f"{name} -> {status} after {sent / MB:.1f} MB sent")
    after = _rss(proc)
    assert after - before < 5, (before, after)
    print(f"\noversized bodies: server RSS {before:.1f} MB before, {after:.1f} MB after ({after - before:+.1f} MB); "
          + "; ".join(lines))


def test_unread_body_is_not_parsed_as_the_next_request(served):
    port, _ = served
    smuggled = b"GET /admin/export.csv?token=" + TOKEN.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    # a 413: the body is never read and the connection closes, so the smuggled request is never answered
    sock = _connect(port)
    sock.sendall(b"POST /api/response HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + smuggled)
    reply = _read_until_closed(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 413") and reply.count(b"HTTP/1.1") == 1, reply[:300]
    # a refused answer on a kept-alive connection: its body is framed by Content-Length, the next request is the
    # next one the client sends, and a GET's body is skipped, not parsed
    body = b'{"participant": "nobody"}'
    sock = _connect(port)
    sock.sendall(b"POST /api/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                 b"\r\n%s" % (len(body), body)
                 + b"GET /api/study HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled)
                 + b"GET /api/study HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")  # fmt: skip
    reply = _read_until_closed(sock)
    sock.close()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)
    assert statuses == [b"403", b"200", b"200"], reply[:600]
    assert b"text/csv" not in reply
