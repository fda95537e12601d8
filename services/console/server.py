"""The privacy-ops console: a login-protected page served by ``dsr up`` beside the dashboard.

| path | what |
|---|---|
| ``/login``, ``/logout`` | a session for one of ``console-users.json``'s users |
| ``/`` | held requests and what each waits for; the deadline calendar |
| ``/requests/<id>`` | one request: the notice the principal gets, the forms to act |
| ``/requests/<id>/letter`` | the letter as sent, once answered |
| ``POST /requests/<id>/release``, ``refuse``, ``extend`` | signed with the user's key |

Pages are rendered on the server (Jinja2, autoescaped) and use no script. Every form
carries an anti-forgery token; the session cookie is HttpOnly and SameSite=Strict. It
binds to 127.0.0.1 by default, as the dashboard does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from services import rules, statements
from services.console import actions
from services.console.sessions import COOKIE, LIFETIME_S, Sessions
from services.console.users import User, authenticate, find
from services.crypto.sealing import Sealer
from services.datamap import load as load_datamap
from services.decisions import Outcome
from services.delivery.encrypted import open_package_storage
from services.delivery.labels import Labels
from services.delivery.letterhead import Letterhead
from services.delivery.package import read_package
from services.delivery.pdf import bundled_font
from services.ledger import Ledger, RequestStatus, as_utc
from services.notify import compose
from services.notify.notice import Notice
from services.rules import reasons
from services.serving import Background, bind, send
from services.settings import Settings
from services.templating import templates
from streams.records import DecisionEvent, ResponseEvent

log = logging.getLogger("dsr.console")

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: The letter carries its own inline style sheet, and nothing else.
LETTER_CSP = "default-src 'none'; style-src 'unsafe-inline'; font-src 'self'"
MAX_FORM = 64 * 1024


class Console:
    """What the pages need: the ledger (able to open the requests it keeps), the users,
    sessions, and how to reach the broker."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.ledger = Ledger(settings.database_url, sealer=Sealer.from_settings(settings))
        self.users = settings.home / "console-users.json"
        self.sessions = Sessions.at(settings.home / "console-secret")
        datamap = load_datamap(settings.datamap_path)
        self.labels = Labels.of(datamap)
        self.systems = sorted(datamap.systems)
        self.letterhead = Letterhead.load(settings.letterhead_path, settings.complaints_contact)

    def user(self, token: str | None) -> User | None:
        name = self.sessions.user(token)
        return None if name is None else find(self.users, name)

    def notice(self, request_id: str) -> Notice | None:
        """What the principal is (or will be) told now: the response, or the hold."""
        row = self.ledger.request(request_id)
        if row is None:
            return None
        event = self.ledger.request_event(row)
        contact = str(self.letterhead.complaints)
        stored = self.ledger.response(request_id)
        if stored is not None:
            response = ResponseEvent.model_validate(stored.body)
            return compose.for_response(event, response, contact, self.labels)
        if row.status == RequestStatus.HELD and row.hold_reason:
            return compose.for_hold(event, row.hold_reason, 1, as_utc(row.updated_at), contact)
        return None


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    # -- routing -----------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path, query = self._path()
        try:
            if path == "/static/console.css":
                css = files("services.console").joinpath("templates", "console.css").read_bytes()
                self._send(HTTPStatus.OK, css, "text/css; charset=utf-8")
            elif path == "/static/japanese.ttf":  # the letter's font: Japanese on any machine
                font = bundled_font().read_bytes()
                self._send(HTTPStatus.OK, font, "font/ttf", cache="max-age=86400")
            elif path == "/login":
                self._page("login.html.j2", None)
            elif path == "/healthz":
                self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
            elif (user := self._user()) is None:
                self._redirect("/login")
            elif path == "/":
                self._home(user, query)
            elif path.startswith("/requests/") and path.endswith("/letter"):
                self._letter(unquote(path.removeprefix("/requests/").removesuffix("/letter")))
            elif path.startswith("/requests/"):
                self._request(user, unquote(path.removeprefix("/requests/")), query)
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
        except Exception:
            log.exception("console request failed: %s", path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain")

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        path, _ = self._path()
        try:
            form = self._form()
            if path == "/login":
                self._login(form)
                return
            user = self._user()
            if user is None or not self.server.console.sessions.csrf_ok(
                self._token(), form.get("csrf")
            ):
                self._send(HTTPStatus.FORBIDDEN, b"forbidden\n", "text/plain; charset=utf-8")
                return
            if path == "/logout":
                self._redirect("/login", clear=True)
                return
            request_id, _, verb = path.removeprefix("/requests/").rpartition("/")
            act = self._actions().get(verb)
            if not path.startswith("/requests/") or act is None:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
                return
            done = act(user, unquote(request_id), form)
            log.info(
                "console action",
                extra={"request_id": request_id, "stage": "console", "action": verb},
            )
            where = f"/requests/{quote(unquote(request_id))}"
            self._redirect(f"{where}?m={quote(done.message)}&ok={int(done.applied)}")
        except Exception:
            log.exception("console action failed: %s", path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain")

    # -- pages -------------------------------------------------------------------
    def _home(self, user: User, query: dict[str, str]) -> None:
        console = self.server.console
        open_ = console.ledger.open_requests()
        calendar: dict[str, list[Any]] = {}
        for r in open_:
            calendar.setdefault(str(statements.day(r.deadline_at, r.regulation)), []).append(r)
        self._page(
            "home.html.j2",
            user,
            query,
            held=[r for r in open_ if r.status == RequestStatus.HELD],
            calendar=list(calendar.items()),
            day=lambda r: str(statements.day(r.deadline_at, r.regulation)),
        )

    def _request(self, user: User, request_id: str, query: dict[str, str]) -> None:
        console = self.server.console
        row = console.ledger.request(request_id)
        if row is None:
            self._send(HTTPStatus.NOT_FOUND, b"no such request\n", "text/plain; charset=utf-8")
            return
        policy = rules.policy_for(row.regulation)
        stored = console.ledger.response(request_id)
        self._page(
            "request.html.j2",
            user,
            query,
            row=row,
            deadline=str(statements.when(as_utc(row.deadline_at), row.regulation)),
            parts=console.ledger.refused_parts(row),
            open=row.completed_at is None,
            grounds=sorted(policy.refusal_codes.items()),
            systems=console.systems,
            can_extend=policy.extension is not None and not row.extensions,
            notice=console.notice(request_id),
            letter=bool(stored and stored.body.get("letter")),
        )

    def _letter(self, request_id: str) -> None:
        storage = open_package_storage(self.server.console.settings)
        letter = read_package(storage, request_id)["letter.html"]
        self._send(HTTPStatus.OK, letter, "text/html; charset=utf-8", csp=LETTER_CSP)

    # -- actions -----------------------------------------------------------------
    def _actions(self) -> dict[str, Callable[[User, str, dict[str, str]], Outcome]]:
        return {"release": self._release, "refuse": self._refuse, "extend": self._extend}

    def _release(self, user: User, request_id: str, form: dict[str, str]) -> Outcome:
        c = self.server.console
        return actions.release(c.settings, c.bootstrap, c.ledger, request_id, user.key_id, form)

    def _refuse(self, user: User, request_id: str, form: dict[str, str]) -> Outcome:
        fields = [f.strip() for f in form.get("fields", "").split(",") if f.strip()]
        return self._decide(
            user,
            DecisionEvent(
                request_id=request_id,
                decision="refusal",
                ground=form.get("ground") or None,
                reason=form.get("reason", ""),
                decided_by=user.name,
                system=form.get("system") or None,
                fields=fields,
            ),
        )

    def _extend(self, user: User, request_id: str, form: dict[str, str]) -> Outcome:
        return self._decide(
            user,
            DecisionEvent(
                request_id=request_id,
                decision="extension",
                reason=form.get("reason", ""),
                decided_by=user.name,
            ),
        )

    def _decide(self, user: User, event: DecisionEvent) -> Outcome:
        c = self.server.console
        return actions.decision(c.settings, c.bootstrap, event, user.key_id)

    def _login(self, form: dict[str, str]) -> None:
        console = self.server.console
        user = authenticate(console.users, form.get("user", ""), form.get("password", ""))
        if user is None:
            log.warning("console login failed", extra={"stage": "console"})
            self._page("login.html.j2", None, {"m": "Wrong user or password.", "ok": "0"})
            return
        log.info("console login", extra={"stage": "console", "user": user.name})
        self._redirect("/", token=console.sessions.issue(user.name))

    # -- plumbing ----------------------------------------------------------------
    def _path(self) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        return parts.path, query

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FORM:
            raise ValueError("form too large")
        raw = self.rfile.read(length).decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def _token(self) -> str | None:
        jar = SimpleCookie(self.headers.get("Cookie") or "")
        morsel = jar.get(COOKIE)
        return morsel.value if morsel else None

    def _user(self) -> User | None:
        return self.server.console.user(self._token())

    def _page(
        self, name: str, user: User | None, query: dict[str, str] | None = None, **values: Any
    ) -> None:
        query = query or {}
        token = self._token() or ""
        html = (
            templates("services.console")
            .get_template(name)
            .render(
                user=user,
                csrf=self.server.console.sessions.csrf(token) if user else "",
                message=query.get("m"),
                ok=query.get("ok") == "1",
                needs=lambda code: reasons.hold(code).en if code else "",
                **values,
            )
        )
        self._send(HTTPStatus.OK, html.encode(), "text/html; charset=utf-8")

    def _redirect(self, where: str, token: str | None = None, clear: bool = False) -> None:
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", where)
        if token is not None or clear:
            age = 0 if clear else LIFETIME_S
            self.send_header(
                "Set-Cookie",
                f"{COOKIE}={token or ''}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}",
            )
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        csp: str | None = None,
        cache: str | None = None,
    ) -> None:
        given = {"Content-Security-Policy": csp, "Cache-Control": cache}
        send(self, status, body, content_type, {k: given.get(k) or v for k, v in HEADERS.items()})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("console: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], console: Console) -> None:
        self.console = console
        super().__init__(addr, _Handler)


class ConsoleServer(Background):
    """The console, served from a daemon thread: ``ConsoleServer.start(settings, ...)``."""

    @classmethod
    def start(
        cls, settings: Settings, bootstrap: str, port: int = 0, host: str = "127.0.0.1"
    ) -> ConsoleServer:
        """Listen on ``host:port`` (0, or a taken port: any free one) and write the URL to
        ``<DSR_HOME>/run/console.url``."""
        console = Console(settings, bootstrap)
        server = bind(lambda addr: _Server(addr, console), host, port, "console")
        started = cls(server, "console", console.ledger.close)
        run = settings.home / "run"
        run.mkdir(parents=True, exist_ok=True)
        (run / "console.url").write_text(started.url + "\n")
        return started
