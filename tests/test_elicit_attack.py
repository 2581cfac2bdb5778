"""The findings of an outside attack pass on the elicitation app (issue 28), one test (or two) each; every one of
them fails on the code the pass attacked:

1. `check` took a mixing pair of two image sizes, whose images then answered 500;
2. integers beyond float range (`rt_ms`, `top_prob`, ...) answered 500;
3. a trailing slash (`/admin/progress/?token=T`) redirected the admin token to the Host header's address;
5. the study database was world-readable with the admin token in plain text, and weak tokens were taken;
6. cross-origin `text/plain` POSTs were processed.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from elicit.fixtures import (  # noqa: E402
    ADMIN_TOKEN,
    call,
    fake_cifar10,
    joined,
    mixing_study,
    soft_answer,
    soft_study,
    write_study,
)

from softlabels.cli import main as cli_main  # noqa: E402
from softlabels.elicit.server import start_server  # noqa: E402
from softlabels.elicit.store import Store  # noqa: E402
from softlabels.elicit.study import load_study  # noqa: E402

ADMIN_ROUTES = ["/admin/progress", "/admin/export.csv", "/admin/attention.csv"]


@pytest.fixture
def source(tmp_path):
    return fake_cifar10(tmp_path / "cifar.npz")


# ------------------------------------------------------------------------------------------- 1. image sizes
def test_check_refuses_a_mixing_pair_of_two_sizes(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "imgs"
    for cls, (width, height) in (("cat", (8, 8)), ("dog", (16, 12))):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.full((height, width, 3), 120, dtype=np.uint8)).save(root / cls / "a.png")
    path = write_study(tmp_path / "sizes.yaml", title="sizes", task="mixing",
                       images={"folder": {"path": str(root), "classes": ["cat", "dog"]}},
                       mixing={"pairs": [["cat/a.png", "dog/a.png"]], "lambdas": [0.5]}, responses_per_image=1,
                       trials_per_participant=1, repeats=0)  # fmt: skip
    assert cli_main(["elicit", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "mixing.pairs[0]" in err and "'cat/a.png' (8×8 px)" in err and "'dog/a.png' (16×12 px)" in err, err


# ------------------------------------------------------------------------------------------- 2. huge integers
@pytest.mark.parametrize("task", ["soft_label", "mixing"])
def test_integers_beyond_float_range_get_400_naming_the_field(tmp_path, source, task):
    if task == "soft_label":
        study = load_study(soft_study(tmp_path, source, range(10)))
        answer = soft_answer(list(study.classes))
    else:
        study = load_study(mixing_study(tmp_path, source, [(3, 8)], lambdas=(0.25, 0.5, 0.75)))
        answer = {"share": 40, "confidence": 70}
    store = Store(tmp_path / "huge.sqlite", study)
    server = start_server(store, ADMIN_TOKEN, quiet=True)
    try:
        _, batch = call(f"{server.url}/api/batch", joined(server.sign, "p1"))
        base = {"submission_id": "huge-00001", "participant": "p1", "sig": server.sign("p1"), "batch": batch["batch"],
                "position": 0, "answer": answer, "rt_ms": 900}  # fmt: skip
        for value in (10**400, -(10**400), 2**1024, 10**4000):
            for field in ("rt_ms", "batch", "position"):
                status, reply = call(f"{server.url}/api/response", {**base, field: value})
                assert status == 400 and f"'{field}'" in reply["error"], (field, status, reply)
            for field in answer:
                status, reply = call(f"{server.url}/api/response", {**base, "answer": {**answer, field: value}})
                assert status == 400 and f"'{field}'" in reply["error"], (field, status, reply)
        assert store.responses() == []
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------- 3. redirects
def raw_get(url: str, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """(status, headers in lower case, body) of one GET, redirects not followed."""
    host, port = url.split("//")[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.request("GET", path, headers=headers or {})
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("redirects")
    store = Store(tmp / "r.sqlite", load_study(soft_study(tmp, fake_cifar10(tmp / "cifar.npz"), range(10))))
    server = start_server(store, ADMIN_TOKEN, quiet=True)
    yield server
    server.stop()


@pytest.mark.parametrize("route", ADMIN_ROUTES)
def test_no_admin_route_redirects_the_token(served, route):
    """With and without a trailing slash, a token in the query and a Host header of the attacker's: the page or a
    404, never a redirect."""
    for path, expected in ((route, 200), (route + "/", 404), (route + "//", 404)):
        status, headers, _ = raw_get(served.url, f"{path}?token={ADMIN_TOKEN}", {"Host": "attacker.example"})
        assert status == expected and "location" not in headers, (path, status, headers.get("location"))


def test_no_participant_route_redirects(served):
    sig = served.sign("p1")
    for path in ("/api/study/", "/static/app.js/", "/index.html/", f"/api/image/1/0/?participant=p1&sig={sig}"):
        status, headers, _ = raw_get(served.url, path, {"Host": "attacker.example"})
        assert status == 404 and "location" not in headers, (path, status, headers.get("location"))


# ------------------------------------------------------------------------------------------- 5. secrets at rest
def _files(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def test_database_is_private_and_keeps_no_plain_token(tmp_path, source):
    old_umask = os.umask(0o022)  # the usual umask, which made the file 0644
    try:
        study = load_study(soft_study(tmp_path, source, range(10)))
        db = tmp_path / "private.sqlite"
        store = Store(db, study)
        store.admin_token(ADMIN_TOKEN)
        store.secret()
        files = _files(db)
        assert len(files) == 3  # the database, its -wal and -shm files while open
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
        assert all(ADMIN_TOKEN.encode() not in path.read_bytes() for path in files)
        assert store.check_admin_token(ADMIN_TOKEN) and not store.check_admin_token(ADMIN_TOKEN + "x")
        store.close()
        # a database of the earlier version: 0644, the token in plain text; it keeps working, hashed and private
        old = tmp_path / "old.sqlite"
        store = Store(old, study)
        store.db.execute("DELETE FROM meta WHERE key LIKE 'admin_token%'")
        store.db.execute("INSERT INTO meta VALUES ('admin_token', ?)", (ADMIN_TOKEN,))
        store.close()
        os.chmod(old, 0o644)
        assert ADMIN_TOKEN.encode() in old.read_bytes()
        store = Store(old, study)
        assert store.admin_token() is None and store.check_admin_token(ADMIN_TOKEN)
        store.close()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    assert all(ADMIN_TOKEN.encode() not in path.read_bytes() for path in _files(old))


def _serve(study_path: Path, *flags: str, env: dict | None = None) -> tuple[subprocess.Popen, str, str]:
    """`softlabels elicit serve --port 0 --quiet` as a process: (the process, its URL, what it printed up to the
    admin addresses). Raises AssertionError with the output when it stops instead."""
    proc = subprocess.Popen([sys.executable, "-m", "softlabels", "elicit", "serve", str(study_path), "--port", "0",
                             "--quiet", *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})  # fmt: skip
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("export:"):
            break
    printed = "".join(lines)
    found = re.search(r"listening:\s+(http://\S+)", printed)
    if not found or proc.poll() is not None:
        proc.kill()
        raise AssertionError(f"serve stopped: {printed}{proc.stdout.read()}")
    for _ in range(100):  # the socket listens once uvicorn runs
        try:
            call(f"{found.group(1)}/api/study", timeout=2)
            break
        except OSError:
            time.sleep(0.1)
    return proc, found.group(1), printed


def test_weak_tokens_are_refused_and_a_token_file_stays_out_of_ps(tmp_path, source, capsys, monkeypatch):
    study_path = soft_study(tmp_path, source, range(10))
    monkeypatch.delenv("SOFTLABELS_ELICIT_TOKEN", raising=False)
    with socket.socket() as busy:  # were a weak token taken, `serve` would stop here instead, on a busy port
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        weak = tmp_path / "weak.txt"
        for token, reason in (("aaaaaaaaaaaaaaaa", "different characters"), ("abcdefghabcdefgh", "repeats"),
                              ("fifteen-chars-x", "at least 16"), ("spaces in a token ok?", "printable")):  # fmt: skip
            weak.write_text(token + "\n")
            for flags in (["--admin-token", token], ["--admin-token-file", str(weak)]):
                assert cli_main(["elicit", "serve", str(study_path), "--port", port, *flags]) == 2
                err = capsys.readouterr().err
                assert f"{flags[0]}: the admin token is too weak" in err and reason in err, err
            monkeypatch.setenv("SOFTLABELS_ELICIT_TOKEN", token)
            assert cli_main(["elicit", "serve", str(study_path), "--port", port]) == 2
            assert "$SOFTLABELS_ELICIT_TOKEN: the admin token is too weak" in capsys.readouterr().err
            monkeypatch.delenv("SOFTLABELS_ELICIT_TOKEN")
    token_file = tmp_path / "token.txt"
    token_file.write_text(ADMIN_TOKEN + "\n")
    token_file.chmod(0o600)
    proc, url, printed = _serve(study_path, "--admin-token-file", str(token_file))
    try:
        assert "admin token:  set from --admin-token-file" in printed and ADMIN_TOKEN not in printed
        assert ADMIN_TOKEN not in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        assert call(f"{url}/admin/export.csv", token=ADMIN_TOKEN)[0] == 200
        assert call(f"{url}/admin/export.csv", token=ADMIN_TOKEN[:-1] + "X")[0] == 403
    finally:
        proc.kill()
        proc.wait(timeout=10)
    proc, url, printed = _serve(study_path)  # no token given: the one set before, not shown again
    try:
        assert "the one set before" in printed and ADMIN_TOKEN not in printed
        assert call(f"{url}/admin/progress", token=ADMIN_TOKEN)[0] == 200
    finally:
        proc.kill()
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------- 6. Content-Type
def test_json_endpoints_take_application_json_only(tmp_path, source):
    study = load_study(soft_study(tmp_path, source, range(10)))
    store = Store(tmp_path / "ct.sqlite", study)
    server = start_server(store, ADMIN_TOKEN, quiet=True)
    host, port = server.address

    def post(path: str, body: bytes, content_type: str | None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(host, port, timeout=20)
        try:
            headers = {"Origin": "https://attacker.example"} | ({"Content-Type": content_type} if content_type else {})
            conn.request("POST", path, body=body, headers=headers)
            res = conn.getresponse()
            return res.status, res.read()
        finally:
            conn.close()

    batch_body = joined(server.sign, "p1")
    try:
        for content_type in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                             "multipart/form-data; boundary=x", None, "application/jsonp", "text/json"):  # fmt: skip
            for path, body in (("/api/batch", batch_body), ("/api/response", {**batch_body, "batch": 1})):
                status, reply = post(path, json.dumps(body).encode(), content_type)
                assert status == 415 and b"Content-Type must be application/json" in reply, (content_type, reply)
        assert store.batches() == []
        for content_type in ("application/json; charset=utf-8", "Application/JSON"):
            status, reply = post("/api/batch", json.dumps(batch_body).encode(), content_type)
            assert status == 200, reply
    finally:
        server.stop()


