"""Downloads (through pooch) against a real HTTP server on 127.0.0.1, no mocks: checksums, HTTP errors,
transfers cut short, retries, derived files and mirror mode."""

from __future__ import annotations

import hashlib
import io
import random
import shutil
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from softlabels.config import with_package_defaults
from softlabels.data.download import (
    ChecksumError,
    DownloadError,
    Source,
    collect_provenance,
    derive_stimulus_list,
    fetch,
    origin_path,
    read_manifest,
    read_origin,
)

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(random.Random(0).randbytes(300_000))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FixtureServer:
    """Serves `files` (path -> bytes); `/truncated/...` announces the full length but closes after half,
    `/flaky/...` answers 503 to the first request of each path. Counts requests per path."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                n = server.requests[self.path] = server.requests.get(self.path, 0) + 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                if self.path.startswith("/flaky/") and n == 1:
                    self.send_error(503, "Service Unavailable")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path.startswith("/truncated/"):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = FixtureServer()
    yield srv
    srv.close()


def fetch_quietly(source, resources, **kwargs):
    lines = []
    kwargs.setdefault("retries", 2)
    kwargs.setdefault("timeout_s", 10)
    path = fetch(source, resources, log=lines.append, **kwargs)
    return path, lines


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_download_verified_and_renamed(server, tmp_path):
    server.files["/data/file.bin"] = PAYLOAD
    source = Source("demo", "demo/file.bin", server.url("/data/file.bin"), f"sha256:{sha256(PAYLOAD)}")
    path, lines = fetch_quietly(source, tmp_path)
    assert path == tmp_path / "demo" / "file.bin"
    assert path.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["file.bin", "file.bin.origin.json"]
    assert any("done:" in line for line in lines)  # progress goes to the log
    assert read_origin(path) == {"file": "demo/file.bin", "origin": source.url, "official_url": source.url,
                                 "sha256": sha256(PAYLOAD), "approximate": False, "note": ""}


def test_md5_checksum_and_existing_file_kept(server, tmp_path):
    server.files["/f"] = PAYLOAD
    source = Source("demo", "f.bin", server.url("/f"), f"md5:{hashlib.md5(PAYLOAD).hexdigest()}")
    fetch_quietly(source, tmp_path)
    fetch_quietly(source, tmp_path)
    assert server.requests["/f"] == 1  # the verified file is kept, not fetched again


def test_checksum_mismatch_names_digests_and_leaves_nothing(server, tmp_path):
    corrupted = PAYLOAD[:-1] + b"X"
    server.files["/data/file.bin"] = corrupted
    expected = sha256(PAYLOAD)
    source = Source("demo", "demo/file.bin", server.url("/data/file.bin"), f"sha256:{expected}")
    with pytest.raises(ChecksumError) as err:
        fetch_quietly(source, tmp_path)
    message = str(err.value)
    assert "file.bin" in message and expected in message and sha256(corrupted) in message
    assert leftovers(tmp_path) == []


def test_http_404_names_the_url(server, tmp_path):
    url = server.url("/missing.csv")
    source = Source("demo", "missing.csv", url, f"sha256:{sha256(b'')}")
    with pytest.raises(DownloadError) as err:
        fetch_quietly(source, tmp_path, retries=3)
    assert "404" in str(err.value) and url in str(err.value)
    assert server.requests["/missing.csv"] == 1  # a 404 is not retried
    assert leftovers(tmp_path) == []


def test_connection_closed_mid_transfer_leaves_no_file(server, tmp_path):
    server.files["/truncated/big.bin"] = PAYLOAD
    source = Source("demo", "big.bin", server.url("/truncated/big.bin"), f"sha256:{sha256(PAYLOAD)}")
    with pytest.raises(DownloadError) as err:
        fetch_quietly(source, tmp_path, retries=2)
    assert "after 2 attempt" in str(err.value)
    assert server.requests["/truncated/big.bin"] == 2
    assert leftovers(tmp_path) == []


def test_transient_error_is_retried(server, tmp_path):
    server.files["/flaky/f.bin"] = PAYLOAD
    source = Source("demo", "f.bin", server.url("/flaky/f.bin"), f"sha256:{sha256(PAYLOAD)}")
    path, lines = fetch_quietly(source, tmp_path, retries=2)
    assert path.read_bytes() == PAYLOAD
    assert server.requests["/flaky/f.bin"] == 2
    assert any("503" in line for line in lines)


def _glove_zip(rows: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("glove.6B.50d.txt", "".join(rows))
        archive.writestr("glove.6B.100d.txt", "unused 0.1\n")
    return buffer.getvalue()


def test_glove_rows_derived_in_class_order(server, tmp_path):
    from softlabels import CLASSES

    class_rows = [f"{name} {k}.5 -{k}.25\n" for k, name in enumerate(CLASSES)]
    other = ["the 0.1 0.2\n", "cats 9 9\n", "catfish 1 1\n"]
    shuffled = class_rows[::-1] + other
    random.Random(1).shuffle(shuffled)
    server.files["/glove.6B.zip"] = _glove_zip(shuffled)
    derived = "".join(class_rows).encode()
    source = Source("glove", "glove/rows.txt", server.url("/glove.6B.zip"), f"sha256:{sha256(derived)}", "glove_rows")
    path, _ = fetch_quietly(source, tmp_path)
    assert path.read_bytes() == derived
    assert leftovers(tmp_path) == ["rows.txt", "rows.txt.origin.json"]  # the zip is not kept


def test_derived_file_checked_after_derivation(server, tmp_path):
    server.files["/batches.js"] = b'var batches = [{"0": [{"filename": "mixed_0.5_Cat_1_Dog_2.png"}]}];'
    source = Source("s", "s.txt", server.url("/batches.js"), f"sha256:{sha256(b'other')}", "stimulus_list")
    with pytest.raises(ChecksumError):
        fetch_quietly(source, tmp_path)
    assert leftovers(tmp_path) == []


def test_stimulus_list_matches_pinned_checksum(data_mirror, tmp_path):
    """The batch-file layout (a JS array of {"filename": ...} records, names repeated across batches) derives
    to exactly the pinned file."""
    names = (data_mirror / "hill-mixup/first_collection_stimuli.txt").read_text().split()
    order = names + names[:50]
    random.Random(2).shuffle(order)
    records = ", ".join(f'{{"filename": "{n}", "label1": "X", "mixture_coeff": "0.5"}}' for n in order)
    js = tmp_path / "first_collection_batches.js"
    js.write_text(f'var batches = [{{"0": [{records}]}}];\n')
    out = tmp_path / "derived.txt"
    derive_stimulus_list(js, out)
    config = with_package_defaults(yaml.safe_load((REPO / "config.yaml").read_text()))
    assert f"sha256:{sha256(out.read_bytes())}" == config["sources"]["hmix_stimuli"]["checksum"]


def test_glove_rows_match_pinned_checksum(data_mirror, server, tmp_path):
    rows = (data_mirror / "glove/glove.6B.50d.cifar10.txt").read_text().splitlines(keepends=True)
    server.files["/glove.6B.zip"] = _glove_zip(["the 0.1\n", *rows[::-1], "zebra 0.3\n"])
    config = with_package_defaults(yaml.safe_load((REPO / "config.yaml").read_text()))
    spec = dict(config["sources"]["glove"], url=server.url("/glove.6B.zip"))
    path, _ = fetch_quietly(Source("glove", **spec), tmp_path)
    assert path.read_bytes() == (data_mirror / "glove/glove.6B.50d.cifar10.txt").read_bytes()


# --- mirror mode --------------------------------------------------------------------------------------------


def make_mirror(root: Path, files: dict[str, bytes], manifest_digests: dict[str, str] | None = None,
                notes: dict[str, str] | None = None) -> Path:
    lines = ["path\tofficial_url\tsha256\tbytes\tnote"]
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        digest = (manifest_digests or {}).get(name, sha256(data))
        note = (notes or {}).get(name, "exact")
        lines.append(f"{name}\thttps://example.org/{name}\t{digest}\t{len(data)}\t{note}")
    (root / "MANIFEST.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_mirror_copy_checked_against_manifest(tmp_path):
    mirror = make_mirror(tmp_path / "mirror", {"sub/a.csv": PAYLOAD})
    # The pinned checksum is ignored in mirror mode (the mirror may hold an approximation).
    source = Source("a", "sub/a.csv", "https://unreachable.invalid/a.csv", f"md5:{'0' * 32}")
    path, lines = fetch_quietly(source, tmp_path / "res", mirror=str(mirror))
    assert path.read_bytes() == PAYLOAD
    assert any("mirror of https://unreachable.invalid/a.csv" in line for line in lines)


def test_mirror_mismatch_detected(tmp_path):
    mirror = make_mirror(tmp_path / "mirror", {"a.csv": PAYLOAD}, {"a.csv": sha256(b"original")})
    source = Source("a", "a.csv", "https://unreachable.invalid/a.csv", f"sha256:{sha256(b'original')}")
    with pytest.raises(ChecksumError) as err:
        fetch_quietly(source, tmp_path / "res", mirror=str(mirror))
    assert sha256(b"original") in str(err.value) and sha256(PAYLOAD) in str(err.value)
    assert leftovers(tmp_path / "res") == []


def test_mirror_without_entry_or_file(tmp_path):
    mirror = make_mirror(tmp_path / "mirror", {"a.csv": PAYLOAD})
    source = Source("b", "b.csv", "https://unreachable.invalid/b.csv", f"sha256:{sha256(PAYLOAD)}")
    with pytest.raises(DownloadError, match="not listed in .*MANIFEST.tsv"):
        fetch_quietly(source, tmp_path / "res", mirror=str(mirror))
    (mirror / "a.csv").unlink()
    with pytest.raises(DownloadError, match="not found in the data mirror"):
        fetch_quietly(Source("a", "a.csv", "https://x.invalid/a", "md5:" + "0" * 32), tmp_path / "res",
                      mirror=str(mirror))


def test_real_manifest_covers_every_source(data_mirror):
    config = with_package_defaults(yaml.safe_load((REPO / "config.yaml").read_text()))
    manifest = read_manifest(data_mirror)
    for key, spec in config["sources"].items():
        assert spec["file"] in manifest, key
        if manifest[spec["file"]]["note"] == "exact" and spec["checksum"].startswith("sha256:"):
            assert spec["checksum"] == "sha256:" + manifest[spec["file"]]["sha256"], key


def test_fetch_command_uses_config_and_mirror(tmp_path, monkeypatch):
    from softlabels.cli import main

    mirror = make_mirror(tmp_path / "mirror", {"cifar-10s/raw_human_data.csv": b"a,b\n1,2\n"})
    monkeypatch.chdir(tmp_path)
    args = ["fetch", "cifar10s_raw", "--data-mirror", str(mirror), "--config", "resources_dir=res"]
    assert main(args) == 0
    assert (tmp_path / "res/cifar-10s/raw_human_data.csv").read_bytes() == b"a,b\n1,2\n"
    assert main(["fetch", "no_such_source", "--data-mirror", str(mirror)]) == 2
    shutil.rmtree(tmp_path / "res")


def test_mirror_origin_records_the_manifest_approximation(tmp_path):
    note = "APPROXIMATION: test batch only"
    mirror = make_mirror(tmp_path / "mirror", {"a.csv": PAYLOAD, "b.csv": b"b"}, notes={"a.csv": note})
    source = Source("a", "a.csv", "https://unreachable.invalid/a.csv", f"md5:{'0' * 32}")
    path, _ = fetch_quietly(source, tmp_path / "res", mirror=str(mirror))
    assert read_origin(path) == {"file": "a.csv", "origin": f"mirror:{(mirror / 'a.csv').resolve()}",
                                 "official_url": "https://example.org/a.csv", "sha256": sha256(PAYLOAD),
                                 "approximate": True, "note": note}
    path, _ = fetch_quietly(Source("b", "b.csv", "https://x.invalid/b", "md5:" + "0" * 32), tmp_path / "res",
                            mirror=str(mirror))
    assert read_origin(path)["approximate"] is False and read_origin(path)["note"] == "exact"


def test_provenance_command_collects_the_sidecars(tmp_path, monkeypatch):
    from softlabels.cli import main
    from softlabels.config import load

    monkeypatch.chdir(tmp_path)
    config = load(None, {"resources_dir": "res"})
    files = {spec["file"]: key.encode() for key, spec in config["sources"].items()}
    cifar10 = config["sources"]["cifar10"]["file"]
    mirror = make_mirror(tmp_path / "mirror", files, notes={cifar10: "APPROXIMATION: decoded from JPEGs"})
    common = ["--data-mirror", str(mirror), "--config", "resources_dir=res"]
    assert main(["fetch", "cifar10", *common]) == 0
    assert origin_path(tmp_path / "res" / cifar10).is_file()
    assert main(["provenance", "--out", "prov.json", *common]) == 0  # fetches (verifies) the others first
    import json

    provenance = json.loads((tmp_path / "prov.json").read_text())
    assert set(provenance) == {"sources"} and set(provenance["sources"]) == set(config["sources"])
    assert provenance["sources"]["cifar10"]["approximate"] is True
    assert provenance["sources"]["cifar10"]["origin"] == f"mirror:{(mirror / cifar10).resolve()}"
    assert not any(r["approximate"] for k, r in provenance["sources"].items() if k != "cifar10")
    # a stored file that changed since its record is verified again (here: fails, and says so)
    (tmp_path / "res" / cifar10).write_bytes(b"changed")
    (mirror / cifar10).write_bytes(b"changed too")
    assert main(["provenance", "--out", "prov2.json", *common]) == 2
    assert not (tmp_path / "prov2.json").exists()


def test_real_mirror_marks_cifar10_as_approximate(data_mirror, tmp_path):
    from softlabels.config import load

    config = load(None, {"resources_dir": str(tmp_path / "res"), "data_mirror": str(data_mirror)})
    config["sources"] = {k: config["sources"][k] for k in ("cifar10", "cifar10h_probs")}
    provenance = collect_provenance(config, log=lambda _: None)["sources"]
    assert provenance["cifar10"]["approximate"] is True
    assert provenance["cifar10"]["note"].startswith("APPROXIMATION")
    assert provenance["cifar10h_probs"]["approximate"] is False


def test_cifar10c_goes_through_fetch_from_config(server, tmp_path):
    """The CIFAR-10-C tar (evaluation.corruption.cifar10c) is fetched like any source, except that a mirror whose
    MANIFEST does not list it is passed over for the URL; a mirror that lists it is used."""
    from softlabels.evaluate.corruptions import fetch_cifar10c

    server.files["/CIFAR-10-C.tar"] = PAYLOAD
    spec = {"file": "cifar-10-c/CIFAR-10-C.tar", "url": server.url("/CIFAR-10-C.tar"),
            "checksum": f"sha256:{sha256(PAYLOAD)}"}  # fmt: skip
    mirror = make_mirror(tmp_path / "mirror", {"other.csv": b"x"})
    config = {"sources": {}, "evaluation": {"corruption": {"cifar10c": spec}}, "resources_dir": str(tmp_path / "res"),
              "data_mirror": str(mirror), "download": {"timeout_s": 10, "retries": 1}}  # fmt: skip
    lines = []
    path = fetch_cifar10c(config, log=lines.append)
    assert path.read_bytes() == PAYLOAD and server.requests["/CIFAR-10-C.tar"] == 1
    assert any("does not list cifar-10-c/CIFAR-10-C.tar" in line for line in lines)
    assert read_origin(path)["origin"] == spec["url"]
    listed = make_mirror(tmp_path / "mirror2", {"cifar-10-c/CIFAR-10-C.tar": PAYLOAD})
    path.unlink()
    path = fetch_cifar10c({**config, "data_mirror": str(listed)}, log=lines.append)
    assert read_origin(path)["origin"] == f"mirror:{(listed / 'cifar-10-c/CIFAR-10-C.tar').resolve()}"
    assert server.requests["/CIFAR-10-C.tar"] == 1
    with pytest.raises(DownloadError, match="unknown source 'cifar10d'"):
        fetch_quietly(Source.from_config(config, "cifar10d"), tmp_path)
