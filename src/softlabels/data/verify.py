"""Start-up check of the stored downloads, so that a file corrupted after it was fetched is fetched again.

Snakemake decides what to rerun from file times, never from contents: a download that was damaged on disk
after its fetch job finished would be trusted by every later run. The workflow therefore calls
`discard_corrupt_downloads` once when it starts (not inside each job): every stored source file whose size or
modification time changed since it was last verified is hashed again, and one whose digest no longer matches
is deleted, exactly as `fetch` deletes a bad transfer, so that its fetch rule (and everything built from it)
runs again. Verified files are remembered in `<resources_dir>/.verified.json` by (size, mtime, digest), so an
unchanged file is not hashed again on the next start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Mapping

from softlabels.data.download import DownloadError, Source, expected_digest, file_digest
from softlabels.data.io import write_text

STAMP_FILE = ".verified.json"


def _stamp(path: Path, algo: str, digest: str) -> list:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, f"{algo}:{digest}"]


def _read_stamps(stamp_path: Path) -> dict:
    try:
        stamps = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        return {}
    return stamps if isinstance(stamps, dict) else {}


def _write_stamps(stamp_path: Path, stamps: dict) -> None:
    write_text(stamp_path, json.dumps(stamps, indent=1, sort_keys=True))


def discard_corrupt_downloads(config: Mapping, log: Callable[[str], None] = print) -> list[Path]:
    """Delete every stored download under `resources_dir` whose digest differs from the expected one (the
    mirror's MANIFEST sha256 in mirror mode, else the pinned `sources.<key>.checksum`); return their paths."""
    resources = Path(config["resources_dir"])
    if not resources.is_dir():
        return []
    stamp_path = resources / STAMP_FILE
    stamps = _read_stamps(stamp_path)
    mirror = config.get("data_mirror") or None
    discarded, changed = [], False
    for key in config["sources"]:
        source = Source.from_config(config, key)
        path = resources / source.file
        if not path.is_file():
            continue
        try:
            algo, digest = expected_digest(source, mirror)
        except DownloadError:
            continue  # the fetch job reports a bad mirror or checksum with its own message
        if stamps.get(source.file) == _stamp(path, algo, digest):
            continue
        if file_digest(path, algo) == digest:
            stamps[source.file] = _stamp(path, algo, digest)
        else:
            log(
                f"softlabels: {path} no longer has its {algo} {digest[:12]}... (corrupted or replaced); "
                "deleted so that it is fetched again"
            )
            path.unlink()
            stamps.pop(source.file, None)
            discarded.append(path)
        changed = True
    if changed:
        _write_stamps(stamp_path, stamps)
    return discarded
