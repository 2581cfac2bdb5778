"""Tiny studies for the elicitation tests: a synthetic CIFAR-10-shaped image file and study files."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import yaml


def fake_cifar10(path: Path, n: int = 200, seed: int = 0) -> Path:
    """An npz laid out like results/data/cifar10_test.npz with n images: smooth colour blobs, labels i % 10."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(6, 26, 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(20, 80))
        colour = rng.uniform(40, 255, 3)
        images[i] = np.clip(blob[..., None] * colour + rng.uniform(0, 60, 3), 0, 255).astype(np.uint8)
    np.savez(path, images=images, labels=np.arange(n) % 10)
    return path


def write_study(path: Path, **spec) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def soft_study(tmp: Path, source: Path, indices, **extra) -> Path:
    spec = {
        "title": "Test soft labels",
        "task": "soft_label",
        "images": {"cifar10": {"indices": list(indices), "source": str(source)}},
        "responses_per_image": 2,
        "trials_per_participant": 5,
        "repeats": 1,
        "instructions": "Answer as the crowd would.",
        "consent": "By continuing you agree to take part.",
        "completion": {"url": "https://example.org/complete?cc=ABC123", "code": "ABC123"},
    }
    spec.update(extra)
    return write_study(tmp / "soft.yaml", **spec)


def mixing_study(tmp: Path, source: Path, pairs, lambdas=(0.25, 0.75), **extra) -> Path:
    indices = sorted({i for pair in pairs for i in pair})
    spec = {
        "title": "Test mixing",
        "task": "mixing",
        "images": {"cifar10": {"indices": indices, "source": str(source)}},
        "mixing": {"pairs": [list(p) for p in pairs], "lambdas": list(lambdas)},
        "responses_per_image": 1,
        "trials_per_participant": 4,
        "repeats": 1,
        "completion": {"code": "MIX42"},
    }
    spec.update(extra)
    return write_study(tmp / "mixing.yaml", **spec)


def call(url: str, body=None, token: str | None = None, timeout: float = 10):
    """(status, parsed JSON or bytes) of one request; POST when body is given."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            status, raw, kind = res.status, res.read(), res.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, raw, kind = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    return status, (json.loads(raw) if kind.startswith("application/json") else raw)


def see(url: str, participant: str, sig: str, trial: dict) -> float:
    """Fetch a trial's image as the page does (an answer counts only after it); returns when it arrived
    (time.perf_counter), the moment the page measures `rt_ms` from."""
    status, png = call(f"{url}/{trial['image']}?participant={participant}&sig={sig}")
    assert status == 200 and png.startswith(b"\x89PNG"), (status, png[:100])
    return time.perf_counter()


def rt_since(seen: float) -> float:
    """The `rt_ms` the page would send for an answer now to an image that arrived at `seen` (`see`)."""
    return max(0.001, round((time.perf_counter() - seen) * 1000, 3))


def soft_answer(classes, k: int = 0) -> dict:
    """A valid soft-label answer that varies with k."""
    top, second = classes[k % len(classes)], classes[(k + 1) % len(classes)]
    return {"top_class": top, "top_prob": 60 + k % 20, "second_class": second, "second_prob": 20,
            "impossible": [classes[(k + 3) % len(classes)]]}


ADMIN_TOKEN = "test-admin-token-0123456789"  # admin tokens are at least 16 characters


def joined(sign, participant: str) -> dict:
    """The body of POST /api/batch for a participant holding a signed link (`sign`: server.sign)."""
    return {"participant": participant, "sig": sign(participant)}


def signer(db, study_path):
    """`sign(participant)` with the link secret kept in the study database `db` (made when missing)."""
    from softlabels.elicit.access import Access
    from softlabels.elicit.store import Store
    from softlabels.elicit.study import load_study

    study = load_study(study_path)
    store = Store(db, study)
    try:
        secret = store.secret()
    finally:
        store.close()
    return Access(secret, study["access"]["mode"], study["participant_param"], study["access"]["sig_param"]).sign
