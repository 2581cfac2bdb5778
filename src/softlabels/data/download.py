"""Downloads of the public inputs (`config["sources"]`), each checked against a pinned digest.

A source is fetched from its official URL, or, when `data_mirror` is set, copied from `<mirror>/<file>` and
checked against the mirror's `MANIFEST.tsv` (sha256) instead. Bytes go to a temporary file in the target folder
and are renamed onto `resources_dir/<file>` only after the digest matches, so an interrupted or corrupted
transfer never leaves a file that a later run would trust. Some stored files are derived from what the URL
serves (`derive`): the ten CIFAR-10 class-name rows of GloVe, or the stimulus list of the H-Mix batch file;
their digest applies to the derived file.

Every verified file gets a sidecar `<file>.origin.json` beside it, written atomically: where it came from
(`origin`: the official URL, or "mirror:<absolute path of the mirror's file>"), `official_url`, its `sha256`,
and, from the mirror's MANIFEST, its `note` and `approximate` (true when the note starts with APPROXIMATION).
`softlabels provenance` collects them into results/data/provenance.json.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from softlabels import CLASSES, __version__
from softlabels.data.io import DataError, temp_path_beside, write_json

CHUNK_BYTES = 1 << 20
#: HTTP statuses worth another attempt; any other 4xx/5xx stops at once.
RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}
#: Member of glove.6B.zip whose class-name rows the `glove_rows` derivation keeps.
GLOVE_MEMBER = "glove.6B.50d.txt"
STIMULUS_PATTERN = re.compile(r"mixed_[^\"'\s,:\[\]{}]*?\.png")

Log = Callable[[str], None]


class DownloadError(DataError):
    """A source could not be fetched (network, HTTP status, missing mirror file)."""


class ChecksumError(DownloadError):
    """A fetched file's digest differs from the pinned one; the file has been deleted."""


@dataclass(frozen=True)
class Source:
    key: str
    file: str
    url: str
    checksum: str
    derive: str = "none"

    @classmethod
    def from_config(cls, config: Mapping, key: str) -> "Source":
        sources = config["sources"]
        if key not in sources:
            raise DownloadError(f"unknown source '{key}'; config 'sources' has: {', '.join(sorted(sources))}")
        return cls(key=key, **sources[key])


def _print(message: str) -> None:
    print(message, flush=True)


def parse_checksum(text: str) -> tuple[str, str]:
    """`"sha256:<hex>"` or `"md5:<hex>"` -> (algorithm, lower-case hex digest)."""
    algo, sep, digest = text.partition(":")
    if not sep or algo not in ("sha256", "md5") or not digest:
        raise DownloadError(f"checksum '{text}' is not of the form sha256:<hex> or md5:<hex>")
    return algo, digest.lower()


