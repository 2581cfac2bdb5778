"""SQLite storage and assignment of one study (one database file per study).

The database runs in WAL mode with `synchronous=FULL`, and every response is committed in its own transaction
before the server answers, so a killed server loses nothing it has acknowledged. A submission carries an id
made by the page (UNIQUE in the table): a retried submission finds its first copy and is not stored twice.

Assignment (thesis §3.2.1): a participant gets one batch of `trials_per_participant` trials, of which the
last `repeats` show images from earlier in the same batch again (attention and consistency checks; thesis
§4.2.1 puts them at the end). The distinct images are those with the smallest load (responses so far plus
trials handed out in unfinished, unexpired batches) among the images below M responses the participant has
not seen, ties broken at random, so every image reaches M and images stay balanced. A batch not finished
within `batch_timeout_min` expires: its unanswered trials go back to the pool and later answers to it are
refused. The class order (soft_label) and the endpoint order (mixing) are shuffled per batch and trial.

No one can reserve the study away: a batch records the client address that asked for it, and an address may hold
at most `limits.open_batches_per_address` unfinished, unexpired batches and start at most
`limits.batches_per_address_per_hour` batches in any hour (429 otherwise). Expired batches count for neither
the load nor the open-batch cap, so their trials go back to the pool.

No one can fill the study with junk either: a trial notes when its participant first fetched its image, and an
answer counts (towards M) only when that image was fetched, at least `limits.min_answer_ms` passed since, and
its `rt_ms` is at least that minimum and not longer than the time since the fetch. Any other answer is stored
and acknowledged all the same, with the reason in `flag`; its image stays in the pool, and the progress page
and the export list it apart.

Secrets at rest: the database file is made readable by its owner only (0600; SQLite gives its -wal and -shm
files the same mode), and the admin token is kept as a salted scrypt hash, never in plain text.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import random
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from softlabels.elicit import validate as V
from softlabels.elicit.study import Study

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY, participant TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
    finished REAL, class_order TEXT NOT NULL, address TEXT);
CREATE TABLE IF NOT EXISTS trials (
    batch INTEGER NOT NULL REFERENCES batches(id), position INTEGER NOT NULL, stimulus INTEGER NOT NULL,
    repeat_of INTEGER, swapped INTEGER NOT NULL DEFAULT 0, fetched REAL, PRIMARY KEY (batch, position));
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY, submission TEXT NOT NULL UNIQUE, batch INTEGER NOT NULL, position INTEGER NOT NULL,
    participant TEXT NOT NULL, stimulus INTEGER NOT NULL, is_repeat INTEGER NOT NULL, answer TEXT NOT NULL,
    rt_ms REAL NOT NULL, received REAL NOT NULL, flag TEXT NOT NULL DEFAULT '', UNIQUE (batch, position));
CREATE INDEX IF NOT EXISTS batches_participant ON batches (participant);
"""


def study_fingerprint(study: Study) -> str:
    """Digest of what the stored answers refer to: task, classes and the ordered stimulus names."""
    text = json.dumps([study.task, list(study.classes), [s.name for s in study.stimuli]])
    return hashlib.sha256(text.encode()).hexdigest()


#: Columns added since the first release: (table, column, declaration); added to an older database when opened.
LATER_COLUMNS = [("batches", "address", "TEXT"), ("trials", "fetched", "REAL"),
                 ("responses", "flag", "TEXT NOT NULL DEFAULT ''")]  # fmt: skip
RT_SLACK_MS = 1000  # how much longer than the time since its image's fetch an answer's rt_ms may be (clocks)
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # about 50 ms and 16 MB per hash


