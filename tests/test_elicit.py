"""The elicitation app without a browser: study-file errors, server-side validation, signed links, tokens,
reservation caps, idempotent retries, 50 concurrent participants over loopback (directly and through nginx),
SIGKILL and restart, batch expiry, exports and the import check for the chapter-3 runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
    signer,
    soft_answer,
    soft_study,
    write_study,
)
from elicit.proxy import PROXY_SOURCE, nginx_in_front  # noqa: E402

from softlabels.cli import main as cli_main  # noqa: E402
from softlabels.elicit.export import export_table  # noqa: E402
from softlabels.elicit.server import start_server  # noqa: E402
from softlabels.elicit.store import Store, StoreError  # noqa: E402
from softlabels.elicit.study import StudyError, load_study  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def source(tmp_path):
    return fake_cifar10(tmp_path / "cifar.npz")


def answer_batch(url, participant, classes, sign, sid_prefix=None, latencies=None):
    """Answer every open trial of the participant's batch (signed link: `sign`) as the page does, fetching each
    image first; returns the server's replies. `latencies`: a list that gets each request's seconds."""

    def timed(function, *args):
        t0 = time.perf_counter()
        out = function(*args)
        if latencies is not None:
            latencies.append(time.perf_counter() - t0)
        return out

    status, batch = timed(call, f"{url}/api/batch", joined(sign, participant))
    assert status == 200, batch
    if batch["status"] != "active":
        return batch, []
    replies = []
    for trial in batch["trials"]:
        if trial["answered"]:
            continue
        seen = timed(see, url, participant, sign(participant), trial)
        body = {"submission_id": f"sub-{sid_prefix or participant}-{batch['batch']}-{trial['position']}",
                "participant": participant, "sig": sign(participant), "batch": batch["batch"],
                "position": trial["position"], "answer": soft_answer(classes, trial["position"]),
                "rt_ms": rt_since(seen)}  # fmt: skip
        replies.append((body, timed(call, f"{url}/api/response", body)))
    return batch, replies


# ------------------------------------------------------------------------------------------- study files
@pytest.mark.parametrize(
    "change, key",
    [
        ({"task": "rating"}, "task"),
        ({"responses_per_image": 0}, "responses_per_image"),
        ({"images": {"cifar10": {"indices": [1, 2, 10001]}}}, "images.cifar10.indices[2]"),
        ({"colour": "red"}, "colour"),
        ({"completion": {"url": "ftp://x"}}, "completion.url"),
        ({"trials_per_participant": 50}, "trials_per_participant"),
        ({"repeats": 4}, "repeats"),
        ({"mixing": {"pairs": [[1, 2]], "lambdas": [0.5]}}, "mixing"),
    ],
)
def test_malformed_study_names_the_key(tmp_path, source, change, key):
    path = soft_study(tmp_path, source, range(10), **change)
    with pytest.raises(StudyError) as err:
        load_study(path)
    assert f"'{key}'" in str(err.value) and str(path) in str(err.value)


def test_study_file_errors_from_the_cli_write_nothing(tmp_path, source, capsys):
    bad = soft_study(tmp_path, source, [5, 6, 7, 8, 9, 10], images={"cifar10": {"indices": [1], "source": "nope.npz"}})
    assert cli_main(["elicit", "serve", str(bad), "--port", "0"]) == 2
    assert "images.cifar10.source" in capsys.readouterr().err
    assert not bad.with_suffix(".sqlite").exists()
    yaml_error = tmp_path / "broken.yaml"
    yaml_error.write_text("title: [unclosed\n")
    assert cli_main(["elicit", "check", str(yaml_error)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    mixing = mixing_study(tmp_path, source, [(3, 13)])  # both class 3: not a mix of two classes
    assert cli_main(["elicit", "check", str(mixing)]) == 2
    assert "mixing.pairs[0]" in capsys.readouterr().err
    unknown = mixing_study(tmp_path, source, [(3, 8)])
    text = unknown.read_text().replace("- 8\n", "- 99\n", 1)
    unknown.write_text(text.replace("- 3\n  - 8", "- 3\n  - 99"))
    assert cli_main(["elicit", "check", str(unknown)]) == 2
    assert "unknown image" in capsys.readouterr().err


def test_folder_study_and_mixed_pixels(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    for cls, value in (("cat", 200), ("dog", 40)):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(root / cls / "a.png")
    path = write_study(tmp_path / "f.yaml", title="f", task="mixing", images={"folder": {"path": str(root), "classes": ["cat", "dog"]}},
                       mixing={"pairs": [["cat/a.png", "dog/a.png"]], "lambdas": [0.25]}, responses_per_image=1,
                       trials_per_participant=1, repeats=0)  # fmt: skip
    study = load_study(path)
    (stimulus,) = study.stimuli
    assert stimulus.name == "mixed_0.25_Cat_a_Dog_a.png"
    assert int(study.pixels(stimulus)[0, 0, 0]) == round(0.25 * 200 + 0.75 * 40)


# ------------------------------------------------------------------------------------------- requests
PUBLIC_STUDY = {"title", "task", "framing", "crowd_size", "instructions", "consent", "participant_param", "display_px",
                "classes", "sig_param"}
PUBLIC_BATCH = {"status", "batch", "participant", "classes", "trials"}


def test_bad_requests_are_refused_and_nothing_stored(tmp_path, source):
    study = load_study(soft_study(tmp_path, source, range(10)))
    store = Store(tmp_path / "s.sqlite", study)
    server = start_server(store, ADMIN_TOKEN, quiet=True)
    url, classes, sign = server.url, list(study.classes), server.sign
    try:
        _, batch = call(f"{url}/api/batch", joined(sign, "p1"))
        base = {"submission_id": "sub-00001", "participant": "p1", "sig": sign("p1"), "batch": batch["batch"],
                "position": 0, "rt_ms": 800}  # fmt: skip
        bad_answers = [
            ({"top_class": "unicorn", "top_prob": 50}, "unicorn"),
            ({"top_class": "cat", "top_prob": 101}, "top_prob"),
            ({"top_class": "cat", "top_prob": 60, "second_class": "cat", "second_prob": 10}, "second_class"),
            ({"top_class": "cat", "top_prob": 60, "second_class": "dog", "second_prob": 50}, "sum"),
            ({"top_class": "cat", "top_prob": 60, "impossible": ["cat"]}, "impossible"),
            ({"top_class": "cat", "top_prob": "60"}, "top_prob"),
            ({"top_class": "cat", "top_prob": True}, "top_prob"),  # booleans are not numbers
            ({"top_class": "cat", "top_prob": 60, "second_class": 0, "second_prob": 10}, "second_class"),
            ({"top_class": "cat", "top_prob": 60, "second_class": False}, "second_class"),
            ({"top_class": "cat", "top_prob": 60, "impossible": [["dog"]]}, "impossible"),
        ]
        for answer, word in bad_answers:
            status, reply = call(f"{url}/api/response", {**base, "answer": answer})
            assert status == 400 and word in reply["error"], (answer, reply)
        good_answer = soft_answer(classes)
        for change, word in [({"position": True}, "position"), ({"position": 10**30}, "position"),
                             ({"batch": False}, "batch"), ({"batch": 2**63}, "batch"), ({"rt_ms": True}, "rt_ms"),
                             ({"participant": 7}, "participant")]:  # fmt: skip
            status, reply = call(f"{url}/api/response", {**base, **change, "answer": good_answer})
            assert status == 400 and word in reply["error"], (change, reply)
        # signatures: none, wrong, or another participant's -> 403 and no batch
        assert call(f"{url}/api/batch", {"participant": "p9"})[0] == 403
        assert call(f"{url}/api/batch", {"participant": "p9", "sig": "0" * 32})[0] == 403
        assert call(f"{url}/api/batch", {"participant": "p9", "sig": sign("p1")})[0] == 403
        assert call(f"{url}/api/batch", {"participant": "p1", "sig": True})[0] == 403
        assert call(f"{url}/api/response", {**base, "sig": sign("p2"), "answer": good_answer})[0] == 403
        assert call(f"{url}/api/image/{batch['batch']}/0?participant=p1")[0] == 403
        assert len(store.batches()) == 1
        assert call(f"{url}/api/response", {**base, "participant": "p2", "sig": sign("p2"), "answer": good_answer})[0] == 404
        assert call(f"{url}/api/response", {**base, "position": 99, "answer": good_answer})[0] == 404
        assert call(f"{url}/api/response", {**base, "rt_ms": -1, "answer": good_answer})[0] == 400
        assert call(f"{url}/api/response", b"{not json")[0] == 400
        assert call(f"{url}/api/response", b"[" * 60000)[0] == 400  # RecursionError in json.loads
        assert call(f"{url}/api/response", b'{"batch": 1' + b"9" * 5000 + b"}")[0] == 400  # over the digit limit
        assert call(f"{url}/api/batch", {"participant": "bad id!"})[0] == 400
        assert call(f"{url}/api/batch", {"participant": "p1\n", "sig": sign("p1\n")})[0] == 400
        assert call(f"{url}/api/image/{batch['batch']}/0?participant=p2&sig={sign('p2')}")[0] == 404
        assert call(f"{url}/api/image/99999999999999999999999/0?participant=p1&sig={sign('p1')}")[0] == 404
        assert call(f"{url}/api/image/{batch['batch']}/99999999999999999999?participant=p1&sig={sign('p1')}")[0] == 404
        assert call(f"{url}/api/image/1/-1?participant=p1&sig={sign('p1')}")[0] == 404
        assert store.responses() == []
        # tokens: missing or wrong -> 403, right -> the page
        for token in (None, ADMIN_TOKEN[:-1], ADMIN_TOKEN + "4"):
            assert call(f"{url}/admin/progress", token=token)[0] == 403
            assert call(f"{url}/admin/export.csv", token=token)[0] == 403
            assert call(f"{url}/admin/attention.csv", token=token)[0] == 403
        assert call(f"{url}/admin/progress?token={ADMIN_TOKEN}")[0] == 200
        # a retry with the same submission id is stored once; another id for the same trial is refused
        good = {**base, "answer": good_answer}
        assert call(f"{url}/api/response", good) == (200, {"ok": True, "duplicate": False, "finished": False})
        assert call(f"{url}/api/response", good)[1]["duplicate"] is True
        assert call(f"{url}/api/response", {**good, "submission_id": "sub-00002"})[0] == 409
        assert len(store.responses()) == 1
        # the participant page sees exactly these fields: no image names, true classes or indices
        assert set(call(f"{url}/api/study")[1]) == PUBLIC_STUDY
        assert set(batch) == PUBLIC_BATCH and batch["participant"] == "p1"
        for k, trial in enumerate(batch["trials"]):
            assert trial == {"position": k, "answered": False, "image": f"api/image/{batch['batch']}/{k}"}
    finally:
        server.stop()
    with pytest.raises(ValueError, match="16"):
        start_server(store, "short", quiet=True)


def test_mixing_batch_shows_only_public_fields(tmp_path, source):
    study = load_study(mixing_study(tmp_path, source, [(3, 8), (5, 11)]))
    store = Store(tmp_path / "m.sqlite", study)
    server = start_server(store, ADMIN_TOKEN, quiet=True)
    try:
        status, batch = call(f"{server.url}/api/batch", joined(server.sign, "m1"))
        assert status == 200 and set(batch) == PUBLIC_BATCH
        pairs = {("cat", "ship"), ("dog", "automobile")}
        for k, trial in enumerate(batch["trials"]):
            shown = trial["classes"]
            # exactly these fields and values: no stimulus index, image index, true label or λ_f
            assert trial == {"position": k, "answered": False, "image": f"api/image/{batch['batch']}/{k}",
                             "classes": shown}  # fmt: skip
            assert tuple(shown) in pairs or tuple(shown[::-1]) in pairs
        assert set(call(f"{server.url}/api/study")[1]) == PUBLIC_STUDY
        base = {"submission_id": "mix-000001", "participant": "m1", "sig": server.sign("m1"), "batch": batch["batch"],
                "position": 0, "rt_ms": 900}  # fmt: skip
        for answer in ({"share": True, "confidence": 50}, {"share": 50, "confidence": False},
                       {"share": 50}, {"share": 50, "confidence": 50, "lambda_h": 0.2}):  # fmt: skip
            assert call(f"{server.url}/api/response", {**base, "answer": answer})[0] == 400
        assert store.responses() == []
    finally:
        server.stop()


def test_signed_links_and_reservation_caps(tmp_path, source, capsys):
    """Links from the CLI open the study; made-up IDs get nothing; one address cannot reserve the study away."""
    study_path = soft_study(tmp_path, source, range(12), trials_per_participant=4, repeats=0, responses_per_image=1,
                            limits={"open_batches_per_address": 2, "batches_per_address_per_hour": 3})  # fmt: skip
    db = tmp_path / "caps.sqlite"
    assert cli_main(["elicit", "links", str(study_path), "--db", str(db), "--base-url", "https://example.org/study",
                     "--id", "alice", "--id", "bob", "--id", "carol", "--id", "dave"]) == 0  # fmt: skip
    links = capsys.readouterr().out.split()
    assert len(links) == 4 and links[0].startswith("https://example.org/study/?PROLIFIC_PID=alice&sig=")
    sigs = {link.split("PROLIFIC_PID=")[1].split("&")[0]: link.split("sig=")[1] for link in links}
    assert cli_main(["elicit", "links", str(study_path), "--db", str(db), "--base-url", "https://x.org/", "--study-link"]) == 2
    assert "access.mode" in capsys.readouterr().err
    study = load_study(study_path)
    store = Store(db, study)
    server = start_server(store, ADMIN_TOKEN, quiet=True)
    url = server.url
    try:
        for made_up in ("mallory1", "mallory2", "mallory3"):
            assert call(f"{url}/api/batch", {"participant": made_up, "sig": sigs["alice"]})[0] == 403
        assert store.batches() == []
        assert call(f"{url}/api/batch", {"participant": "alice", "sig": sigs["alice"]})[1]["status"] == "active"
        assert call(f"{url}/api/batch", {"participant": "alice", "sig": sigs["alice"]})[1]["status"] == "active"  # same
        assert call(f"{url}/api/batch", {"participant": "bob", "sig": sigs["bob"]})[1]["status"] == "active"
        status, reply = call(f"{url}/api/batch", {"participant": "carol", "sig": sigs["carol"]})
        assert status == 429 and "open_batches_per_address" in reply["error"]
        assert len(store.batches()) == 2 and {b["address"] for b in store.batches()} == {"127.0.0.1"}
        answer_batch(url, "alice", list(study.classes), lambda p: sigs[p])  # alice finishes: one open batch left
        assert call(f"{url}/api/batch", {"participant": "carol", "sig": sigs["carol"]})[1]["status"] == "active"
        status, reply = call(f"{url}/api/batch", {"participant": "dave", "sig": sigs["dave"]})
        assert status == 429 and "batches_per_address_per_hour" in reply["error"]
    finally:
        server.stop()
    # once every image is out, a participant is told where to go
    now = [1000.0]
    full_store = Store(tmp_path / "full.sqlite", load_study(study_path), clock=lambda: now[0])
    for k in range(3):
        assert full_store.batch_for(f"q{k}", address=f"10.0.0.{k}")["status"] == "active"
    assert full_store.batch_for("q9", address="10.0.0.9") == {"status": "full",
                                                               "return_url": "https://example.org/complete?cc=ABC123"}
    now[0] += 61 * 60  # the batches expire: their images go back to the pool, the address caps free up
    assert full_store.batch_for("q9", address="10.0.0.0")["status"] == "active"


def test_study_link_mode_and_forwarded_addresses(tmp_path, source, capsys):
    study_path = soft_study(tmp_path, source, range(10), access={"mode": "study_link", "sig_param": "key"})
    db = tmp_path / "sl.sqlite"
    assert cli_main(["elicit", "links", str(study_path), "--db", str(db), "--base-url", "https://e.org/s/",
                     "--study-link"]) == 0  # fmt: skip
    link = capsys.readouterr().out.strip()
    assert link.startswith("https://e.org/s/?PROLIFIC_PID={{%PROLIFIC_PID%}}&key=")
    key = link.split("key=")[1]
    study = load_study(study_path)
    store = Store(db, study)
    # the app trusts X-Forwarded-For only from its proxy's address
    trusting = start_server(store, ADMIN_TOKEN, quiet=True, trusted_proxies=["127.0.0.1"])
    try:
        for pid, fwd in (("w1", "203.0.113.7"), ("w2", "2001:db8::5")):
            req = __import__("urllib.request").request.Request(
                f"{trusting.url}/api/batch", data=json.dumps({"participant": pid, "sig": key}).encode(),
                headers={"X-Forwarded-For": fwd, "Content-Type": "application/json"}, method="POST")  # fmt: skip
            with __import__("urllib.request").request.urlopen(req, timeout=10) as res:
                assert json.loads(res.read())["status"] == "active"
        assert call(f"{trusting.url}/api/batch", {"participant": "w3", "sig": "f" * 32})[0] == 403
    finally:
        trusting.stop()
    wary = start_server(store, ADMIN_TOKEN, quiet=True)
    try:
        req = __import__("urllib.request").request.Request(
            f"{wary.url}/api/batch", data=json.dumps({"participant": "w4", "sig": key}).encode(),
            headers={"X-Forwarded-For": "198.51.100.1", "Content-Type": "application/json"}, method="POST")  # fmt: skip
        with __import__("urllib.request").request.urlopen(req, timeout=10) as res:
            assert json.loads(res.read())["status"] == "active"
    finally:
        wary.stop()
    assert [b["address"] for b in store.batches()] == ["203.0.113.7", "2001:db8::5", "127.0.0.1"]


def test_ipv6_headers_and_admin_token_rules(tmp_path, source, capsys):
    study_path = soft_study(tmp_path, source, range(10))
    study = load_study(study_path)
    store = Store(tmp_path / "v6.sqlite", study)
    server = start_server(store, ADMIN_TOKEN, host="::1", quiet=True)
    try:
        assert server.url.startswith("http://[::1]:")
        req = __import__("urllib.request").request.Request(f"{server.url}/")
        with __import__("urllib.request").request.urlopen(req, timeout=10) as res:
            headers = {k.lower(): v for k, v in res.headers.items()}
            page = res.read().decode()
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer" and "server" not in headers
        assert 'src="static/app.js"' in page and '"/static' not in page  # relative: works under a sub-path
        assert call(f"{server.url}/api/batch", joined(server.sign, "six"))[1]["status"] == "active"
    finally:
        server.stop()
    store.close()
    for token in ("x", "fifteen-chars-x"):
        assert cli_main(["elicit", "serve", str(study_path), "--port", "0", "--admin-token", token]) == 2
        assert "--admin-token" in capsys.readouterr().err
    assert cli_main(["elicit", "serve", str(study_path), "--port", "0", "--max-body", "10"]) == 2
    assert "--max-body" in capsys.readouterr().err


def test_expired_batch_is_handed_out_again(tmp_path, source):
    study = load_study(soft_study(tmp_path, source, range(4), trials_per_participant=4, repeats=0, responses_per_image=1))
    now = [1000.0]
    store = Store(tmp_path / "s.sqlite", study, clock=lambda: now[0])
    first = store.batch_for("slow")
    assert store.batch_for("other")["status"] == "full"  # all four images are out with 'slow'
    now[0] += 61 * 60  # batch_timeout_min: 60
    again = store.batch_for("other")
    assert again["status"] == "active" and len(again["trials"]) == 4
    late = {"submission_id": "late-0001", "participant": "slow", "batch": first["batch"], "position": 0,
            "answer": soft_answer(list(study.classes)), "rt_ms": 5}  # fmt: skip
    with pytest.raises(Exception) as err:
        store.submit(late)
    assert getattr(err.value, "status", None) == 410


def test_database_of_another_study_is_refused(tmp_path, source):
    store = Store(tmp_path / "s.sqlite", load_study(soft_study(tmp_path, source, range(10))))
    store.close()
    with pytest.raises(StoreError, match="different study"):
        Store(tmp_path / "s.sqlite", load_study(soft_study(tmp_path, source, range(12))))


# ------------------------------------------------------------------------------------------- load
@pytest.mark.parametrize("via", ["direct", "nginx"])
def test_fifty_concurrent_participants(tmp_path, source, via):
    """50 participants at once over 127.0.0.1 (directly, or through nginx under /study/), each retrying every
    submission once: every accepted response is stored exactly once and each of the 60 images reaches M = 4."""
    n_images, M, per_batch, repeats = 60, 4, 7, 1
    study = load_study(soft_study(tmp_path, source, range(n_images), responses_per_image=M,
                                  trials_per_participant=per_batch, repeats=repeats,
                                  limits={"open_batches_per_address": 100, "batches_per_address_per_hour": 100,
                                          "min_answer_ms": 0}))  # fmt: skip
    store = Store(tmp_path / "load.sqlite", study)
    trusted = [PROXY_SOURCE] if via == "nginx" else []
    server = start_server(store, ADMIN_TOKEN, quiet=True, trusted_proxies=trusted)
    classes = list(study.classes)
    accepted, errors, latencies = [], [], []
    lock = threading.Lock()

    def participant(url: str, k: int) -> None:
        try:
            mine = []
            batch, replies = answer_batch(url, f"p{k:02d}", classes, server.sign, latencies=mine)
            for body, (status, reply) in replies:
                assert status == 200, reply
                t0 = time.perf_counter()
                retry = call(f"{url}/api/response", body)  # a retried submission: same id
                mine.append(time.perf_counter() - t0)
                assert retry[0] == 200 and retry[1]["duplicate"] is True
                with lock:
                    accepted.append(body["submission_id"])
            with lock:
                latencies.extend(mine)
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            with lock:
                errors.append(repr(exc))

    def run(url: str) -> float:
        assert call(f"{url}api/study")[0] == 200  # the page's relative addresses resolve under the prefix
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=50) as pool:
            list(pool.map(lambda k: participant(url.rstrip("/"), k), range(50), timeout=120))
        return time.perf_counter() - start

    try:
        if via == "nginx":
            with nginx_in_front(f"127.0.0.1:{server.address[1]}", tmp_path / "nginx") as public:
                elapsed = run(public)
                log = (tmp_path / "nginx" / "access.log").read_text()
            assert "sig=" not in log and '"POST /study/api/response" 200' in log
        else:
            elapsed = run(server.url + "/")
    finally:
        server.stop()
    assert not errors, errors[:3]
    stored = store.responses()
    ids = [r["submission"] for r in stored]
    assert len(ids) == len(set(ids)) == len(accepted) and set(ids) == set(accepted)
    counts = np.bincount([r["stimulus"] for r in stored if not r["is_repeat"]], minlength=n_images)
    # 50 batches × 6 distinct images = 300 >= 60 × 4: every image reaches M, none goes past it
    assert counts.min() == M and counts.max() == M, counts
    # through the proxy the app sees the client's address (from X-Forwarded-For), not the proxy's 127.0.0.2
    assert {b["address"] for b in store.batches()} == {"127.0.0.1"}
    p95 = float(np.percentile(latencies, 95)) * 1000
    print(f"\nload test ({via}): 50 participants, {len(latencies)} requests, {len(accepted)} responses accepted, "
          f"{len(stored)} stored, {len(ids) - len(set(ids))} duplicates, p95 latency {p95:.0f} ms, {elapsed:.1f} s")


# ------------------------------------------------------------------------------------------- SIGKILL
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KILL_TOKEN = "kill-token-0123456789"


def _serve(study_path, db, port):
    env = dict(os.environ, SOFTLABELS_ELICIT_TOKEN=KILL_TOKEN)
    log = Path(db).with_suffix(".log")
    with open(log, "a") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "softlabels", "elicit", "serve", str(study_path), "--db", str(db), "--port",
             str(port), "--quiet"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if call(f"http://127.0.0.1:{port}/api/study", timeout=2)[0] == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"server did not start: {log.read_text()}")


def test_sigkill_mid_study_loses_nothing(tmp_path, source):
    study_path = soft_study(tmp_path, source, range(30), responses_per_image=2, trials_per_participant=6, repeats=1,
                            limits={"open_batches_per_address": 20, "min_answer_ms": 0})  # 10 on 127.0.0.1
    db, port = tmp_path / "kill.sqlite", _free_port()
    classes = list(load_study(study_path).classes)
    url = f"http://127.0.0.1:{port}"
    sign = signer(db, study_path)  # the link secret is made once and kept in the database
    proc = _serve(study_path, db, port)
    acknowledged, stop = [], threading.Event()

    def participant(k: int) -> None:
        status, batch = call(f"{url}/api/batch", joined(sign, f"k{k}"))
        for trial in batch["trials"]:
            if stop.is_set():
                return
            try:
                seen = see(url, f"k{k}", sign(f"k{k}"), trial)
                body = {"submission_id": f"kill-k{k}-{trial['position']}", "participant": f"k{k}",
                        "sig": sign(f"k{k}"), "batch": batch["batch"], "position": trial["position"],
                        "answer": soft_answer(classes, k), "rt_ms": rt_since(seen)}  # fmt: skip
                status, _ = call(f"{url}/api/response", body, timeout=5)
            except OSError:
                return
            if status == 200:
                acknowledged.append(body["submission_id"])

    threads = [threading.Thread(target=participant, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while len(acknowledged) < 15 and time.time() < deadline:
        time.sleep(0.01)
    assert len(acknowledged) >= 15, "the participants did not get going"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    n_ack = len(acknowledged)
    proc = _serve(study_path, db, port)
    try:
        _, export = call(f"{url}/admin/export.csv", token=KILL_TOKEN)
        store = Store(db, load_study(study_path))
        stored = {r["submission"] for r in store.responses()}
        store.close()
        assert set(acknowledged) <= stored, sorted(set(acknowledged) - stored)[:5]
        # the study continues: the interrupted participants resume their batches, new ones start
        for k in list(range(8)) + [100, 101]:
            batch, replies = answer_batch(url, f"k{k}", classes, sign)
            assert all(status == 200 for _, (status, _) in replies)
        _, export = call(f"{url}/admin/export.csv", token=KILL_TOKEN)
        table = pd.read_csv(__import__("io").StringIO(export.decode()))
        assert len(table) == 10 * 6 and table.groupby("subject").size().eq(6).all()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    print(f"\nkill test: {n_ack} responses acknowledged before SIGKILL, all {n_ack} present after restart "
          f"({len(stored)} stored then); after resuming, {len(table)} responses from 10 participants")


# ------------------------------------------------------------------------------------------- exports
def test_mixing_export_matches_the_hmix_layout(tmp_path, source):
    from softlabels.data.hmix import JUDGMENT_COLUMNS, load_judgments

    study = load_study(mixing_study(tmp_path, source, [(3, 8)], lambdas=(0.25,), trials_per_participant=1, repeats=0))
    now = [1000.0]
    store = Store(tmp_path / "m.sqlite", study, clock=lambda: now[0])
    batch = store.batch_for("m1")
    swapped = batch["trials"][0]["classes"] != ["cat", "ship"]
    store.fetch_stimulus(batch["batch"], 0, "m1")
    now[0] += 2  # the answer counts: its image was fetched 2 s before, more than limits.min_answer_ms and rt_ms
    store.submit({"submission_id": "mix-00001", "participant": "m1", "batch": batch["batch"], "position": 0,
                  "answer": {"share": 30, "confidence": 80}, "rt_ms": 1500})  # fmt: skip
    out = tmp_path / "judgments.csv"
    export_table(store).to_csv(out, index=False)
    table = load_judgments(out)
    assert list(table.columns) == JUDGMENT_COLUMNS
    row = table.iloc[0]
    assert row["stimulus"] == "mixed_0.25_Cat_3_Ship_8.png" and row["lambda_f"] == 0.25
    # share = % of the right-hand class; λ_h = share of image 1 (cat)
    assert row["lambda_h"] == pytest.approx(0.3 if swapped else 0.7) and row["confidence"] == pytest.approx(0.8)


def test_export_cli_and_progress_page(tmp_path, source, capsys, monkeypatch):
    from softlabels.elicit import progress

    study_path = soft_study(tmp_path, source, range(10), limits={"min_answer_ms": 0})
    study = load_study(study_path)
    store = Store(study_path.with_suffix(".sqlite"), study)
    server = start_server(store, ADMIN_TOKEN, quiet=True)
    ticks, figure_png = {}, progress._figure_png

    def recording(fig):
        ax = fig.axes[0]
        ticks[ax.get_title()] = (list(ax.get_xticks()), list(ax.get_yticks()))
        return figure_png(fig)

    monkeypatch.setattr(progress, "_figure_png", recording)
    try:
        answer_batch(server.url, "s0", list(study.classes), server.sign)  # one participant: the axes that showed -0.4..0.4
        status, page = call(f"{server.url}/admin/progress", token=ADMIN_TOKEN)
        one = dict(ticks)
        for k in range(1, 3):
            answer_batch(server.url, f"s{k}", list(study.classes), server.sign)
        status, page = call(f"{server.url}/admin/progress", token=ADMIN_TOKEN)
        _, failed_csv = call(f"{server.url}/admin/attention.csv", token=ADMIN_TOKEN)
    finally:
        server.stop()
    html = page.decode()
    assert status == 200 and html.count("data:image/png;base64,") == 5
    for words in ("Responses per image", "Responses per participant", "Time per response", "attention checks failed"):
        assert words.lower() in html.lower()
    # integer axes where the plot counts things: participants are 1..n, counts are whole numbers
    for title in ("Responses per participant", "Responses per image", "Attention-check failures"):
        for axis in one[title] + ticks[title]:
            assert all(float(t).is_integer() for t in axis), (title, axis)
    assert min(one["Responses per participant"][0]) >= 0
    # the participants who failed an attention check, with their failures, and their IDs as CSV
    checks = progress.attention_checks(store)
    failed = sorted({c["participant"] for c in checks if not c["passed"]})
    assert failed, "the test answers should fail some repeats"
    for pid in failed:
        assert f"<td>{pid}</td>" in html
    assert "attention.csv?token=" in html
    table = pd.read_csv(__import__("io").StringIO(failed_csv.decode()))
    assert sorted(table["participant"]) == failed and (table["failed"] >= 1).all()
    assert table["failures"].str.contains(" then ").all()
    out = tmp_path / "out.csv"
    assert cli_main(["elicit", "export", str(study_path), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 15 and pd.read_csv(tmp_path / "out.flagged.csv").empty
    assert cli_main(["elicit", "export", str(study_path), "--db", str(tmp_path / "none.sqlite"), "--out", str(out)]) == 2
    assert "no study database" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- import
def _responses(images, path: Path) -> Path:
    rows = [{"image": i, "subject": f"s{j}", "task": "spec_conf", "trial": j, "top_class": "cat", "top_prob": 70,
             "second_class": "dog", "second_prob": 20, "impossible": "ship|truck", "rt_ms": 3000}
            for i in images for j in range(2)]  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_import_refuses_hold_out_images(tmp_path, capsys):
    splits = tmp_path / "splits.npz"
    np.savez(splits, train=np.arange(0, 7000), test=np.arange(7000, 10000))
    out = tmp_path / "own.csv"
    leaky = _responses([1, 2, 3, 4, 5, 6, 7008, 9123], tmp_path / "leaky.csv")
    code = cli_main(["elicit", "import", "--responses", str(leaky), "--splits", str(splits), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "7008, 9123" in err and "hold-out" in err and not out.exists()
    few = _responses(range(50), tmp_path / "few.csv")
    assert cli_main(["elicit", "import", "--responses", str(few), "--splits", str(splits), "--out", str(out)]) == 2
    assert "evaluation.cifar10s_holdout.size" in capsys.readouterr().err and not out.exists()
    good = _responses(range(120), tmp_path / "good.csv")
    assert cli_main(["elicit", "import", "--responses", str(good), "--splits", str(splits), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 240


def test_readme_study_example_passes_check(tmp_path, monkeypatch, capsys):
    """The study file shown in the README is complete: `softlabels elicit check` accepts it as printed."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### A study file"):]
    start = section.index("```yaml\n") + len("```yaml\n")
    example = section[start:section.index("\n```", start)]
    (tmp_path / "study.yaml").write_text(example + "\n")
    (tmp_path / "results" / "data").mkdir(parents=True)
    np.savez(tmp_path / "results" / "data" / "cifar10_test.npz", images=np.zeros((10000, 32, 32, 3), np.uint8),
             labels=np.arange(10000) % 10)  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert cli_main(["elicit", "check", "study.yaml"]) == 0, capsys.readouterr().err
    assert "27 trials per participant" in capsys.readouterr().out


