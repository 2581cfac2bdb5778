"""The findings of an outside attack pass on the elicitation app (issue 28), one test (or two) each; every one of
them fails on the code the pass attacked:

1. `check` took a mixing pair of two image sizes, whose images then answered 500;
2. integers beyond float range (`rt_ms`, `top_prob`, ...) answered 500;
3. a trailing slash (`/admin/progress/?token=T`) redirected the admin token to the Host header's address;
4. junk batches (no image fetched, `rt_ms` 1) filled a study-link study;
5. the study database was world-readable with the admin token in plain text, and weak tokens were taken;
6. cross-origin `text/plain` POSTs were processed;
7. the server's own 503s and 408s were missing from the request log, and the README had no answer to a flood of
   connections (nginx `limit_conn`, run here as the README prints it).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import re
import selectors
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from elicit.fixtures import (  # noqa: E402
    ADMIN_TOKEN,
    call,
    fake_cifar10,
    joined,
    mixing_study,
    rt_since,
    see,
    soft_answer,
    soft_study,
    write_study,
)
from elicit.proxy import PROXY_SOURCE, nginx_in_front  # noqa: E402

from softlabels.cli import main as cli_main  # noqa: E402
from softlabels.elicit.export import export_table  # noqa: E402
from softlabels.elicit.server import start_server  # noqa: E402
from softlabels.elicit.store import Store  # noqa: E402
from softlabels.elicit.study import load_study  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FLOOD = 250  # idle connections from one address: more than --max-connections (200)
ADMIN_ROUTES = ["/admin/progress", "/admin/export.csv", "/admin/flagged.csv", "/admin/attention.csv"]


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


# ------------------------------------------------------------------------------------------- 4. junk
def test_junk_batches_no_longer_fill_a_study_link_study(tmp_path, source):
    """The attack: eight batches answered at once with rt_ms 1 and no image fetched filled a study-link study of
    eight batches. Now the junk is stored (acknowledged) but flagged and not counted, the images stay in the pool,
    and one address still starts at most `limits.batches_per_address_per_hour` batches."""
    study = load_study(soft_study(tmp_path, source, range(32), responses_per_image=1, trials_per_participant=4,
                                  repeats=0, access={"mode": "study_link"},
                                  limits={"open_batches_per_address": 40}))  # fmt: skip
    store = Store(tmp_path / "junk.sqlite", study)
    server = start_server(store, ADMIN_TOKEN, quiet=True)
    key, url, classes = server.access.study_signature(), server.url, list(study.classes)

    def junk(k: int) -> tuple[int, dict]:
        """A batch for ID junk{k} with the study link, every trial answered at once with rt_ms 1."""
        status, batch = call(f"{url}/api/batch", {"participant": f"junk{k}", "sig": key})
        for trial in batch.get("trials", []):
            body = {"submission_id": f"junk-{k}-{trial['position']}", "participant": f"junk{k}", "sig": key,
                    "batch": batch["batch"], "position": trial["position"], "answer": soft_answer(classes),
                    "rt_ms": 1}  # fmt: skip
            assert call(f"{url}/api/response", body)[0] == 200  # acknowledged, and kept
        return status, batch

    try:
        started = time.perf_counter()
        assert all(junk(k)[1]["status"] == "active" for k in range(8))
        junk_seconds = time.perf_counter() - started
        status, batch = call(f"{url}/api/batch", {"participant": "real1", "sig": key})
        assert status == 200 and batch["status"] == "active", batch  # was: {"status": "full"}
        _, export = call(f"{url}/admin/export.csv", token=ADMIN_TOKEN)
        _, flagged = call(f"{url}/admin/flagged.csv", token=ADMIN_TOKEN)
        _, page = call(f"{url}/admin/progress", token=ADMIN_TOKEN)
        for k in range(8, 40):  # the hourly cap per address holds in study-link mode too
            status, reply = junk(k)
            if status != 200:
                break
    finally:
        server.stop()
    assert status == 429 and "batches_per_address_per_hour" in reply["error"], reply
    assert len(store.batches()) == study["limits"]["batches_per_address_per_hour"]
    assert len(store.responses()) == 4 * 19 and all(r["flag"] == "image not fetched" for r in store.responses())
    assert pd.read_csv(io.StringIO(export.decode())).empty
    table = pd.read_csv(io.StringIO(flagged.decode()))
    assert len(table) == 32 and set(table["flag"]) == {"image not fetched"}
    assert "Flagged answers (32, not counted towards M)" in page.decode()
    print(f"\njunk: 8 batches of 4 answers in {junk_seconds:.2f} s, all 32 flagged; the study still hands out "
          f"batches; the address was refused (429) after {len(store.batches())} batches")


def test_an_answer_counts_only_after_its_image_and_min_answer_ms(tmp_path, source):
    from softlabels.elicit.export import flagged_table
    from softlabels.elicit.progress import progress_html

    now = [1000.0]
    study_path = soft_study(tmp_path, source, range(8), responses_per_image=1, trials_per_participant=4, repeats=0)
    study = load_study(study_path)
    assert study["limits"]["min_answer_ms"] == 1000  # the default
    store = Store(tmp_path / "guard.sqlite", study, clock=lambda: now[0])
    classes = list(study.classes)

    def answer(participant, batch, position, rt_ms, fetch_after=None):
        """Submit one answer; with `fetch_after` (seconds), its image is fetched that long before."""
        if fetch_after is not None:
            store.fetch_stimulus(batch, position, participant)
            now[0] += fetch_after
        store.submit({"submission_id": f"guard-{participant}-{position}", "participant": participant, "batch": batch,
                      "position": position, "answer": soft_answer(classes), "rt_ms": rt_ms})  # fmt: skip

    hasty = store.batch_for("hasty")["batch"]
    answer("hasty", hasty, 0, 2000)  # no image fetched
    answer("hasty", hasty, 1, 150, fetch_after=0.2)  # 200 ms after the fetch
    answer("hasty", hasty, 2, 1, fetch_after=5)  # rt_ms 1, though 5 s passed
    answer("hasty", hasty, 3, 9000, fetch_after=3)  # claims 9 s, 3 s after the fetch
    with pytest.raises(Exception, match="no such trial"):
        store.fetch_stimulus(hasty, 0, "someone-else")  # a trial's image is its participant's only
    careful = store.batch_for("careful")["batch"]
    answer("careful", careful, 0, 2500, fetch_after=3)
    flags = [r["flag"] for r in store.responses()]
    assert flags[0] == "image not fetched"
    assert flags[1].startswith("answered 200 ms after its image was fetched") and "min_answer_ms 1000" in flags[1]
    assert flags[2].startswith("answered 5000 ms after its image was fetched, rt_ms 1 ")
    assert flags[3] == "rt_ms 9000 is longer than the 3000 ms since its image was fetched"
    assert flags[4] == ""
    assert len(export_table(store)) == 1 and list(flagged_table(store)["flag"]) == flags[:4]
    assert store.batch_for("third")["status"] == "active"  # M = 1: hasty's images went back to the pool
    page = progress_html(store, ADMIN_TOKEN, gamma=0.1)
    assert "Flagged answers (4, not counted towards M)" in page and "<td>hasty</td><td>4</td>" in page
    out = tmp_path / "mine.csv"
    assert cli_main(["elicit", "export", str(study_path), "--db", str(store.path), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 1 and list(pd.read_csv(tmp_path / "mine.flagged.csv")["flag"]) == flags[:4]


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


@contextlib.contextmanager
def serving(study_path: Path, *flags: str):
    """`softlabels elicit serve --port 0 --quiet` as a process; yields (the process, its URL, what it printed up to
    the admin addresses), and kills it after. AssertionError with the output when it stops instead."""
    proc = subprocess.Popen([sys.executable, "-m", "softlabels", "elicit", "serve", str(study_path), "--port", "0",
                             "--quiet", *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("export:"):
                break
        printed = "".join(lines)
        found = re.search(r"listening:\s+(http://\S+)", printed)
        assert found and proc.poll() is None, f"serve stopped: {printed}{proc.stdout.read()}"
        for _ in range(100):  # the socket listens once uvicorn runs
            try:
                call(f"{found.group(1)}/api/study", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        yield proc, found.group(1), printed
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()


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
    with serving(study_path, "--admin-token-file", str(token_file)) as (proc, url, printed):
        assert "admin token:  set from --admin-token-file" in printed and ADMIN_TOKEN not in printed
        assert ADMIN_TOKEN not in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        assert call(f"{url}/admin/export.csv", token=ADMIN_TOKEN)[0] == 200
        assert call(f"{url}/admin/export.csv", token=ADMIN_TOKEN[:-1] + "X")[0] == 403
    with serving(study_path) as (_, url, printed):  # no token given: the one set before, not shown again
        assert "the one set before" in printed and ADMIN_TOKEN not in printed
        assert call(f"{url}/admin/progress", token=ADMIN_TOKEN)[0] == 200


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


# ------------------------------------------------------------------------------------------- 7. floods
def _idle(address: tuple[str, int], n: int, source: str = "127.0.0.1", head: bytes = b"") -> list[socket.socket]:
    """`n` connections from `source` that send `head` (nothing by default) and then wait."""
    socks = []
    for _ in range(n):
        sock = socket.create_connection(address, timeout=10, source_address=(source, 0))
        if head:
            sock.sendall(head)
        socks.append(sock)
    return socks


def _first_lines(socks: list[socket.socket], within: float) -> list[bytes]:
    """The first line each connection received within `within` seconds (b"" for none, or closed)."""
    lines = [b""] * len(socks)
    with selectors.DefaultSelector() as selector:
        for k, sock in enumerate(socks):
            selector.register(sock, selectors.EVENT_READ, k)
        deadline = time.monotonic() + within
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    lines[key.data] = key.fileobj.recv(64).split(b"\r\n")[0]
                except OSError:
                    pass
                selector.unregister(key.fileobj)
    return lines


def test_the_servers_own_503_and_408_are_logged(tmp_path, source, capfd):
    store = Store(tmp_path / "log.sqlite", load_study(soft_study(tmp_path, source, range(10))))
    server = start_server(store, ADMIN_TOKEN, quiet=False, max_connections=4, request_timeout=1)
    slow_body = b"POST /api/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{"
    try:
        held = (_idle(server.address, 2) + _idle(server.address, 1, head=b"GET /api/study HTTP/1.1\r\nHost: x\r\n")
                + _idle(server.address, 1, head=slow_body))  # fmt: skip
        time.sleep(0.3)  # accepted: four connections open
        assert call(f"{server.url}/api/study")[0] == 503  # the fifth
        replies = _first_lines(held, within=5)  # each dropped after the request timeout
        for sock in held:
            sock.close()
        assert call(f"{server.url}/api/study")[0] == 200
    finally:
        server.stop()
    log = capfd.readouterr().err
    assert re.search(r"127\.0\.0\.1 GET /api/study 503\n", log), log
    assert len(re.findall(r"127\.0\.0\.1 - - 408\n", log)) == 3, log  # no request line or headers yet
    assert re.search(r"127\.0\.0\.1 POST /api/batch 408\n", log), log  # the headers, not the body
    assert re.search(r"127\.0\.0\.1 GET /api/study 200\n", log), log
    assert replies == [b"HTTP/1.1 408 Request Timeout"] * 4, replies


def readme_limit_conn() -> tuple[str, str]:
    """The `limit_conn` directives of the README's nginx configuration: (those of the http level, before the
    `server` block; those inside it)."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Putting a study online"):]
    start = section.index("```nginx\n") + len("```nginx\n")
    block = section[start:section.index("\n```", start)]
    head, _, body = block.partition("server {")
    http = [line.strip() for line in head.splitlines() if line.strip().startswith("limit_conn")]
    server = [line.strip() for line in body.splitlines() if line.strip().startswith("limit_conn")]  # to its `}`
    assert http and server, "the README's nginx configuration has no limit_conn_zone/limit_conn"
    return "\n".join(http), "\n".join(server)