def file_digest(path: str | os.PathLike, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def verify_or_delete(path: Path, algo: str, expected: str, name: str) -> None:
    """Raise ChecksumError (naming `name`, the expected and the actual digest) and delete `path` on a mismatch."""
    actual = file_digest(path, algo)
    if actual != expected:
        path.unlink(missing_ok=True)
        raise ChecksumError(
            f"checksum mismatch for {name}: expected {algo}:{expected}, got {algo}:{actual}; the file was deleted"
        )


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class _Progress:
    """Progress lines every 10 % of a known size (every 16 MB otherwise), then a summary with the rate."""

    def __init__(self, total: int | None, log: Log):
        self.total, self.log, self.done, self.next_mark = total, log, 0, 0.1
        self.start = time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        if self.total:
            if self.done / self.total >= self.next_mark:
                self.log(f"  {_megabytes(self.done)} / {_megabytes(self.total)} ({100 * self.done / self.total:.0f}%)")
                while self.next_mark <= self.done / self.total:
                    self.next_mark += 0.1
        elif self.done // (16 << 20) != (self.done - n) // (16 << 20):
            self.log(f"  {_megabytes(self.done)}")

    def finish(self) -> None:
        seconds = max(time.monotonic() - self.start, 1e-6)
        self.log(f"  done: {_megabytes(self.done)} in {seconds:.1f} s ({self.done / seconds / 1e6:.1f} MB/s)")


def download_url(url: str, dest: Path, timeout_s: float, retries: int, backoff_s: float, log: Log = _print) -> None:
    """Stream `url` into `dest` (overwritten), retrying transient failures `retries` times in all with a linear
    back-off. A transfer shorter than the announced Content-Length counts as a failure."""
    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            request = urllib.request.Request(url, headers={"User-Agent": f"softlabels/{__version__}"})
            with urllib.request.urlopen(request, timeout=timeout_s) as response, open(dest, "wb") as out:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                log(f"GET {url} (attempt {attempt}/{retries}, {_megabytes(total) if total else 'size unknown'})")
                progress = _Progress(total, log)
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    progress.add(len(chunk))
                if total is not None and progress.done != total:
                    raise http.client.IncompleteRead(b"", total - progress.done)
                progress.finish()
            return
        except urllib.error.HTTPError as exc:
            if exc.code not in RETRYABLE_HTTP:
                raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}") from None
            last_error = exc
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as exc:
            last_error = exc
        detail = _describe(last_error)
        log(f"  attempt {attempt}/{retries} failed: {detail}")
        if attempt < retries:
            time.sleep(backoff_s * attempt)
    message = f"could not download {url} after {retries} attempt(s): {_describe(last_error)}"
    if _is_network_error(last_error):
        message += f". {NO_NETWORK_HINT}"
    raise DownloadError(message)


#: What a download that failed for lack of network adds to its error.
NO_NETWORK_HINT = ("No network? Work offline from a copy of the inputs: --config data_mirror=/path/to/mirror "
                   "(README section \"Offline use: data_mirror\").")


def _is_network_error(exc: Exception | None) -> bool:
    """A failure to reach the host at all (name resolution, refused or unreachable connection, timeout)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError) else exc
    return isinstance(reason, (socket.gaierror, ConnectionError, TimeoutError, socket.timeout)) or (
        isinstance(reason, OSError) and not isinstance(reason, urllib.error.HTTPError)
        and getattr(reason, "errno", None) in (101, 110, 111, 113))  # unreachable, timed out, refused, no route


def network_unreachable(urls, timeout_s: float = 3.0) -> str | None:
    """The host of the first of `urls` whose name does not resolve (no network), else None. Cheap: one DNS
    lookup per distinct host; skipped (None) behind an HTTP(S) proxy, which resolves names itself."""
    if any(os.environ.get(name) for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY")):
        return None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        for host in dict.fromkeys(urllib.parse.urlsplit(url).hostname for url in urls):
            if not host:
                continue
            try:
                socket.getaddrinfo(host, 443)
            except OSError:
                return host
    finally:
        socket.setdefaulttimeout(previous)
    return None


def _describe(exc: Exception | None) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed early ({exc.partial and len(exc.partial) or 0} bytes read, {exc.expected} missing)"
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"{exc.reason}"
    return f"{type(exc).__name__}: {exc}"


# --- derivations: what is stored from what the URL serves ---------------------------------------------------


def derive_glove_rows(zip_path: Path, out_path: Path) -> None:
    """The rows of `glove.6B.50d.txt` whose word is a CIFAR-10 class name, in class order, as stored in the file."""
    try:
        with zipfile.ZipFile(zip_path) as archive, archive.open(GLOVE_MEMBER) as member:
            wanted = {name.encode(): None for name in CLASSES}
            for line in member:
                word = line.split(b" ", 1)[0]
                if word in wanted and wanted[word] is None:
                    wanted[word] = line if line.endswith(b"\n") else line + b"\n"
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DownloadError(f"{zip_path.name}: not a GloVe archive with {GLOVE_MEMBER} ({exc})") from None
    missing = [w.decode() for w, line in wanted.items() if line is None]
    if missing:
        raise DownloadError(f"{GLOVE_MEMBER}: no row for class name(s) {', '.join(missing)}")
    out_path.write_bytes(b"".join(wanted.values()))


def derive_stimulus_list(js_path: Path, out_path: Path) -> None:
    """The sorted unique `mixed_*.png` names listed in the study's batch file, one per line."""
    text = js_path.read_text(encoding="utf-8", errors="replace")
    names = sorted(set(STIMULUS_PATTERN.findall(text)))
    if not names:
        raise DownloadError(f"{js_path.name}: no mixed_*.png stimulus names found")
    out_path.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")


