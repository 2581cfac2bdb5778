"""Downloads of the public inputs (`config["sources"]`), each checked against a pinned digest, through pooch.

pooch does the transfer: it streams each file to a temporary file in the target folder, checks its
`alg:hex` digest, renames it onto `resources_dir/<file>` only when the digest matches (deleting it otherwise)
and retries a failed attempt (`download.retries` attempts in all, waiting 1, 2, ... s between them). This
module adds what pooch does not know about:

- the offline mirror: when `data_mirror` is set, the pooch downloader copies `<mirror>/<file>` instead of
  fetching the URL, and the digest checked is the mirror's `MANIFEST.tsv` sha256;
- derived files (`derive`): the ten CIFAR-10 class-name rows of GloVe, or the stimulus list of the H-Mix batch
  file, are computed from what the URL serves inside the downloader, so the digest applies to the derived file;
- errors that name the source and file, do not retry an HTTP answer that will not change (a 404), and name
  `data_mirror` when the host cannot be reached;
- a sidecar `<file>.origin.json` beside every verified file, written atomically: where it came from
  (`origin`: the official URL, or "mirror:<absolute path of the mirror's file>"), `official_url`, its `sha256`,
  and, from the mirror's MANIFEST, its `note` and `approximate` (true when the note starts with APPROXIMATION).
  `softlabels provenance` collects them into results/data/provenance.json.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
import urllib.parse
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import pooch
import requests

from softlabels import CLASSES, __version__
from softlabels.data.io import DataError, give_usual_permissions, temp_path_beside, write_json

CHUNK_BYTES = 1 << 20
#: HTTP statuses worth another attempt; any other 4xx/5xx stops at once.
RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}
#: Member of glove.6B.zip whose class-name rows the `glove_rows` derivation keeps.
GLOVE_MEMBER = "glove.6B.50d.txt"
STIMULUS_PATTERN = re.compile(r"mixed_[^\"'\s,:\[\]{}]*?\.png")
#: The key under which `fetch_from_config` finds the CIFAR-10-C tar (`evaluation.corruption.cifar10c`).
CIFAR10C_KEY = "cifar10c"
#: What a download that failed for lack of network adds to its error.
NO_NETWORK_HINT = ("No network? Work offline from a copy of the inputs: --config data_mirror=/path/to/mirror "
                   "(README section \"Offline use: data_mirror\").")

Log = Callable[[str], None]
# pooch's own INFO lines ("Downloading data from ...") would repeat this module's log, which goes to `log`.
pooch.get_logger().setLevel("WARNING")


class DownloadError(DataError):
    """A source could not be fetched (network, HTTP status, missing mirror file)."""


class ChecksumError(DownloadError):
    """A fetched file's digest differs from the pinned one; the file has been deleted."""


class TransferCutShort(requests.RequestException):
    """The server closed the connection before sending the announced Content-Length (pooch retries it)."""


class _Final(Exception):
    """Carries a DownloadError through pooch without a retry (pooch retries ValueError and RequestException)."""

    def __init__(self, error: DownloadError):
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Source:
    key: str
    file: str
    url: str
    checksum: str
    derive: str = "none"
    #: A data mirror whose MANIFEST does not list the file is skipped (the URL is used) instead of refused.
    mirror_optional: bool = False

    @classmethod
    def from_config(cls, config: Mapping, key: str) -> "Source":
        """`sources.<key>`, or for `cifar10c` the tar of `evaluation.corruption.cifar10c` (which the project's
        mirror may lack)."""
        sources = config["sources"]
        if key in sources:
            return cls(key=key, **sources[key])
        if key == CIFAR10C_KEY:
            spec = config["evaluation"]["corruption"]["cifar10c"]
            return cls(key=key, file=spec["file"], url=spec["url"], checksum=spec["checksum"], mirror_optional=True)
        raise DownloadError(f"unknown source '{key}'; config 'sources' has: {', '.join(sorted(sources))} "
                            f"(and '{CIFAR10C_KEY}' is evaluation.corruption.cifar10c)")


def _print(message: str) -> None:
    print(message, flush=True)