def test_readme_nginx_limit_conn_keeps_a_flood_from_starving_participants(tmp_path, source):
    """FLOOD idle connections from one address starve the app alone (503 for everyone); behind nginx with the
    README's `limit_conn`, the same flood plus 100 slowly sent requests from that address leave a participant's
    batch untouched, and nginx refuses the slow requests beyond the limit itself."""
    http_extra, server_extra = readme_limit_conn()
    limit = int(re.search(r"limit_conn\s+\w+\s+(\d+);", server_extra).group(1))
    study = load_study(soft_study(tmp_path, source, range(10), limits={"min_answer_ms": 0}))
    store = Store(tmp_path / "flood.sqlite", study)
    server = start_server(store, ADMIN_TOKEN, quiet=True, trusted_proxies=[PROXY_SOURCE])
    attacker = "127.0.0.3"
    try:
        held = _idle(server.address, FLOOD, source=attacker)
        time.sleep(0.3)
        direct = call(f"{server.url}/api/study")[0]
        for sock in held:
            sock.close()
        with nginx_in_front(f"127.0.0.1:{server.address[1]}", tmp_path / "nginx", http_extra=http_extra,
                            server_extra=server_extra) as public:  # fmt: skip
            nginx = (urlsplit(public).hostname, urlsplit(public).port)
            slow = (b"POST /study/api/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 90\r\n\r\n{")  # fmt: skip
            held = _idle(nginx, FLOOD, source=attacker) + _idle(nginx, 100, source=attacker, head=slow)
            time.sleep(0.5)
            url = public.rstrip("/")
            statuses = []
            status, batch = call(f"{url}/api/batch", joined(server.sign, "real1"))
            statuses.append(status)
            for trial in batch["trials"]:
                seen = see(url, "real1", server.sign("real1"), trial)
                body = {"submission_id": f"real-one-{trial['position']}", "participant": "real1",
                        "sig": server.sign("real1"), "batch": batch["batch"], "position": trial["position"],
                        "answer": soft_answer(list(study.classes)), "rt_ms": rt_since(seen)}  # fmt: skip
                statuses.append(call(f"{url}/api/response", body)[0])
            refused = sum(line.startswith(b"HTTP/1.1 503") for line in _first_lines(held[FLOOD:], within=1))
            for sock in held:
                sock.close()
    finally:
        server.stop()
    assert direct == 503
    assert statuses == [200] * 6, statuses
    assert refused == 100 - limit, (refused, limit)
    assert len(export_table(store)) == 5
    print(f"\nflood: {FLOOD} idle connections from {attacker}: the app alone answered a participant {direct}; "
          f"behind nginx (limit_conn {limit}), with 100 slowly sent requests more, the participant's "
          f"{len(statuses)} requests got {sorted(set(statuses))} and nginx refused {refused} slow requests with 503")
