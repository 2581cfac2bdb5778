"""Hypothesis throws generated JSON bodies, raw bytes, paths, query strings and headers at every endpoint of a
running study server (both tasks, over loopback): every request gets a well-formed 2xx or 4xx reply (JSON with an
`error` for a refusal), never a 5xx, a redirect or a dropped connection, and the stored data stays consistent
(every stored answer belongs to its batch's participant, passes the answer checks again, and no trial is answered
twice). Numbers reach the edges: integers beyond float range and JSON's digit limit, the largest and smallest
floats, NaN and the infinities, and number literals that parse to none of these (`1e400`)."""

from __future__ import annotations

import http.client
import itertools
import json
import math
import string
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from elicit.fixtures import ADMIN_TOKEN, fake_cifar10, mixing_study, soft_answer, soft_study  # noqa: E402

from softlabels.elicit import validate as V  # noqa: E402
from softlabels.elicit.server import start_server  # noqa: E402
from softlabels.elicit.store import Store  # noqa: E402
from softlabels.elicit.study import load_study  # noqa: E402

STATUS = Counter()  # status codes of every generated request, printed at the end
SUBMISSION_IDS = itertools.count()  # fresh ids for the near-valid answers
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
PARTICIPANTS = ["h1", "h2", "ghost", "", "h1\n", "x" * 65, "../h1"]

#: Numbers at the edges of Python's float and JSON parsing (an int beyond float range made `float()` raise).
EDGE_NUMBERS = [2**53, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 2**1023, 2**1024, -(2**1024), 10**308, 10**309, 10**400,
                -(10**400), 10**4000, sys.float_info.max, -sys.float_info.max, sys.float_info.min, 5e-324, -0.0,
                math.nan, math.inf, -math.inf]  # fmt: skip
#: Number literals as they may stand in a JSON body: beyond float range, beyond the digit limit (4300), rounding.
NUMBER_TEXTS = ["1e400", "-1e400", "1e-400", "1" + "0" * 400, "-" + "9" * 4000, "9" * 4301, "2e308", "1E+308", "-0",
                "0e0", "100.0000000000000001", "99.99999999999999999", "1.5e3"]  # fmt: skip
#: Content-Types other than plain application/json (all but the first are refused with 415; "" sends none).
CONTENT_TYPES = ["application/json; charset=utf-8", "text/plain", "", "application/x-www-form-urlencoded"]
numbers = st.integers() | st.sampled_from(EDGE_NUMBERS) | st.floats(allow_nan=True, allow_infinity=True)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@pytest.fixture(scope="module", params=["soft_label", "mixing"])
def study_server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"hostile-{request.param}")
    source = fake_cifar10(tmp / "cifar.npz")
    if request.param == "soft_label":
        path = soft_study(tmp, source, range(40), responses_per_image=3, trials_per_participant=6, repeats=1,
                          limits={"open_batches_per_address": 1000, "batches_per_address_per_hour": 1000})  # fmt: skip
    else:
        path = mixing_study(tmp, source, [(3, 8), (5, 11), (6, 12)], lambdas=(0.25, 0.5, 0.75),
                            limits={"open_batches_per_address": 1000, "batches_per_address_per_hour": 1000})  # fmt: skip
    study = load_study(path)
    store = Store(tmp / "hostile.sqlite", study)
    server = start_server(store, ADMIN_TOKEN, quiet=True, request_timeout=5)
    host, port = server.address
    batches = {}
    for pid in ("h1", "h2"):  # two real participants with open batches for the generated answers to aim at
        status, reply, _, _ = _request(host, port, "POST", "/api/batch",
                                       json.dumps({"participant": pid, "sig": server.sign(pid)}).encode(),
                                       {"Content-Type": "application/json"})  # fmt: skip
        assert status == 200, reply
        batches[pid] = json.loads(reply)["batch"]
    yield server, store, study, batches
    server.stop()
    _check_consistent(store, study)
    stored = len(store.responses())
    store.close()
    print(f"\nhostile requests (after the {request.param} study): {sum(STATUS.values())} so far, status codes "
          f"{dict(sorted(STATUS.items()))}; {stored} answers stored in this study, all consistent")


def _request(host, port, method, path, body=None, headers=None):
    """(status, body, Content-Type, Location) of one request."""
    conn = http.client.HTTPConnection(host, port, timeout=20)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        res = conn.getresponse()
        return res.status, res.read(), res.getheader("Content-Type", ""), res.getheader("Location")
    finally:
        conn.close()