DERIVATIONS = {"glove_rows": derive_glove_rows, "stimulus_list": derive_stimulus_list}


# --- mirror -------------------------------------------------------------------------------------------------


def read_manifest(mirror: str | os.PathLike) -> dict[str, dict[str, str]]:
    """`MANIFEST.tsv` of a data mirror: path -> {official_url, sha256, bytes, note}."""
    path = Path(mirror) / "MANIFEST.tsv"
    if not path.exists():
        raise DownloadError(f"data_mirror {mirror}: no MANIFEST.tsv")
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t") if lines else []
    if "path" not in header or "sha256" not in header:
        raise DownloadError(f"{path}, line 1: header must name the columns 'path' and 'sha256'")
    entries = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DownloadError(f"{path}, line {number}: {len(fields)} fields where the header has {len(header)}")
        row = dict(zip(header, fields))
        if not re.fullmatch(r"[0-9a-f]{64}", row["sha256"]):
            raise DownloadError(f"{path}, line {number}: sha256 '{row['sha256']}' is not 64 hex digits")
        entries[row.pop("path")] = row
    return entries


def copy_with_progress(src: Path, dest: Path, log: Log = _print) -> None:
    progress = _Progress(src.stat().st_size, log)
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while chunk := fin.read(CHUNK_BYTES):
            fout.write(chunk)
            progress.add(len(chunk))
    progress.finish()


# --- one source ---------------------------------------------------------------------------------------------


def expected_digest(source: Source, mirror: str | None) -> tuple[str, str]:
    """(algorithm, digest) the stored file must have: the manifest's sha256 in mirror mode, else the pinned one."""
    if mirror:
        manifest = read_manifest(mirror)
        if source.file not in manifest:
            raise DownloadError(f"source '{source.key}': {source.file} is not listed in {mirror}/MANIFEST.tsv")
        return "sha256", manifest[source.file]["sha256"]
    return parse_checksum(source.checksum)


