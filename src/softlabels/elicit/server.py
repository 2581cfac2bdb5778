"""The study's web server: a Starlette app under uvicorn (HTTP/1.1 through h11), SQLite behind it.

Participant routes (all relative to the page's address, so the app can sit under a proxy's sub-path such as
`/study/`; the page reads the participant ID from the URL parameter `participant_param` and the link's signature
from `access.sig_param`):
  GET  /                          the task page (static/index.html + app.js + style.css, served from the package)
  GET  /api/study                 title, task, framing and texts, class names (nothing about the images)
  POST /api/batch                 {participant, sig} -> the participant's open batch or a new one
  GET  /api/image/{batch}/{pos}   one trial's image (PNG) for its participant only (?participant=&sig=); the
                                  first fetch is noted (an answer counts only after it, `store`)
  POST /api/response              one answer (+ sig); 400/403/404/409/410 with {"error": message} when refused
Researcher routes (admin token as ?token= or an `Authorization: Bearer` header, checked against the salted hash
in the study database; 403 otherwise):
  GET  /admin/progress            the progress page
  GET  /admin/export.csv          the export table of the answers that count (as `softlabels elicit export`)
  GET  /admin/flagged.csv         the flagged answers (not counted), with the reason
  GET  /admin/attention.csv       participants who failed attention checks, with their failures
A path is served only as written: `/admin/progress/` is a 404, never a redirect (Starlette's redirect_slashes
would send the token in the query string to an address built from the Host header).

Hardening (every limit is a `softlabels elicit serve` flag, see `ServerOptions`):
- a request's line, headers and body must arrive within `request_timeout` seconds of its first byte (of the
  connection, for the first request), else 408 and the connection is closed; idle keep-alive connections close
  after `keepalive_timeout`;
- a body needs a Content-Length of at most `max_body` bytes, checked before a byte of it is read: h11 refuses a
  negative or malformed one (400), a missing one or chunked transfer gets 411, a larger one 413, and each of
  these replies closes the connection, so an unread body is never parsed as the next request;
- at most `max_connections` connections and requests at once (503 beyond);
- the POST endpoints take `Content-Type: application/json` only (415 otherwise), so a cross-origin form or
  `text/plain` POST, which a browser sends without asking, is refused;
- JSON nested too deeply, numbers too long, booleans for numbers, huge ids: 4xx, never an exception;
- security headers on every reply (Content-Security-Policy with frame-ancestors 'none', X-Frame-Options,
  nosniff, no Referer); the `Server` header is not sent;
- the client address comes from X-Forwarded-For only when the connection comes from a `trusted_proxies`
  address; the request log names that address, the method, the path (never the query string, which holds
  tokens and signatures) and the status, for every reply, the 408, 400 and 503 the server sends itself
  included.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import resources

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from softlabels.elicit import validate as V
from softlabels.elicit.access import Access
from softlabels.elicit.export import export_table, flagged_table
from softlabels.elicit.progress import failed_participants_table, progress_html
from softlabels.elicit.store import Store

STATIC = ("index.html", "app.js", "style.css")
STATIC_TYPES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
_ID = re.compile(r"^[0-9]{1,10}$")
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")  # fmt: skip
ADMIN_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = [
    (b"content-security-policy", PAGE_CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


@dataclass
class ServerOptions:
    """Limits of the HTTP server (flags of `softlabels elicit serve`)."""

    request_timeout: float = 10.0  # seconds for one request's line, headers and body
    keepalive_timeout: int = 5  # seconds an idle keep-alive connection stays open
    max_body: int = 64 * 1024  # bytes of a request body
    max_connections: int = 200  # connections (and requests in progress) at once; 503 beyond
    trusted_proxies: list[str] = field(default_factory=list)  # addresses whose X-Forwarded-For is believed
    quiet: bool = False  # no request log


# ------------------------------------------------------------------------------------------------ the app
def log_request(client: str, method: str, path: str, status: int) -> None:
    """One line of the request log (stderr): time, client address, method, path (no query string; at most 200
    characters, unprintable ones and spaces as '?') and status."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    path = "".join(c if c.isprintable() and c != " " else "?" for c in path[:200])
    sys.stderr.write(f"{stamp} {client} {method} {path} {status}\n")