def _well_formed(status: int, raw: bytes, kind: str, location: str | None = None) -> None:
    STATUS[status] += 1
    assert 200 <= status < 300 or 400 <= status < 500, (status, raw[:300])
    assert location is None, (status, location)
    if kind.startswith("application/json"):
        data = json.loads(raw)
        if status >= 400:
            assert isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"], data


def _check_consistent(store: Store, study) -> None:
    owners = {b["id"]: b["participant"] for b in store.batches()}
    seen = set()
    for r in store.responses():
        assert owners[r["batch"]] == r["participant"]
        assert (r["batch"], r["position"]) not in seen
        seen.add((r["batch"], r["position"]))
        a = r["answer"]
        if study.task == "soft_label":
            again = V.soft_label_answer({k: v for k, v in a.items() if v is not None}, study.classes)
            assert again == a
        else:
            assert 0 <= a["share"] <= 100 and 0 <= a["confidence"] <= 100 and 0 <= a["lambda_h"] <= 1
        assert 0 < r["rt_ms"] <= V.MAX_RT_MS
    finished = [b for b in store.batches() if b["finished"] is not None]
    for b in finished:
        n_trials = store.db.execute("SELECT COUNT(*) FROM trials WHERE batch=?", (b["id"],)).fetchone()[0]
        assert sum(r["batch"] == b["id"] for r in store.responses()) == n_trials


def answers(classes):
    plausible = st.fixed_dictionaries(
        {"top_class": st.sampled_from([*classes, "unicorn", ""]) | json_values,
         "top_prob": st.sampled_from([0, 50, 100, 100.5, -1, True, "60"]) | json_values},
        optional={"second_class": st.sampled_from([*classes, "", 0, False, None]) | json_values,
                  "second_prob": st.sampled_from([0, 20, 60, None, ""]) | json_values,
                  "impossible": st.lists(st.sampled_from([*classes, "x"]), max_size=4) | json_values,
                  "share": st.sampled_from([0, 50, 100, 101, True]) | json_values,
                  "confidence": st.sampled_from([0, 50, 100, False]) | json_values},
    )  # fmt: skip
    return st.one_of(plausible, st.just(soft_answer(list(classes))), st.just({"share": 40, "confidence": 70}),
                     json_values)  # fmt: skip


@st.composite
def submissions(draw, classes, batches, sign):
    participant = draw(st.sampled_from(["h1", "h1", "h2"]) | st.sampled_from(PARTICIPANTS) | json_values)
    body = {
        "submission_id": draw(st.sampled_from(["sub-hostile-1", "sub-hostile-2"]) | st.from_regex(r"\A[a-z0-9-]{8,12}\Z")
                              | json_values),
        "participant": participant,
        "sig": draw(st.sampled_from(["good", "good", "bad"])) if isinstance(participant, str) else "bad",
        "batch": draw(st.sampled_from(list(batches.values()) + [0, 999, 2**31, 2**63, -1, True]) | json_values),
        "position": draw(st.integers(min_value=-2, max_value=8) | st.sampled_from([True, 2**40]) | json_values),
        "answer": draw(answers(classes)),
        "rt_ms": draw(st.sampled_from([900, 0, -5, 1e12, True, "900"]) | json_values),
    }
    if body["sig"] == "good":
        body["sig"] = sign(participant) if V.PARTICIPANT_ID.fullmatch(participant) else "x"
    else:
        body["sig"] = draw(st.sampled_from(["", "0" * 32, sign("h1")]) | json_values)
    drop = draw(st.sets(st.sampled_from(sorted(body)), max_size=3))
    return {k: v for k, v in body.items() if k not in drop}


@st.composite
def near_valid(draw, study, batches, sign):
    """A valid answer of h1 or h2 with at most one field replaced by a generated value."""
    participant = draw(st.sampled_from(["h1", "h2"]))
    if study.task == "soft_label":
        answer = soft_answer(list(study.classes), draw(st.integers(0, 30)))
    else:
        answer = {"share": draw(st.integers(0, 100)), "confidence": draw(st.integers(0, 100))}
    body = {"submission_id": f"near-valid-{next(SUBMISSION_IDS)}", "participant": participant,
            "sig": sign(participant), "batch": batches[participant], "position": next(SUBMISSION_IDS) % study["trials_per_participant"],
            "answer": answer, "rt_ms": draw(st.integers(1, 10**6))}  # fmt: skip
    if draw(st.booleans()):
        body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
    elif draw(st.booleans()):  # a number at the edges for one of the number fields
        field = draw(st.sampled_from(["rt_ms", "batch", "position", *answer]))
        (answer if field in answer else body)[field] = draw(numbers)
    return body