def fetch(
    source: Source,
    resources_dir: str | os.PathLike,
    mirror: str | None = None,
    timeout_s: float = 60,
    retries: int = 3,
    backoff_s: float = 2.0,
    force: bool = False,
    log: Log = _print,
) -> Path:
    """Make `resources_dir/<file>` hold the verified file of `source`; return its path.

    An existing file that already has the expected digest is kept unless `force`. Either way its origin
    sidecar (`origin_path`) is (re)written for the file now in place."""
    dest = Path(resources_dir) / source.file
    algo, digest = expected_digest(source, mirror)
    if dest.exists() and not force:
        if file_digest(dest, algo) == digest:
            log(f"{source.key}: {dest} present, {algo} verified")
            write_origin(dest, origin_record(source, mirror, dest, algo, digest))
            return dest
        log(f"{source.key}: {dest} present but its {algo} differs; fetching again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_beside(dest, suffix=".part")
    try:
        if mirror:
            src = Path(mirror) / source.file
            if not src.is_file():
                raise DownloadError(f"source '{source.key}': {src} not found in the data mirror")
            note = read_manifest(mirror)[source.file].get("note", "")
            log(f"{source.key}: copying {src} (mirror of {source.url}){'; note: ' + note if note else ''}")
            copy_with_progress(src, tmp, log)
        elif source.derive == "none":
            log(f"{source.key}: downloading {source.url}")
            download_url(source.url, tmp, timeout_s, retries, backoff_s, log)
        else:
            raw = temp_path_beside(dest, suffix=".raw.part")
            try:
                log(f"{source.key}: downloading {source.url} (then deriving: {source.derive})")
                download_url(source.url, raw, timeout_s, retries, backoff_s, log)
                DERIVATIONS[source.derive](raw, tmp)
            finally:
                raw.unlink(missing_ok=True)
        verify_or_delete(tmp, algo, digest, f"{source.key} ({dest})")
        origin_path(dest).unlink(missing_ok=True)  # never a sidecar describing the previous file
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    write_origin(dest, origin_record(source, mirror, dest, algo, digest))
    log(f"{source.key}: {dest} ({algo} verified)")
    return dest


# --- provenance ---------------------------------------------------------------------------------------------

ORIGIN_SUFFIX = ".origin.json"
ORIGIN_FIELDS = ("file", "origin", "official_url", "sha256", "approximate", "note")


def origin_path(dest: str | os.PathLike) -> Path:
    """The sidecar recording where the stored file `dest` came from."""
    dest = Path(dest)
    return dest.with_name(dest.name + ORIGIN_SUFFIX)


def origin_record(source: Source, mirror: str | None, dest: Path, algo: str, digest: str) -> dict:
    """Provenance of the verified file `dest` of `source` (see the module docstring)."""
    sha256 = digest if algo == "sha256" else file_digest(dest, "sha256")
    if mirror:
        entry = read_manifest(mirror)[source.file]
        note = entry.get("note", "") or ""
        return {"file": source.file, "origin": f"mirror:{(Path(mirror) / source.file).resolve()}",
                "official_url": entry.get("official_url") or source.url, "sha256": sha256,
                "approximate": note.startswith("APPROXIMATION"), "note": note}
    return {"file": source.file, "origin": source.url, "official_url": source.url, "sha256": sha256,
            "approximate": False, "note": ""}


def write_origin(dest: Path, record: dict) -> None:
    write_json(origin_path(dest), record)


def read_origin(dest: str | os.PathLike) -> dict | None:
    """The sidecar of `dest` (None when there is none); DataError naming it when it is malformed."""
    import json

    path = origin_path(dest)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable origin record ({exc})") from None
    missing = [f for f in ORIGIN_FIELDS if not isinstance(record, dict) or f not in record]
    if missing:
        raise DataError(f"{path}: origin record lacks {', '.join(missing)}")
    return {f: record[f] for f in ORIGIN_FIELDS}


def collect_provenance(config: Mapping, log: Log = _print) -> dict:
    """{"sources": {key: origin record}} for every configured source, from the sidecars. A file without a
    sidecar, or whose sha256 differs from its sidecar's, is fetched (verified) again first, which rewrites it."""
    sources = {}
    for key in config["sources"]:
        dest = resource_path(config, key)
        record = read_origin(dest) if dest.is_file() else None
        if record is None or file_digest(dest, "sha256") != record["sha256"]:
            log(f"{key}: no current origin record for {dest}; verifying the file")
            fetch_from_config(key, config, log=log)
            record = read_origin(dest)
        sources[key] = record
    return {"sources": sources}


def fetch_from_config(key: str, config: Mapping, force: bool = False, log: Log = _print) -> Path:
    """`fetch` with every setting taken from the effective configuration."""
    options = config.get("download", {})
    return fetch(
        Source.from_config(config, key),
        config["resources_dir"],
        mirror=config.get("data_mirror") or None,
        timeout_s=options.get("timeout_s", 60),
        retries=options.get("retries", 3),
        backoff_s=options.get("backoff_s", 2.0),
        force=force,
        log=log,
    )


def resource_path(config: Mapping, key: str) -> Path:
    """Where source `key` is stored under resources_dir."""
    return Path(config["resources_dir"]) / Source.from_config(config, key).file