def test_admin_token_is_made_once_and_long(tmp_path, source):
    store = Store(tmp_path / "t.sqlite", load_study(soft_study(tmp_path, source, range(10))))
    token = store.admin_token()
    assert len(token) >= 16 and store.check_admin_token(token)
    assert store.admin_token() is None and store.check_admin_token(token)  # kept: shown only when made
    assert not store.check_admin_token(token[:-1]) and not store.check_admin_token("")
    with pytest.raises(ValueError, match="at least 16"):
        store.admin_token("x")
    store.db.execute("INSERT INTO meta VALUES ('admin_token', 'short')")  # a database from before the rule
    store.db.execute("DELETE FROM meta WHERE key='admin_token_hash'")
    store.close()
    store = Store(tmp_path / "t.sqlite", store.study)
    renewed = store.admin_token()
    assert len(renewed) >= 16 and renewed != token and store.check_admin_token(renewed)


def test_request_log_has_no_tokens_or_signatures(tmp_path, source, capfd):
    study = load_study(soft_study(tmp_path, source, range(10)))
    store = Store(tmp_path / "log.sqlite", study)
    server = start_server(store, ADMIN_TOKEN, quiet=False)
    try:
        sig = server.sign("logged")
        assert call(f"{server.url}/api/batch", {"participant": "logged", "sig": sig})[0] == 200
        assert call(f"{server.url}/api/image/1/0?participant=logged&sig={sig}")[0] == 200
        assert call(f"{server.url}/admin/export.csv?token={ADMIN_TOKEN}")[0] == 200
        assert call(f"{server.url}/admin/export.csv", token=ADMIN_TOKEN)[0] == 200
        assert call(f"{server.url}/a%0Ab")[0] == 404
    finally:
        server.stop()
    err = capfd.readouterr().err
    assert "127.0.0.1 GET /admin/export.csv 200" in err and "127.0.0.1 GET /api/image/1/0 200" in err
    assert ADMIN_TOKEN not in err and sig not in err and "GET /a?b 404" in err
