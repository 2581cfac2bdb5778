"""The study's web server (standard library only: `http.server.ThreadingHTTPServer` + sqlite3).

Participant routes (the page reads the participant ID from the URL parameter `participant_param`, e.g.
Prolific's PROLIFIC_PID):
  GET  /                          the task page (static/index.html + app.js + style.css, served from the package)
  GET  /api/study                 title, task, framing and texts, class names (nothing about the images)
  POST /api/batch                 {participant} -> the participant's open batch or a new one
  GET  /api/image/{batch}/{pos}   one trial's image (PNG) for its participant only (?participant=)
  POST /api/response              one answer; 400/404/409/410 with {"error": message} when refused (nothing stored)
Researcher routes (admin token as ?token= or an `Authorization: Bearer` header; 403 otherwise):
  GET  /admin/progress            the progress page
  GET  /admin/export.csv          the export table (as `softlabels elicit export` writes it)
"""

from __future__ import annotations

import hmac
import json
import mimetypes
import re
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from softlabels.elicit import validate as V
from softlabels.elicit.store import Store

MAX_BODY = 64 * 1024
STATIC = ("index.html", "app.js", "style.css")
_IMAGE = re.compile(r"^/api/image/(\d+)/(\d+)$")


class StudyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # listen backlog: a study link sent to many people at once (the default is 5)

    def __init__(self, address, store: Store, token: str, quiet: bool = False):
        super().__init__(address, Handler)
        self.store = store
        self.token = token
        self.quiet = quiet
        self.static = {name: resources.files("softlabels.elicit").joinpath("static", name).read_bytes() for name in STATIC}

    def stop(self) -> None:
        """Stop serving (from another thread) and close the listening socket."""
        self.shutdown()
        self.server_close()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class Handler(BaseHTTPRequestHandler):
    server: StudyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # one line per request on stderr unless quiet
        if not self.server.quiet:
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

    # ------------------------------------------------------------------------------------------ replies
    def _send(self, status: int, body: bytes, content_type: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _query(self) -> dict:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def _admin(self) -> bool:
        given = self._query().get("token", "")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer "):]
        if given and hmac.compare_digest(given.encode(), self.server.token.encode()):
            return True
        self._error(HTTPStatus.FORBIDDEN, "admin token missing or wrong")
        return False

    def _body(self):
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise V.Rejected("bad Content-Length") from None
        if length > MAX_BODY:
            raise V.Rejected(f"request body over {MAX_BODY} bytes", 413)
        raw = self.rfile.read(length)
        try:
            return json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise V.Rejected("the request body is not valid JSON") from None

    # ------------------------------------------------------------------------------------------ routes
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = urlsplit(self.path).path
        store = self.server.store
        try:
            if path in ("/", "/index.html"):
                return self._send(200, self.server.static["index.html"], "text/html; charset=utf-8")
            if path.startswith("/static/") and path[len("/static/"):] in STATIC:
                name = path[len("/static/"):]
                kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
                return self._send(200, self.server.static[name], f"{kind}; charset=utf-8")
            if path == "/api/study":
                return self._json(200, store.study.public())
            match = _IMAGE.match(path)
            if match:
                batch, position = int(match.group(1)), int(match.group(2))
                stimulus = store.trial_stimulus(batch, position, self._query().get("participant", ""))
                return self._send(200, store.study.png(stimulus), "image/png", cache=True)
            if path == "/admin/progress":
                if self._admin():
                    from softlabels.elicit.progress import progress_html

                    self._send(200, progress_html(store).encode(), "text/html; charset=utf-8")
                return None
            if path == "/admin/export.csv":
                if self._admin():
                    from softlabels.elicit.export import export_table

                    body = export_table(store).to_csv(index=False).encode()
                    self._send(200, body, "text/csv; charset=utf-8")
                return None
            return self._error(404, f"no such page: {path}")
        except V.Rejected as exc:
            return self._error(exc.status, str(exc))

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        store = self.server.store
        try:
            body = self._body()
            if path == "/api/batch":
                participant = body.get("participant", "") if isinstance(body, dict) else ""
                return self._json(200, store.batch_for(participant))
            if path == "/api/response":
                return self._json(200, store.submit(body))
            return self._error(404, f"no such endpoint: {path}")
        except V.Rejected as exc:
            return self._error(exc.status, str(exc))


def start_server(store: Store, token: str, host: str = "127.0.0.1", port: int = 0, quiet: bool = False):
    """A running server in a background thread (tests); returns it (`.url`, `.stop()`)."""
    server = StudyServer((host, port), store, token, quiet=quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server
