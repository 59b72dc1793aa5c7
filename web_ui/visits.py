"""Server-side sessions: the cookie holds a random id only; what a citizen enters stays in RAM.

One kiosk screen means few sessions; each holds plain values and live objects (the identity
session with its face template, scanned pages). wipe() closes those objects, so face data and
pages die with the session: at the end of a flow, on the idle timeout, or when a session left
alone is swept.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any

from flask import Flask, Request, Response, has_request_context
from flask import request as current_request
from flask.sessions import SessionInterface, SessionMixin

logger = logging.getLogger(__name__)

COOKIE = "kiosk_sid"
KEEP_ON_FLOW_END = ("lang", "csrf_token")


class Visit(dict[str, Any], SessionMixin):
    """A session dict with an id and the time of the citizen's last request. A new one is kept
    (and gets a cookie) only at the end of a request that may open a session."""

    def __init__(self, sid: str, data: dict[str, Any] | None = None, *, new: bool = False) -> None:
        super().__init__(data or {})
        self.sid = sid
        self.last_seen = time.monotonic()
        self.modified = False
        self.permanent = False
        self.new = new


def touch(visit: Visit) -> None:
    """Progress the citizen made without touching the screen (a page captured) counts too."""
    visit.last_seen = time.monotonic()


def close_values(values: dict[str, Any]) -> None:
    for value in list(values.values()):
        close = getattr(value, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                logger.warning("closing a session object failed", exc_info=True)


def wipe(visit: dict[str, Any], *, keep: tuple[str, ...] = ()) -> None:
    """Close live objects (face data, pages) and forget everything except the keys in keep."""
    kept = {k: visit[k] for k in keep if k in visit}
    close_values(visit)
    visit.clear()
    visit.update(kept)


class VisitStore(SessionInterface):
    """Flask SessionInterface keeping every session in this process's memory.

    A request without a known cookie gets a new, unstored session. It is stored (and the cookie
    set) only when the request was for a screen of one of `blueprints`, succeeded and put
    something in the session: /api, /live, /static, the developer panel, unknown paths and
    refused requests never make one. At most `limit` sessions live at once (one screen); past
    that the longest idle is wiped.
    """

    def __init__(
        self,
        *,
        idle_s: float,
        grace_s: float = 5.0,
        blueprints: frozenset[str] = frozenset(),
        limit: int = 64,
    ) -> None:
        self.idle_s = idle_s
        self.grace_s = grace_s  # the page's own countdown acts first; this catches the rest
        self.blueprints = blueprints
        self.limit = limit
        self._visits: dict[str, Visit] = {}
        self._lock = threading.Lock()

    def open_session(self, app: Flask, request: Request) -> Visit:
        self.sweep()
        sid = request.cookies.get(COOKIE, "")
        with self._lock:
            visit = self._visits.get(sid)
            if visit is None:
                return Visit(secrets.token_urlsafe(24), new=True)
            if not request.path.startswith(("/static/", "/live/")) and not request.path.endswith(
                "/poll"
            ):
                visit.last_seen = time.monotonic()  # automatic polls are not the citizen
        return visit

    def _may_open(self, response: Response) -> bool:
        return bool(
            has_request_context()
            and current_request.blueprint in self.blueprints
            and response.status_code < 400
        )

    def save_session(self, app: Flask, session: Visit, response: Response) -> None:  # type: ignore[override]
        if session.new:
            if not session:
                return
            if not self._may_open(response):
                close_values(session)
                return
            with self._lock:
                session.new = False
                self._visits[session.sid] = session
                evicted = self._evict()
            for visit in evicted:
                wipe(visit)
            if evicted:
                logger.warning("too many sessions: %d longest idle wiped", len(evicted))
        response.set_cookie(
            COOKIE,
            session.sid,
            httponly=True,
            samesite="Strict",
            path="/",
        )

    def _evict(self) -> list[Visit]:
        """Called with the lock held: the sessions over the limit, longest idle first."""
        excess = len(self._visits) - self.limit
        if excess <= 0:
            return []
        oldest = sorted(self._visits.values(), key=lambda v: v.last_seen)[:excess]
        for visit in oldest:
            del self._visits[visit.sid]
        return oldest

    def sweep(self) -> None:
        """Sessions idle longer than the timeout (plus a grace for a slow page) are wiped."""
        now = time.monotonic()
        with self._lock:
            stale = [
                v for v in self._visits.values() if now - v.last_seen > self.idle_s + self.grace_s
            ]
            for visit in stale:
                del self._visits[visit.sid]
        for visit in stale:
            wipe(visit)
        if stale:
            logger.info("idle sessions wiped: %d", len(stale))

    def count(self) -> int:
        with self._lock:
            return len(self._visits)
