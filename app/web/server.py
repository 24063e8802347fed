"""The review page (`main.py --serve`): a small Starlette app over the person-management
services, so the page and the command line obey the same rules.

Reads are GET pages rendered with Jinja2 (autoescaped: a name is always text); every
change is a POST form carrying the CSRF token, answered by a redirect back to the page
with a one-line message (a cookie read once). Files are served by id only
(app/services/review.py). Handlers that touch the database are plain functions, which
Starlette runs in its thread pool.
"""
from __future__ import annotations

import json
import logging
import math
import socket
from pathlib import Path
from urllib.parse import quote, unquote

import jinja2
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import (FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response,
                                 StreamingResponse)
from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from app.config import Settings
from app.errors import RequestError
from app.repositories.persons import SHOWS
from app.services import history as history_service
from app.services import best_photos, person_split, persons, review
from app.db.types import utcnow
from app.web.security import (AUTH_COOKIE, SESSION_COOKIE, Guard, Hosts, Refused, has_nul, local_path, over_https,
                              read_form)

log = logging.getLogger("app.web")
HERE = Path(__file__).parent
PAGE_SIZE = 60  # persons per grid page
FACES_PAGE = 120  # unassigned faces per page
BEST = 6
FLASH_COOKIE = "fg_flash"
SEND_CHUNK = 256 * 1024  # bytes read at a time when a photo or video is sent
# Ids in paths and forms: 10 digits hold every Integer id (2**31 - 1) and still bind on
# both databases (SQLite's driver cannot bind a number past 2**63: a 500 before).
MAX_ID_DIGITS = 10
MAX_PAGE = 10**9  # a page number asked for; the page shown is at most the last one


class IdConvertor(Convertor):
    """A row id in a path: at most MAX_ID_DIGITS digits (a longer number finds no route:
    404), so no id too large for a database column reaches a query."""
    regex = "[0-9]{1,%d}" % MAX_ID_DIGITS

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())  # Starlette's registry of path types


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS


def _ids(values: list[str], what: str) -> list[int]:
    out = []
    for v in values:
        for part in str(v).replace(",", " ").split():
            if not _is_id(part):
                raise RequestError(f"{what}: {part[:40]!r} is not an id")
            out.append(int(part))
    if not out:
        raise RequestError(f"select at least one {what}")
    return out


def _id_or_none(value, what: str) -> int | None:
    """An optional id field: absent or empty is None; anything else must be an id."""
    text = str(value or "").strip()
    if not text:
        return None
    if not _is_id(text):
        raise RequestError(f"{what}: {text[:40]!r} is not an id")
    return int(text)