def parse_checksum(text: str) -> tuple[str, str]:
    """`"sha256:<hex>"` or `"md5:<hex>"` -> (algorithm, lower-case hex digest)."""
    algo, sep, digest = text.partition(":")
    if not sep or algo not in ("sha256", "md5") or not digest:
        raise DownloadError(f"checksum '{text}' is not of the form sha256:<hex> or md5:<hex>")
    return algo, digest.lower()


def file_digest(path: str | os.PathLike, algo: str) -> str:
    """Hex digest of the file at `path` (pooch.file_hash)."""
    return pooch.file_hash(str(path), alg=algo)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class _Progress:
    """pooch's progress-bar protocol (total, update, reset, close) as a log line at every further 10 %."""

    def __init__(self, log: Log):
        self.log, self.total, self.done, self.tenths = log, 0, 0, 0

    def update(self, n: int) -> None:
        self.done += n
        tenths = min(10 * self.done // self.total, 10) if self.total else 0
        if tenths > self.tenths:  # pooch's final reset() + update(total) then logs nothing new
            self.tenths = tenths
            self.log(f"  {_megabytes(min(self.done, self.total))} / {_megabytes(self.total)} ({10 * tenths}%)")

    def reset(self) -> None:
        self.done = 0

    def close(self) -> None:
        pass


# --- pooch downloaders: HTTP (with derivation) and mirror copy ----------------------------------------------


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


class HTTPFetch:
    """pooch downloader: GET `url` with pooch's HTTPDownloader into `output_file`, or, for a derived source,
    into a scratch file from which `derive` writes `output_file`. Logs each attempt; an HTTP status outside
    RETRYABLE_HTTP, and a derivation error, end the download at once; a body shorter than its announced
    Content-Length is a (retried) TransferCutShort."""

    def __init__(self, source: Source, timeout_s: float, attempts: int, log: Log):
        self.source, self.attempts, self.log, self.attempt = source, attempts, log, 0
        self.headers = {"User-Agent": f"softlabels/{__version__}", "Accept-Encoding": "identity"}
        self.timeout_s = timeout_s

    def __call__(self, url: str, output_file: str, pooch_instance) -> None:
        self.attempt += 1
        self.log(f"GET {url} (attempt {self.attempt}/{self.attempts})")
        if self.source.derive == "none":
            return self._get(url, Path(output_file))
        raw = temp_path_beside(output_file, suffix=".raw.part")
        try:
            self._get(url, raw)
            DERIVATIONS[self.source.derive](raw, Path(output_file))
        except DownloadError as exc:
            raise _Final(exc) from None
        finally:
            raw.unlink(missing_ok=True)

    def _get(self, url: str, path: Path) -> None:
        progress, start = _Progress(self.log), time.monotonic()
        get = pooch.HTTPDownloader(progressbar=progress, chunk_size=CHUNK_BYTES, timeout=self.timeout_s,
                                   headers=self.headers)
        try:
            get(url, str(path), None)
            if progress.total and path.stat().st_size < progress.total:
                raise TransferCutShort(f"connection closed early ({path.stat().st_size} of {progress.total} bytes)")
        except requests.RequestException as exc:
            self.log(f"  attempt {self.attempt}/{self.attempts} failed: {exc}")
            if isinstance(exc, requests.HTTPError) and exc.response.status_code not in RETRYABLE_HTTP:
                raise _Final(DownloadError(str(exc))) from None
            raise
        size, seconds = path.stat().st_size, max(time.monotonic() - start, 1e-6)
        self.log(f"  done: {_megabytes(size)} in {seconds:.1f} s ({size / seconds / 1e6:.1f} MB/s)")


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


def mirror_for(source: Source, mirror: str | None, log: Log = _print) -> str | None:
    """The mirror to copy `source` from: `mirror`, or None (the URL) for a `mirror_optional` source whose file
    the mirror's MANIFEST does not list."""
    if mirror and source.mirror_optional and source.file not in read_manifest(mirror):
        log(f"data_mirror {mirror} does not list {source.file}; downloading from {source.url}")
        return None
    return mirror


# --- one source ---------------------------------------------------------------------------------------------


def expected_digest(source: Source, mirror: str | None) -> tuple[str, str]:
    """(algorithm, digest) the stored file must have: the manifest's sha256 in mirror mode, else the pinned one."""
    if mirror:
        manifest = read_manifest(mirror)
        if source.file not in manifest:
            raise DownloadError(f"source '{source.key}': {source.file} is not listed in {mirror}/MANIFEST.tsv")
        return "sha256", manifest[source.file]["sha256"]
    return parse_checksum(source.checksum)


def _transfer(source: Source, dest: Path, known_hash: str, mirror: str | None, timeout_s: float, retries: int,
              log: Log) -> None:
    """pooch fetches `source` onto `dest` (temporary file, digest check, rename, retries); its errors become
    DownloadError / ChecksumError naming the source."""
    if mirror:
        mirror_file = Path(mirror) / source.file
        if not mirror_file.is_file():
            raise DownloadError(f"source '{source.key}': {mirror_file} not found in the data mirror")
        note = read_manifest(mirror)[source.file].get("note", "")
        log(f"{source.key}: copying {mirror_file} (mirror of {source.url}){'; note: ' + note if note else ''}")
        downloader, attempts = lambda url, output_file, _: shutil.copyfile(mirror_file, output_file), 1
    else:
        derived = f" (then deriving: {source.derive})" if source.derive != "none" else ""
        log(f"{source.key}: downloading {source.url}{derived}")
        downloader, attempts = HTTPFetch(source, timeout_s, retries, log), retries
    store = pooch.create(path=dest.parent, base_url="", registry={dest.name: known_hash},
                         urls={dest.name: source.url}, retry_if_failed=attempts - 1)
    try:
        store.fetch(dest.name, downloader=downloader)
    except _Final as exc:
        raise exc.error from None
    except requests.RequestException as exc:
        message = f"could not download {source.url} after {attempts} attempt(s): {exc}"
        no_network = isinstance(exc, (requests.ConnectionError, requests.Timeout))  # host not reached at all
        raise DownloadError(message + (f". {NO_NETWORK_HINT}" if no_network else "")) from None
    except ValueError as exc:  # pooch: the digest differs (the temporary file is already deleted)
        raise ChecksumError(f"checksum mismatch for {source.key} ({dest}): {exc}") from None


def fetch(
    source: Source,
    resources_dir: str | os.PathLike,
    mirror: str | None = None,
    timeout_s: float = 60,
    retries: int = 3,
    force: bool = False,
    log: Log = _print,
) -> Path:
    """Make `resources_dir/<file>` hold the verified file of `source`; return its path.

    An existing file that already has the expected digest is kept unless `force` (which deletes it first).
    Either way its origin sidecar (`origin_path`) is (re)written for the file now in place."""
    dest = Path(resources_dir) / source.file
    mirror = mirror_for(source, mirror, log)
    algo, digest = expected_digest(source, mirror)
    if dest.exists() and not force and file_digest(dest, algo) == digest:
        log(f"{source.key}: {dest} present, {algo} verified")
        write_origin(dest, origin_record(source, mirror, dest, algo, digest))
        return dest
    if dest.exists():
        log(f"{source.key}: {dest} present but {'--force' if force else f'its {algo} differs'}; fetching again")
    origin_path(dest).unlink(missing_ok=True)  # never a sidecar describing the previous file
    if force:
        dest.unlink(missing_ok=True)
    _transfer(source, dest, f"{algo}:{digest}", mirror, timeout_s, retries, log)
    give_usual_permissions(dest)
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
    """`fetch` of source `key` (see `Source.from_config`) with every setting taken from the configuration."""
    options = config.get("download", {})
    return fetch(
        Source.from_config(config, key),
        config["resources_dir"],
        mirror=config.get("data_mirror") or None,
        timeout_s=options.get("timeout_s", 60),
        retries=options.get("retries", 3),
        force=force,
        log=log,
    )


def resource_path(config: Mapping, key: str) -> Path:
    """Where source `key` is stored under resources_dir."""
    return Path(config["resources_dir"]) / Source.from_config(config, key).file