def hash_token(token: str, salt: bytes | None = None) -> str:
    """'scrypt$<salt>$<hash>' (hex) of an admin token, with a new random salt unless `salt` is given."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(token.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def token_matches(token: str, stored: str) -> bool:
    """Whether `token` hashes to `stored` (a `hash_token` value), compared in constant time."""
    salt = bytes.fromhex(stored.split("$")[1])
    return hmac.compare_digest(hash_token(token, salt).encode(), stored.encode())


def private_file(path: Path) -> None:
    """Make the database file readable by its owner only (0600) before SQLite opens it, or tighten an existing
    one and its -wal/-shm files (made by an older version); those of another user are left as they are."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if file.stat().st_mode & 0o077:
                os.chmod(file, 0o600)


class StoreError(ValueError):
    """The database does not belong to this study (or cannot be opened)."""


class Store:
    def __init__(self, db_path: str | Path, study: Study, clock=time.time):
        self.path = Path(db_path)
        self.study = study
        self.clock = clock
        self.lock = threading.Lock()
        self.token_lock = threading.Lock()  # one token hash at a time: wrong tokens cannot take every core
        self._token_seen: tuple[str, str] | None = None  # (stored hash, the token that last matched it)
        private_file(self.path)
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA secure_delete=ON")  # a replaced secret is overwritten, not left in a free page
        self.db.executescript(SCHEMA)
        for table, column, declaration in LATER_COLUMNS:
            if column not in {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        self.db.execute("CREATE INDEX IF NOT EXISTS batches_address ON batches (address, created)")
        fingerprint = study_fingerprint(study)
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key='study'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('study', ?)", (fingerprint,))
            elif row[0] != fingerprint:
                self.db.close()
                raise StoreError(
                    f"{self.path} holds responses of a different study (its images, classes or task differ from "
                    f"{study.path}); use a new --db for a changed study"
                )
        self._hash_plain_token()

    def close(self) -> None:
        self.db.close()

    # -------------------------------------------------------------------------------- secrets
    def _meta(self, key: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: str) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _hash_plain_token(self) -> None:
        """A database from before hashing holds the admin token in plain text: keep its hash instead (the token
        goes on working) and overwrite the plain one; a token too weak for today's rules is dropped, so that
        `admin_token()` makes a new one."""
        plain = self._meta("admin_token")
        if plain is None:
            return
        if V.weak_token(plain) is None:
            self._set_meta("admin_token_hash", hash_token(plain))
        with self.lock:
            self.db.execute("DELETE FROM meta WHERE key='admin_token'")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the old page leaves the -wal file too

    def admin_token(self, given: str | None = None) -> str | None:
        """Set the study's admin token: `given` when set, else a new random one of 24 characters when none is kept.
        Only its salted hash is stored. Returns the token made now (to be shown this once), else None. A weak
        `given` raises ValueError with the reason (`validate.weak_token`)."""
        if given is not None:
            reason = V.weak_token(given)
            if reason:
                raise ValueError(f"the admin token is too weak: {reason}")
            self._set_meta("admin_token_hash", hash_token(given))
            return None
        if self._meta("admin_token_hash") is not None:
            return None
        made = secrets.token_urlsafe(18)
        self._set_meta("admin_token_hash", hash_token(made))
        return made

    def check_admin_token(self, given: str) -> bool:
        """Whether `given` is the admin token. The token that last matched is remembered with the hash it matched,
        so the researcher's pages do not pay for scrypt on every request; other tokens are hashed one at a time."""
        stored = self._meta("admin_token_hash")
        if stored is None or not given:
            return False
        seen = self._token_seen
        if seen is not None and seen[0] == stored and hmac.compare_digest(seen[1].encode(), given.encode()):
            return True
        with self.token_lock:
            if not token_matches(given, stored):
                return False
        self._token_seen = (stored, given)
        return True

    def secret(self) -> str:
        """The study's link secret (64 hex digits), made on first use and kept with the responses."""
        value = self._meta("link_secret")
        if value is None or len(value) < 32:
            value = secrets.token_hex(32)
            self._set_meta("link_secret", value)
        return value

    # -------------------------------------------------------------------------------- assignment
    def batch_for(self, participant: str, address: str | None = None) -> dict:
        """The participant's open batch, or a new one; {'status': 'done'|'full', ...} when there is none to give.
        `address` (the client's) is checked against the study's `limits` before a new batch is made."""
        if not isinstance(participant, str) or not V.PARTICIPANT_ID.fullmatch(participant):
            raise V.Rejected("participant ID missing or malformed (letters, digits, '.', '_', '-'; at most 64)")
        address = None if address is None else str(address)[:100]
        now = self.clock()
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                result = self._batch_for(participant, now, address)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return result

    def _batch_for(self, participant: str, now: float, address: str | None) -> dict:
        db, study = self.db, self.study
        row = db.execute(
            "SELECT id FROM batches WHERE participant=? AND finished IS NULL AND expires>? ORDER BY id DESC LIMIT 1",
            (participant, now),
        ).fetchone()
        if row:
            return self._describe(row[0])
        if db.execute("SELECT 1 FROM batches WHERE participant=? AND finished IS NOT NULL", (participant,)).fetchone():
            return {"status": "done", "completion": study["completion"]}
        if address is not None:
            limits = study["limits"]
            recent = db.execute("SELECT COUNT(*) FROM batches WHERE address=? AND created>?", (address, now - 3600))
            if recent.fetchone()[0] >= limits["batches_per_address_per_hour"]:
                raise V.Rejected("too many new batches from this address in the last hour "
                                 "(limits.batches_per_address_per_hour); try again later", 429)  # fmt: skip
            open_here = db.execute(
                "SELECT COUNT(*) FROM batches WHERE address=? AND finished IS NULL AND expires>?", (address, now)
            ).fetchone()[0]
            if open_here >= limits["open_batches_per_address"]:
                raise V.Rejected(
                    f"too many unfinished batches from this address ({open_here}; limits.open_batches_per_address); "
                    "finish one first or try again later", 429)  # fmt: skip
        M = study["responses_per_image"]
        load = [0] * len(study.stimuli)
        counted = "SELECT stimulus, COUNT(*) FROM responses WHERE is_repeat=0 AND flag='' GROUP BY stimulus"
        for stimulus, n in db.execute(counted):
            load[stimulus] += n
        for stimulus, n in db.execute(
            "SELECT t.stimulus, COUNT(*) FROM trials t JOIN batches b ON b.id=t.batch "
            "LEFT JOIN responses r ON r.batch=t.batch AND r.position=t.position "
            "WHERE b.finished IS NULL AND b.expires>? AND t.repeat_of IS NULL AND r.id IS NULL GROUP BY t.stimulus",
            (now,),
        ):
            load[stimulus] += n
        seen = {s for (s,) in db.execute(
            "SELECT DISTINCT t.stimulus FROM trials t JOIN batches b ON b.id=t.batch WHERE b.participant=?",
            (participant,))}  # fmt: skip
        next_id = (db.execute("SELECT COALESCE(MAX(id), 0) FROM batches").fetchone()[0] or 0) + 1
        rng = random.Random(f"{study['seed']}/{next_id}")
        candidates = [s for s in range(len(study.stimuli)) if load[s] < M and s not in seen]
        if not candidates:
            completion = study["completion"]
            return {"status": "full", "return_url": completion.get("return_url") or completion.get("url") or ""}
        order = sorted(candidates, key=lambda s: (load[s], rng.random()))
        distinct = order[: study["trials_per_participant"] - study["repeats"]]
        rng.shuffle(distinct)
        n_repeats = min(study["repeats"], len(distinct) // 2)
        repeated = sorted(rng.sample(range(len(distinct)), n_repeats))
        classes = list(study.classes)
        rng.shuffle(classes)
        db.execute(
            "INSERT INTO batches (id, participant, created, expires, class_order, address) VALUES (?, ?, ?, ?, ?, ?)",
            (next_id, participant, now, now + 60 * study["batch_timeout_min"], json.dumps(classes), address),
        )
        trials = [(s, None) for s in distinct] + [(distinct[p], p) for p in repeated]
        db.executemany(
            "INSERT INTO trials (batch, position, stimulus, repeat_of, swapped) VALUES (?, ?, ?, ?, ?)",
            [(next_id, pos, s, rep, int(rng.random() < 0.5)) for pos, (s, rep) in enumerate(trials)],
        )
        return self._describe(next_id)

    def _describe(self, batch: int) -> dict:
        """What the page needs for a batch: trial positions, which are answered, the class names to show."""
        study = self.study
        participant, classes = self.db.execute("SELECT participant, class_order FROM batches WHERE id=?", (batch,)).fetchone()
        answered = {p for (p,) in self.db.execute("SELECT position FROM responses WHERE batch=?", (batch,))}
        trials = []
        for position, stimulus, swapped in self.db.execute(
            "SELECT position, stimulus, swapped FROM trials WHERE batch=? ORDER BY position", (batch,)
        ):
            trial = {"position": position, "answered": position in answered, "image": f"api/image/{batch}/{position}"}
            mix = study.stimuli[stimulus].mix
            if mix is not None:
                pair = [mix["class1"], mix["class2"]]
                trial["classes"] = pair[::-1] if swapped else pair
            trials.append(trial)
        return {"status": "active", "batch": batch, "participant": participant, "classes": json.loads(classes),
                "trials": trials}  # fmt: skip

    def fetch_stimulus(self, batch: int, position: int, participant: str) -> int:
        """The stimulus of a trial, for its own participant only (else 404); the first fetch is noted, since an
        answer counts only after its image was fetched (module docstring)."""
        if not (0 <= batch <= V.MAX_INDEX and 0 <= position <= V.MAX_INDEX):
            raise V.Rejected("no such trial for this participant", 404)
        with self.lock:
            row = self.db.execute(
                "SELECT t.stimulus, b.participant, t.fetched FROM trials t JOIN batches b ON b.id=t.batch "
                "WHERE t.batch=? AND t.position=?",
                (batch, position),
            ).fetchone()
            if row is None or row[1] != participant:
                raise V.Rejected("no such trial for this participant", 404)
            if row[2] is None:
                self.db.execute("UPDATE trials SET fetched=? WHERE batch=? AND position=? AND fetched IS NULL",
                                (self.clock(), batch, position))  # fmt: skip
        return row[0]

    # -------------------------------------------------------------------------------- responses
    def submit(self, payload: dict) -> dict:
        """Validate and store one answer (committed before returning). Raises Rejected (nothing stored)."""
        if not isinstance(payload, dict):
            raise V.Rejected("the request body must be a JSON object")
        submission = payload.get("submission_id")
        if not isinstance(submission, str) or not V.SUBMISSION_ID.fullmatch(submission):
            raise V.Rejected("field 'submission_id' must be 8-64 letters, digits, '_' or '-'")
        participant = payload.get("participant")
        if not isinstance(participant, str) or not V.PARTICIPANT_ID.fullmatch(participant):
            raise V.Rejected("field 'participant': participant ID missing or malformed")
        batch, position = V.index(payload, "batch"), V.index(payload, "position")
        rt_ms = V.reaction_time(payload.get("rt_ms"))
        now = self.clock()
        with self.lock:
            previous = self.db.execute(
                "SELECT batch, position, participant FROM responses WHERE submission=?", (submission,)
            ).fetchone()
            if previous is not None:
                if tuple(previous) != (batch, position, participant):
                    raise V.Rejected("this submission_id was already used for another trial", 409)
                return self._after_submit(batch, duplicate=True)
            row = self.db.execute(
                "SELECT b.participant, b.expires, b.finished, t.stimulus, t.repeat_of, t.swapped, t.fetched "
                "FROM batches b JOIN trials t ON t.batch=b.id WHERE b.id=? AND t.position=?",
                (batch, position),
            ).fetchone()
            if row is None or row[0] != participant:
                raise V.Rejected("no such trial for this participant", 404)
            _, expires, finished, stimulus, repeat_of, swapped, fetched = row
            if finished is None and expires <= now:
                raise V.Rejected("this batch timed out and was handed to someone else; reload the page for a new one", 410)
            if self.study.task == "soft_label":
                answer = V.soft_label_answer(payload.get("answer"), self.study.classes)
            else:
                answer = V.mixing_answer(payload.get("answer"), bool(swapped))
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute(
                    "INSERT INTO responses (submission, batch, position, participant, stimulus, is_repeat, answer, "
                    "rt_ms, received, flag) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (submission, batch, position, participant, stimulus, int(repeat_of is not None),
                     json.dumps(answer), rt_ms, now, self._flag(fetched, rt_ms, now)),
                )  # fmt: skip
                left = self.db.execute(
                    "SELECT COUNT(*) FROM trials t LEFT JOIN responses r ON r.batch=t.batch AND r.position=t.position "
                    "WHERE t.batch=? AND r.id IS NULL",
                    (batch,),
                ).fetchone()[0]
                if left == 0:
                    self.db.execute("UPDATE batches SET finished=? WHERE id=?", (now, batch))
                self.db.execute("COMMIT")
            except sqlite3.IntegrityError:
                self.db.execute("ROLLBACK")
                raise V.Rejected("this trial was already answered", 409) from None
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            return self._after_submit(batch, duplicate=False)

    def _flag(self, fetched: float | None, rt_ms: float, now: float) -> str:
        """Why an answer does not count towards M ('' when it does): its image was never fetched, it came sooner
        after the fetch than `limits.min_answer_ms` or says so in its `rt_ms`, or its `rt_ms` is longer than the
        time since the fetch (by more than RT_SLACK_MS)."""
        minimum = self.study["limits"]["min_answer_ms"]
        if fetched is None:
            return "image not fetched"
        since = (now - fetched) * 1000
        if min(since, rt_ms) < minimum:
            return (f"answered {since:.0f} ms after its image was fetched, rt_ms {rt_ms:g} "
                    f"(limits.min_answer_ms {minimum:g})")  # fmt: skip
        if rt_ms > since + RT_SLACK_MS:
            return f"rt_ms {rt_ms:g} is longer than the {since:.0f} ms since its image was fetched"
        return ""

    def _after_submit(self, batch: int, duplicate: bool) -> dict:
        finished = self.db.execute("SELECT finished FROM batches WHERE id=?", (batch,)).fetchone()[0]
        out = {"ok": True, "duplicate": duplicate, "finished": finished is not None}
        if finished is not None:
            out["completion"] = self.study["completion"]
        return out

    # -------------------------------------------------------------------------------- reading
    def responses(self) -> list[dict]:
        """Every stored response in submission order, with its trial and stimulus facts and its `flag` ('' when
        it counts)."""
        with self.lock:
            rows = self.db.execute(
                "SELECT r.id, r.participant, r.batch, r.position, r.stimulus, r.is_repeat, t.repeat_of, r.answer, "
                "r.rt_ms, r.received, r.submission, r.flag FROM responses r JOIN trials t ON t.batch=r.batch AND "
                "t.position=r.position ORDER BY r.id"
            ).fetchall()
        keys = ("id", "participant", "batch", "position", "stimulus", "is_repeat", "repeat_of", "answer", "rt_ms",
                "received", "submission", "flag")  # fmt: skip
        out = []
        for row in rows:
            rec = dict(zip(keys, row))
            rec["answer"] = json.loads(rec["answer"])
            out.append(rec)
        return out

    def batches(self) -> list[dict]:
        with self.lock:
            rows = self.db.execute(
                "SELECT id, participant, created, expires, finished, address FROM batches ORDER BY id").fetchall()
        return [dict(zip(("id", "participant", "created", "expires", "finished", "address"), r)) for r in rows]


def open_store(db_path: str | Path, study: Study) -> Store:
    try:
        return Store(db_path, study)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"{db_path}: cannot open the study database ({exc})") from None