def _reply(status: int, body: bytes, content_type: str, extra: list | None = None) -> dict:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    return {"start": {"type": "http.response.start", "status": status, "headers": headers + (extra or [])},
            "body": {"type": "http.response.body", "body": body, "more_body": False}}  # fmt: skip


class Guard:
    """Outermost ASGI layer: the connection cap, body-size rules before the body is read, security headers, the
    request log. `server_state` (uvicorn's, set by `StudyServer`) holds the open connections and requests."""

    def __init__(self, app, options: ServerOptions):
        self.app = app
        self.options = options
        self.server_state = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = [0]

        async def guarded_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        refusal = self._refusal(scope)
        try:
            if refusal is not None:
                code, text = refusal
                reply = _reply(code, json.dumps({"error": text}).encode(), "application/json",
                               [(b"connection", b"close")])  # fmt: skip
                await guarded_send(reply["start"])
                await guarded_send(reply["body"])
            else:
                await self.app(scope, receive, guarded_send)
        finally:
            if not self.options.quiet:
                log_request((scope.get("client") or ("-", 0))[0], scope["method"], scope["path"], status[0] or 500)

    def _busy(self) -> bool:
        """More than `max_connections` connections open or requests in progress (this one included)."""
        state, limit = self.server_state, self.options.max_connections
        return state is not None and (len(state.connections) > limit or len(state.tasks) > limit)

    def _refusal(self, scope) -> tuple[int, str] | None:
        if self._busy():
            return 503, "the server is busy; please try again in a moment"
        length = chunked = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = value
        if chunked is not None:
            return 411, "chunked request bodies are not accepted: send a Content-Length"
        if length is None:
            if scope["method"] in ("POST", "PUT", "PATCH"):
                return 411, "a request body needs a Content-Length header"
            return None
        try:
            n = int(length)
        except ValueError:
            return 400, "bad Content-Length"
        if n < 0:
            return 400, "bad Content-Length"
        if n > self.options.max_body:
            return 413, f"request body over {self.options.max_body} bytes"
        return None


def build_app(store: Store, access: Access, options: ServerOptions, gamma: float | None = None) -> Guard:
    """The ASGI app of one study (Starlette routes wrapped in `Guard`); `gamma`: the progress page's T2-Clamp γ
    (`softlabels.elicit.progress.progress_html`)."""
    study = StudyRoutes(store, access, gamma)
    app = Starlette(routes=study.routes(), exception_handlers={V.Rejected: rejected, HTTPException: http_error,
                                                               Exception: crash})  # fmt: skip
    app.router.redirect_slashes = False  # module docstring: no redirect, so no token sent elsewhere
    return Guard(app, options)


def error(status: int, message: str) -> Response:
    """{"error": message} with `status`; the connection is closed after a timeout or a refused body (which may be
    unread)."""
    headers = {"connection": "close"} if status in (408, 411, 413, 415) else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def rejected(request: Request, exc: V.Rejected) -> Response:
    return error(exc.status, str(exc))


async def http_error(request: Request, exc: HTTPException) -> Response:
    message = {404: f"no such page: {request.url.path[:200]}", 405: "method not allowed"}.get(exc.status_code)
    return error(exc.status_code, message or str(exc.detail))


async def crash(request: Request, exc: Exception) -> Response:
    sys.stderr.write(f"internal error on {request.method} {request.url.path[:200]}: {exc!r}\n")
    return error(500, "internal error; nothing was stored")