def create_app(settings: Settings, sessions: sessionmaker[Session], host: str = "127.0.0.1",
               guard: Guard | None = None) -> Starlette:
    """The review page's app; `host` is the address the server is bound to (--host): the
    Host names it answers to are that one, the localhost forms and WEB_ALLOWED_HOSTS.
    `guard`: the login and CSRF guard (a test gives one on its own clock)."""
    guard = guard or Guard(settings.web_token, settings.web_session_hours)
    hosts = Hosts(host, settings.web_allowed_hosts)
    # autoescape everywhere: a name is always text
    templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                                       autoescape=True))

    def page(request: Request, name: str, status: int = 200, **context) -> Response:
        flash = request.cookies.get(FLASH_COOKIE)
        try:
            message = json.loads(unquote(flash)) if flash else None
        except ValueError:
            message = None
        response = templates.TemplateResponse(request, name, {
            "csrf": guard.csrf_for(request.state.sid), "flash": message, "path": request.url.path,
            "logout": guard.login_required and name != "login.html",
            "full_path": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            **context}, status_code=status)
        if flash:
            response.delete_cookie(FLASH_COOKIE)
        return response

    def back(request: Request, target: str | None, kind: str, text: str) -> Response:
        response = RedirectResponse(local_path(target), status_code=303)
        _cookie(request, response, FLASH_COOKIE, quote(json.dumps({"kind": kind, "text": text})), max_age=60)
        return response

    async def form_action(request: Request, action) -> Response:
        """Run a change from a posted form; RequestError becomes the page's error line."""
        form = await _form(request)
        target = form.get("next") or request.headers.get("referer", "/").split(request.url.netloc, 1)[-1]
        try:
            text, where = await run_in_threadpool(action, form)
        except RequestError as exc:
            return back(request, target, "error", str(exc))
        return back(request, where or target, "done", text)

    # --- pages --------------------------------------------------------------------

    def grid(request: Request) -> Response:
        show = request.query_params.get("show", "visible")
        if show not in SHOWS:
            show = "visible"
        order = "unnamed" if request.query_params.get("order") == "unnamed" else "size"
        total = persons.count_persons(sessions, show)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        number = _number(request.query_params.get("page"), 1, 1, pages)
        listed = persons.list_persons(sessions, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE, show=show,
                                      unnamed_first=order == "unnamed")
        return page(request, "grid.html", persons=listed, show=show, order=order, page_number=number, pages=pages,
                    total=total, shows=SHOWS)

    def person(request: Request) -> Response:
        person_id = request.path_params["person_id"]
        try:
            detail = persons.get_person(sessions, person_id)
        except RequestError as exc:
            return page(request, "error.html", status=404, message=str(exc))
        return page(request, "person.html", p=detail.person, faces=detail.faces, rejected=detail.rejected,
                    best=best_photos.best_of(sessions, settings, person_id, BEST))

    def split_page(request: Request) -> Response:
        person_id = request.path_params["person_id"]
        try:
            detail = persons.get_person(sessions, person_id)
            proposal = person_split.split(sessions, settings, person_id)
        except RequestError as exc:
            return page(request, "error.html", status=404, message=str(exc))
        by_id = {f.face_id: f for f in detail.faces}
        groups = [[by_id[i] for i in g if i in by_id] for g in proposal.groups]
        return page(request, "split.html", p=detail.person, groups=groups,
                    rest=[by_id[i] for i in proposal.without_vector if i in by_id], bounds=proposal.bounds)

    def unassigned_page(request: Request) -> Response:
        asked = _number(request.query_params.get("page"), 1, 1, MAX_PAGE)
        total, number, faces = review.unassigned(sessions, settings, FACES_PAGE, asked)
        pages = max(1, math.ceil(total / FACES_PAGE))
        return page(request, "unassigned.html", faces=faces, total=total, page_number=number, pages=pages)

    def status_page(request: Request) -> Response:
        from app.repositories.stats import counts
        with sessions() as session:
            c = counts(session, utcnow(), settings.max_attempts)
        worker = [op for op in history_service.history(sessions, 50) if op.who == "worker"][:5]
        return page(request, "status.html", c=c, worker=worker,
                    hidden=persons.count_persons(sessions, "hidden"))

    def history_page(request: Request) -> Response:
        limit = _number(request.query_params.get("limit"), 50, 1, 500)
        return page(request, "history.html", operations=history_service.history(sessions, limit), limit=limit)

    # --- files (by id only) --------------------------------------------------------

    def thumb(request: Request) -> Response:
        path = review.thumbnail_file(sessions, settings, request.path_params["face_id"])
        if path is None:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    def photo(request: Request) -> Response:
        body = review.photo_file(sessions, request.path_params["media_id"])
        if body is None:
            return PlainTextResponse("not found", status_code=404)
        return _send(body)

    def face_photo(request: Request) -> Response:
        got = review.face_picture(sessions, settings, request.path_params["face_id"])
        if got is None:
            return PlainTextResponse("not found", status_code=404)
        if isinstance(got, bytes):  # a video's frame
            return Response(got, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
        return _send(got)

    def names(request: Request) -> Response:
        found = review.search_names(sessions, request.query_params.get("q", ""))
        return JSONResponse([{"id": i, "name": n} for i, n in found])

    # --- changes -------------------------------------------------------------------

    async def rename(request: Request) -> Response:
        pid = request.path_params["person_id"]
        return await form_action(request, lambda f: (persons.rename(sessions, pid, str(f.get("name", ""))).summary,
                                                     None))

    async def hide(request: Request) -> Response:
        pid = request.path_params["person_id"]
        hidden = request.url.path.endswith("/hide")
        return await form_action(request, lambda f: (persons.set_hidden(sessions, pid, hidden).summary, None))

    async def delete(request: Request) -> Response:
        pid = request.path_params["person_id"]
        return await form_action(request, lambda f: (persons.delete_person(sessions, pid).summary, "/"))

    async def merge(request: Request) -> Response:
        def act(f):
            ids = _ids(f.getlist("person_id"), "person")
            if len(ids) < 2:
                raise RequestError("select at least two persons to merge")
            r = persons.merge(sessions, ids, force=f.get("force") == "1")
            return r.summary, f"/persons/{r.person_id}"
        return await form_action(request, act)

    async def move(request: Request) -> Response:
        def act(f):
            faces = _ids(f.getlist("face_id"), "face")
            to = _target(sessions, str(f.get("to", "")))
            expect = _id_or_none(f.get("from"), "from")
            r = persons.move_faces(sessions, faces, to, expect=expect)
            return r.summary, None
        return await form_action(request, act)

    async def cover(request: Request) -> Response:
        pid = request.path_params["person_id"]

        def act(f):
            faces = _ids(f.getlist("face_id"), "face")
            if len(faces) != 1:
                raise RequestError("select exactly one face to make it the cover")
            persons.set_cover(sessions, pid, faces[0])
            return f"face {faces[0]} is now the cover of person {pid}", None
        return await form_action(request, act)

    async def reject(request: Request) -> Response:
        def act(f):
            faces = _ids(f.getlist("face_id"), "face")
            return persons.reject_faces(sessions, faces, expect=_id_or_none(f.get("from"), "from")).summary, None
        return await form_action(request, act)

    async def split_apply(request: Request) -> Response:
        pid = request.path_params["person_id"]

        def act(f):
            proposal = person_split.split(sessions, settings, pid, apply=True)
            if proposal.operation_id is None:
                raise RequestError(f"person {pid} does not split at the raised bounds: nothing changed")
            return f"person {pid} split: {len(proposal.created)} new person(s) {proposal.created}", f"/persons/{pid}"
        return await form_action(request, act)

    async def undo(request: Request) -> Response:
        def act(f):
            r = history_service.undo(sessions, _id_or_none(f.get("op"), "operation"), force=f.get("force") == "1")
            return r.summary, None
        return await form_action(request, act)

    # --- login ---------------------------------------------------------------------

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return page(request, "login.html", next=local_path(request.query_params.get("next")))
        form = await _form(request)
        address = request.client.host if request.client else "?"
        wait = guard.locked_out(address)
        if wait is not None:  # the token is not even looked at
            log.warning("review page: login from %s refused, too many wrong tokens", address)
            return PlainTextResponse(f"refused: too many wrong tokens from {address}; try again in {wait} s",
                                     status_code=429, headers={"Retry-After": str(wait)})
        if not guard.token_ok(str(form.get("token", ""))):
            log.warning("review page: a wrong login token from %s", address)
            await guard.wrong_token(address)
            return page(request, "login.html", status=403, next=local_path(form.get("next")), wrong=True)
        response = RedirectResponse(local_path(form.get("next")), status_code=303)
        _cookie(request, response, AUTH_COOKIE, guard.login(), max_age=guard.session_seconds)
        return response

    async def logout(request: Request) -> Response:
        guard.logout(request.cookies.get(AUTH_COOKIE))
        response = RedirectResponse("/login" if guard.login_required else "/", status_code=303)
        response.delete_cookie(AUTH_COOKIE, httponly=True, samesite="strict", secure=_https(request))
        return response

    # --- guards --------------------------------------------------------------------

    async def checked(request: Request, call_next) -> Response:
        """The request through the guards (Refused: answered with one line), then the page."""
        host, origin = request.headers.get("host"), request.headers.get("origin")
        if not hosts.accepts(host):
            raise Refused(400, f"refused: this server does not answer to Host {_shown(host)} "
                               "(add the name to WEB_ALLOWED_HOSTS)")
        if request.method == "POST" and not hosts.origin_ok(origin, host):
            raise Refused(403, f"refused: a POST from another site (Origin {_shown(origin)})")
        if has_nul(request.query_params.multi_items()):
            raise Refused(400, "refused: a NUL character in the query")
        sid = request.cookies.get(SESSION_COOKIE)
        fresh = sid is None
        request.state.sid = sid = sid or guard.new_session()
        public = request.url.path == "/login" or request.url.path.startswith("/static/")
        if not public and not guard.authenticated(request.cookies.get(AUTH_COOKIE)):
            response: Response = RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        elif request.method == "POST":
            form = await _form(request)
            sent = request.headers.get("x-csrf-token") or form.get("csrf")
            if not guard.csrf_ok(None if fresh else sid, sent):
                raise Refused(403, "refused: missing or wrong CSRF token; reload the page")
            response = await call_next(request)
        else:
            response = await call_next(request)
        if fresh:
            _cookie(request, response, SESSION_COOKIE, sid)
        return response

    async def guarded(request: Request, call_next) -> Response:
        try:
            response = await checked(request, call_next)
        except Refused as exc:
            log.warning("review page: %s %s %s", request.method, request.url.path, exc)
            response = PlainTextResponse(str(exc), status_code=exc.status)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'")
        return response

    routes = [
        Route("/", grid),
        Route("/persons/{person_id:id}", person),
        Route("/persons/{person_id:id}/split", split_page),
        Route("/persons/{person_id:id}/split/apply", split_apply, methods=["POST"]),
        Route("/persons/{person_id:id}/rename", rename, methods=["POST"]),
        Route("/persons/{person_id:id}/hide", hide, methods=["POST"]),
        Route("/persons/{person_id:id}/unhide", hide, methods=["POST"]),
        Route("/persons/{person_id:id}/delete", delete, methods=["POST"]),
        Route("/persons/{person_id:id}/cover", cover, methods=["POST"]),
        Route("/persons/merge", merge, methods=["POST"]),
        Route("/faces/move", move, methods=["POST"]),
        Route("/faces/reject", reject, methods=["POST"]),
        Route("/undo", undo, methods=["POST"]),
        Route("/unassigned", unassigned_page),
        Route("/status", status_page),
        Route("/history", history_page),
        Route("/thumb/{face_id:id}", thumb),
        Route("/photo/{media_id:id}", photo),
        Route("/faces/{face_id:id}/photo", face_photo),
        Route("/api/names", names),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guarded)])