def with_number_text(body: dict, field: str, text: str) -> bytes:
    """`body` as JSON with the number literal `text` as the value of `field` (top level, or in `answer`)."""
    answer = body.get("answer")
    (answer if isinstance(answer, dict) and field in answer else body)[field] = "__number__"
    return json.dumps(body).replace('"__number__"', text).encode()


@SETTINGS
@given(data=st.data())
def test_generated_json_bodies(study_server, data):
    server, store, study, batches = study_server
    host, port = server.address
    path = data.draw(st.sampled_from(["/api/response"] * 5 + ["/api/batch"] * 2 + ["/api/study", "/admin/progress",
                                                                                    "/nope"]))  # fmt: skip
    kind = data.draw(st.sampled_from(["submission"] * 3 + ["near_valid"] * 2 + ["number_text", "json", "bytes"]))
    if kind == "near_valid":
        path = "/api/response"
        body = json.dumps(data.draw(near_valid(study, batches, server.sign))).encode()
    elif kind == "number_text":
        path = "/api/response"
        valid = data.draw(near_valid(study, batches, server.sign))
        field = data.draw(st.sampled_from(["rt_ms", "batch", "position", "top_prob", "second_prob", "share",
                                           "confidence"]))  # fmt: skip
        body = with_number_text(valid, field, data.draw(st.sampled_from(NUMBER_TEXTS)))
    elif kind == "submission":
        body = json.dumps(data.draw(submissions(study.classes, batches, server.sign))).encode()
    elif kind == "json":
        body = json.dumps(data.draw(json_values)).encode()
    else:
        body = data.draw(st.binary(max_size=300) | st.sampled_from([b"[" * 20000, b"{" * 5000, b"1" * 5000, b""]))
    content_type = data.draw(st.sampled_from(["application/json"] * 6 + CONTENT_TYPES))
    _well_formed(*_request(host, port, "POST", path, body, {"Content-Type": content_type} if content_type else {}))
    if path == "/api/response":
        _check_consistent(store, study)


header_names = st.sampled_from(["Content-Type", "Authorization", "X-Forwarded-For", "Cookie", "Accept", "Range",
                                "Expect", "Upgrade", "Origin", "If-None-Match", "X-Custom"])  # fmt: skip
header_values = st.text(alphabet=string.ascii_letters + string.digits + " ,;=:/._-*\"'()[]<>{}", max_size=40)
path_chars = string.ascii_letters + string.digits + "-._~%/?&=+:;@!$'()*,"


@SETTINGS
@given(data=st.data())
def test_generated_paths_queries_and_headers(study_server, data):
    server, store, study, batches = study_server
    host, port = server.address
    participant = data.draw(st.sampled_from(PARTICIPANTS))
    sig = server.sign(participant) if data.draw(st.booleans()) else data.draw(st.text(path_chars, max_size=40))
    batch = data.draw(st.sampled_from([str(b) for b in batches.values()]) | st.text(path_chars, min_size=1, max_size=25))
    position = data.draw(st.integers(-3, 12).map(str) | st.sampled_from(["99999999999999999999999", "1e3", "%00"]))
    query = data.draw(st.sampled_from(["", f"?participant={quote(participant)}&sig={quote(sig)}",
                                       f"?token={ADMIN_TOKEN}", "?token=" + ADMIN_TOKEN[:-1]]))  # fmt: skip
    path = data.draw(st.sampled_from([
        f"/api/image/{batch}/{position}{query}", f"/api/study{query}", f"/{query}", f"/static/app.js{query}",
        f"/static/../server.py{query}", f"/admin/progress{query}", f"/admin/export.csv{query}",
        f"/admin/attention.csv{query}", f"/admin/flagged.csv{query}", f"/api/batch{query}", f"/admin/progress/{query}",
        f"/admin/export.csv/{query}", f"/api/study/{query}", f"/api/image/{batch}/{position}/{query}",
    ]) | st.text(path_chars, max_size=60).map(lambda p: "/" + p))  # fmt: skip
    headers = data.draw(st.dictionaries(header_names, header_values, max_size=4))
    method = data.draw(st.sampled_from(["GET", "GET", "HEAD", "DELETE", "OPTIONS", "PUT"]))
    body = b"{}" if method == "PUT" else None
    status, raw, kind, location = _request(host, port, method, path, body, headers)
    if method == "HEAD":
        raw = b""
        kind = ""
    _well_formed(status, raw, kind, location)