async def read_json(request: Request):
    """The request body as JSON; `V.Rejected`: 415 unless it is declared `application/json` (any parameters, such
    as charset=utf-8), 400 when it is missing, too deep or not JSON."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise V.Rejected(f"Content-Type must be application/json, got {media_type[:60] or 'none'!r}", 415)
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise V.Rejected("the request body did not arrive", 400) from None
    try:
        return json.loads(raw or b"null")
    except RecursionError:
        raise V.Rejected("the request body is nested too deeply") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, numbers over Python's digit limit
        raise V.Rejected("the request body is not valid JSON") from None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


class StudyRoutes:
    """The endpoints of one study (module docstring): participant routes checked by the link's signature,
    researcher routes by the admin token."""

    def __init__(self, store: Store, access: Access, gamma: float | None = None):
        self.store, self.access, self.study = store, access, store.study
        self.gamma = gamma
        self.static = {name: resources.files("softlabels.elicit").joinpath("static", name).read_bytes()
                       for name in STATIC}  # fmt: skip

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page("index.html")),
            Route("/index.html", self.page("index.html")),
            *[Route(f"/static/{name}", self.page(name)) for name in STATIC],
            Route("/api/study", self.study_info),
            Route("/api/batch", self.batch, methods=["POST"]),
            Route("/api/image/{batch}/{position}", self.image),
            Route("/api/response", self.response, methods=["POST"]),
            Route("/admin/progress", self.progress),
            Route("/admin/export.csv", self.export_csv),
            Route("/admin/flagged.csv", self.flagged_csv),
            Route("/admin/attention.csv", self.attention_csv),
        ]

    def check_link(self, participant, sig) -> None:
        if not isinstance(participant, str) or not V.PARTICIPANT_ID.fullmatch(participant):
            raise V.Rejected("participant ID missing or malformed (letters, digits, '.', '_', '-'; at most 64)")
        if not self.access.verify(participant, sig):
            raise V.Rejected("this link is not valid for this participant (signature missing or wrong); please use "
                             "the exact link you were given", 403)  # fmt: skip

    async def admin(self, request: Request) -> str:
        """The admin token the request carries, when it is the study's; else `V.Rejected` (403)."""
        given = request.query_params.get("token", "")
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer "):]
        if not await run_in_threadpool(self.store.check_admin_token, given):
            raise V.Rejected("admin token missing or wrong", 403)
        return given

    # ------------------------------------------------------------------------------ participant routes
    def page(self, name: str):
        async def endpoint(request: Request) -> Response:
            return Response(self.static[name], media_type=STATIC_TYPES[name] + "; charset=utf-8",
                            headers={"cache-control": "no-cache"})  # fmt: skip

        return endpoint

    async def study_info(self, request: Request) -> Response:
        return JSONResponse(self.study.public())

    async def batch(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise V.Rejected("the request body must be a JSON object {participant, sig}")
        self.check_link(body.get("participant"), body.get("sig"))
        return JSONResponse(await run_in_threadpool(self.store.batch_for, body["participant"], client_address(request)))

    async def image(self, request: Request) -> Response:
        batch_id, position = request.path_params["batch"], request.path_params["position"]
        if not (_ID.match(batch_id) and _ID.match(position)):
            raise V.Rejected("no such trial for this participant", 404)
        participant = request.query_params.get("participant", "")
        self.check_link(participant, request.query_params.get("sig"))
        stimulus = await run_in_threadpool(self.store.fetch_stimulus, int(batch_id), int(position), participant)
        png = await run_in_threadpool(self.study.png, stimulus)
        return Response(png, media_type="image/png", headers={"cache-control": "private, max-age=3600"})

    async def response(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise V.Rejected("the request body must be a JSON object")
        self.check_link(body.get("participant"), body.get("sig"))
        return JSONResponse(await run_in_threadpool(self.store.submit, body))

    # ------------------------------------------------------------------------------ researcher routes
    async def progress(self, request: Request) -> Response:
        token = await self.admin(request)
        html = await run_in_threadpool(progress_html, self.store, token, self.gamma)
        return Response(html, media_type="text/html; charset=utf-8", headers={"content-security-policy": ADMIN_CSP})

    async def export_csv(self, request: Request) -> Response:
        await self.admin(request)
        table = await run_in_threadpool(export_table, self.store)
        return Response(table.to_csv(index=False), media_type="text/csv; charset=utf-8")

    async def flagged_csv(self, request: Request) -> Response:
        await self.admin(request)
        table = await run_in_threadpool(flagged_table, self.store)
        return Response(table.to_csv(index=False), media_type="text/csv; charset=utf-8")

    async def attention_csv(self, request: Request) -> Response:
        await self.admin(request)
        table = await run_in_threadpool(failed_participants_table, self.store)
        return Response(table.to_csv(index=False), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": 'attachment; filename="attention_failures.csv"'})  # fmt: skip


# ------------------------------------------------------------------------------------------------ the server
def _timed_protocol(timeout: float, quiet: bool):
    """uvicorn's h11 protocol with a deadline on receiving each request (uvicorn itself has none), whose own
    replies (408 past the deadline, 400 for what h11 cannot parse) go into the request log unless `quiet`."""
    class TimedH11Protocol(H11Protocol):
        def connection_made(self, transport) -> None:
            self._read_timer = None
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            if self._read_timer is None:
                self._read_timer = self.loop.call_later(timeout, self._timed_out)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def data_received(self, data: bytes) -> None:
            if self.cycle is None or self.cycle.response_complete:
                self._arm()  # the first bytes of a new request
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete and not self.cycle.more_body:
                self._disarm()  # the whole request is in

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _timed_out(self) -> None:
            self._read_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
                body = b'{"error": "the request did not arrive in time"}'
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                     b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))  # fmt: skip
                self._log(408)
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            super().send_400_response(msg)
            self._log(400)

        def _log(self, status: int) -> None:
            """A log line for a reply of the protocol's own: the request's method and path when its head arrived."""
            if quiet:
                return
            pending = self.cycle is not None and not self.cycle.response_complete
            method, path = (self.scope["method"], self.scope["path"]) if pending else ("-", "-")
            log_request(self.client[0] if self.client else "-", method, path, status)

    return TimedH11Protocol


def bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket for `host` (IPv4 or IPv6 address or name) and `port` (0 = any free one)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]  # fmt: skip
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and host in ("::", ""):
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # both IPv6 and IPv4 clients
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class StudyServer:
    """One study served by uvicorn on a bound socket; `.serve_forever()` (CLI) or `.start()` (a thread, tests).
    The admin pages take the token whose hash the study database keeps (`Store.admin_token`)."""

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 0, options: ServerOptions | None = None,
                 gamma: float | None = None):  # fmt: skip
        self.store = store
        self.options = options or ServerOptions()
        spec = store.study
        self.access = Access(store.secret(), spec["access"]["mode"], spec["participant_param"],
                             spec["access"]["sig_param"])  # fmt: skip
        app = build_app(store, self.access, self.options, gamma)
        self.sock = bind(host, port)
        trusted = list(self.options.trusted_proxies)
        self.config = uvicorn.Config(
            app, http=_timed_protocol(self.options.request_timeout, self.options.quiet), lifespan="off",
            access_log=False, log_level="error" if self.options.quiet else "warning", server_header=False,
            proxy_headers=bool(trusted), forwarded_allow_ips=trusted or [],
            timeout_keep_alive=self.options.keepalive_timeout,  # max_connections: `Guard`, so the 503s are logged
            h11_max_incomplete_event_size=16 * 1024, backlog=256, timeout_graceful_shutdown=5,
        )  # fmt: skip
        self.server = uvicorn.Server(self.config)
        app.server_state = self.server.server_state
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def sign(self, participant: str) -> str:
        return self.access.sign(participant)

    def serve_forever(self) -> None:
        """Serve until SIGINT/SIGTERM (main thread) or `.stop()`."""
        self.server.run(sockets=[self.sock])

    def start(self) -> StudyServer:
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the study server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=15)
        self.sock.close()


def start_server(store: Store, token: str, host: str = "127.0.0.1", port: int = 0, quiet: bool = False,
                 **options) -> StudyServer:  # fmt: skip
    """A running server in a background thread with admin token `token` (tests); returns it (`.url`, `.sign(id)`,
    `.stop()`)."""
    store.admin_token(token)
    return StudyServer(store, host, port, ServerOptions(quiet=quiet, **options)).start()