def listen(host: str, port: int) -> socket.socket:
    """The review page's socket, bound to host:port (OSError: a busy port, an unknown
    host) for the server to listen on."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: no wait after a restart
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _send(body: review.MediaBody) -> Response:
    """Stream a media file from the file checked when it was opened (never reopened by
    name), as the media type its first bytes gave, at most the size it had then."""
    def chunks():
        with body.file as f:
            left = body.size
            while left > 0 and (block := f.read(min(SEND_CHUNK, left))):
                left -= len(block)
                yield block
    return StreamingResponse(chunks(), media_type=body.media_type,
                             headers={"Content-Length": str(body.size), "Cache-Control": "private, max-age=3600"})


async def _form(request: Request) -> FormData:
    """The posted form, parsed once within the limits (app/web/security.py read_form): the
    guard reads it for the CSRF token and the handler for its fields (a request's body can
    be read only once through middleware)."""
    if not hasattr(request.state, "form"):
        request.state.form = await read_form(request)
    return request.state.form


def _https(request: Request) -> bool:
    return over_https(request.url.scheme, request.headers.get("x-forwarded-proto"),
                      request.client.host if request.client else None)


def _cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    """Every cookie of the page: HttpOnly, SameSite=Strict, and Secure when the browser
    came over https (so it is never sent in clear afterwards)."""
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=_https(request))


def _shown(header: str | None) -> str:
    """A header's value as a message shows it: quoted, cut short."""
    return "none" if header is None else repr(header[:80])


def _number(value, default: int, low: int, high: int) -> int:
    """A number from the query, kept within [low, high]; not a number: the default."""
    text = str(value or "").strip()
    if not (text.isascii() and text.isdigit()):
        return default
    return min(max(int(text[:20]), low), high)  # 20 digits: past any bound, and cheap to parse


def _target(sessions: sessionmaker[Session], text: str) -> int | None:
    """A move's target: "new" (a new person), an id, "12 · Name" (type-ahead), or a name."""
    text = " ".join(text.split())
    if not text:
        raise RequestError("say where the faces go: a person id, a name, or 'new'")
    if text.lower() == "new":
        return None
    head = text.split(" ", 1)[0]
    if _is_id(head):
        return int(head)
    found = [(i, n) for i, n in review.search_names(sessions, text, 50) if n.lower() == text.lower()]
    if len(found) == 1:
        return found[0][0]
    if not found:
        raise RequestError(f"no person named {text!r}")
    raise RequestError(f"{len(found)} persons are named {text!r}: use the id")
