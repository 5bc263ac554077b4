"""The dashboard's web app (Starlette, served by uvicorn): the page, its JSON state, the frames, the actions.

Security: bound to 127.0.0.1 (`local`), reads need no token but the Host header must name the loopback (no DNS
rebinding); on any other host every request needs the token (`?token=` or the X-Anim-Token header), else 401.
Actions are POST only and always need the token from the query or the header (never a cookie: no CSRF). Files
are served only from under ROOT: encoded slashes/dots, `..`, dot-files, absolute paths and whatever resolves
(symlinks) outside ROOT are refused before anything is opened, and only image and video types are served.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from anim.batch import control
from anim.errors import InputError
from anim.serve.scan import scan

PAGE = Path(__file__).with_name("page.html")
TOKEN_HEADER = "x-anim-token"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
SERVED_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
                ".gif": "image/gif", ".mp4": "video/mp4", ".webm": "video/webm"}
ENCODED_REFUSED = (b"%2f", b"%5c", b"%2e", b"%00")  # '/', '\', '.', NUL spelled so a path check cannot see them
NO_STORE = {"Cache-Control": "no-store"}


def given_token(request: Request, *, allow_query: bool = True) -> str | None:
    """The token a request carries: the X-Anim-Token header, else `?token=` (when allowed)."""
    header = request.headers.get(TOKEN_HEADER)
    if header:
        return header
    return request.query_params.get("token") if allow_query else None


def token_ok(given: str | None, token: str) -> bool:
    """Constant-time comparison; a missing token never matches."""
    return given is not None and secrets.compare_digest(given.encode(), token.encode())


def safe_file(root_real: Path, rel: str, raw_path: bytes) -> Path | None:
    """The real path of ROOT/`rel` when it is a servable file inside ROOT; None for anything refused (the caller
    answers 403 without opening it). `raw_path` is the request path as sent, before percent-decoding."""
    if any(code in raw_path.lower() for code in ENCODED_REFUSED):
        return None
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(not p or p.startswith(".") or "\\" in p or "\0" in p for p in parts):
        return None
    if Path(parts[-1]).suffix.lower() not in SERVED_TYPES:
        return None
    real = Path(os.path.realpath(root_real.joinpath(*parts)))
    if root_real not in real.parents:
        return None
    return real


class Dashboard:
    """The endpoints over one ROOT; `reader` turns ROOT into the page's state (anim.serve.scan.scan)."""

    def __init__(self, root: Path, token: str, *, local: bool, reader: Callable[[Path], dict] = scan) -> None:
        self.root, self.token, self.local, self.read = Path(root), token, local, reader
        self.root_real = Path(os.path.realpath(root))

    def authorised(self, request: Request) -> bool:
        """Reads: free on the loopback, else the token. Actions: always the token, from header or query."""
        if request.method == "POST":
            return token_ok(given_token(request), self.token)
        return self.local or token_ok(given_token(request), self.token)

    async def page(self, request: Request) -> Response:
        """The single page, with the token (for the actions and file links) and a script nonce filled in."""
        nonce = secrets.token_urlsafe(12)
        html = PAGE.read_text(encoding="utf-8").replace("__ANIM_TOKEN_JSON__", json.dumps(self.token))
        html = html.replace("__NONCE__", nonce)
        csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self'; "
               "media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        return HTMLResponse(html, headers={**NO_STORE, "Content-Security-Policy": csp, "Referrer-Policy": "no-referrer",
                                           "X-Frame-Options": "DENY"})

    async def state(self, request: Request) -> Response:
        """Every job's view (anim.serve.scan) as JSON."""
        return JSONResponse(self.read(self.root), headers=NO_STORE)

    async def file(self, request: Request) -> Response:
        """A frame or video under ROOT (see safe_file)."""
        real = safe_file(self.root_real, request.path_params["path"], request.scope.get("raw_path") or b"")
        if real is None:
            return PlainTextResponse("refused", status_code=403)
        if not real.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(real, media_type=SERVED_TYPES[real.suffix.lower()],
                            headers={"Cache-Control": "max-age=3600" if "/frames/" in str(real) else "no-store"})

    async def job_action(self, request: Request) -> Response:
        """POST /api/jobs/<job>/requeue|cancel: write the control file the batch workers read."""
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in ("requeue", "cancel"):
            return JSONResponse({"error": f"no action {action!r}: requeue or cancel"}, status_code=404)
        state = self.read(self.root)
        if not state["batch"]:
            return JSONResponse({"error": "not a batch root: nothing to requeue or cancel"}, status_code=409)
        if name not in {job["name"] for job in state["jobs"]}:
            return JSONResponse({"error": f"no job {name!r} under this root"}, status_code=404)
        try:
            (control.requeue if action == "requeue" else control.cancel)(self.root, name)
        except InputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True, "job": name, "action": action})

    async def queue_action(self, request: Request) -> Response:
        """POST /api/queue/pause|resume: write or remove ROOT/.control/pause."""
        action = request.path_params["action"]
        if action not in ("pause", "resume"):
            return JSONResponse({"error": f"no action {action!r}: pause or resume"}, status_code=404)
        (control.pause if action == "pause" else control.resume)(self.root)
        return JSONResponse({"ok": True, "action": action, "paused": control.paused(self.root)})


class TokenGate:
    """ASGI middleware: 401 for a request that `authorised` refuses (before any route runs)."""

    def __init__(self, app, authorised: Callable[[Request], bool]) -> None:
        self.app, self.authorised = app, authorised

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and not self.authorised(Request(scope)):
            await PlainTextResponse("token required", status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(root: Path, token: str, *, local: bool) -> Starlette:
    """The dashboard app over `root`; `local` (a loopback bind) lets reads through without the token."""
    board = Dashboard(root, token, local=local)
    routes = [
        Route("/", board.page, methods=["GET"]),
        Route("/api/state", board.state, methods=["GET"]),
        Route("/files/{path:path}", board.file, methods=["GET"]),
        Route("/api/jobs/{name}/{action}", board.job_action, methods=["POST"]),
        Route("/api/queue/{action}", board.queue_action, methods=["POST"]),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS))] if local else []
    middleware.append(Middleware(TokenGate, authorised=board.authorised))
    return Starlette(routes=routes, middleware=middleware)
