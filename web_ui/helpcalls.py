"""Calls for staff: every "staff are coming" path opens one call, which the technician/staff
screen lists and a signed-in member of staff answers; the citizen's waiting screen polls it.

A call is opened either here (the Help screen's "Gọi nhân viên", holding Cancel 5 s) or by a
`help.requested` event another part posts on the bus (the identity step: face failures, consent
declined, a child's card, a chip problem; a certification request the officer sends to staff).
Each posts exactly one `help.requested` (screen and reason code, never personal data), which
the daemon forwards to central (edge/app.py FLEET_EVENTS); answering posts `help.answered`, a
citizen's cancel `help.cancelled`. Calls live in RAM, as the citizens' sessions do.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, request, session

from edge.events import Event, EventBus
from edge.store.staff import actor_class, record

KEEP = 50  # closed calls kept for the screen (the newest)
SESSION_CALL = "help_call"  # the citizen's open call (its id)
LAST_SCREEN = "last_screen"  # the path of the last screen shown, for Help's way back
# Screens Help never goes back to: itself, the start, the technician screen.
NOT_BACK = ("home.help_screen", "home.index")
REASONS = ("help_button", "long_press")  # what the web UI opens; other parts bring their own


@dataclass
class Call:
    id: str
    source: str  # "ui", "identity", "certify"
    screen: str  # the endpoint the citizen was on (body data-screen)
    reason: str  # a reason code: help_button, long_press, consent_declined, face_failures ...
    opened_at: float
    state: str = "open"  # open | answered | cancelled
    closed_at: float | None = None
    claimed: bool = False  # a citizen's session holds it
    told: bool = False  # the citizen's screen said "staff answered"

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "screen": self.screen,
            "reason": self.reason,
            "state": self.state,
            "ago_s": round(now - self.opened_at),
        }


class HelpDesk:
    """The open and recent calls of this kiosk (thread-safe: views and the bus dispatcher)."""

    def __init__(self, bus: EventBus | None, *, clock: Callable[[], float] = time.time) -> None:
        self.bus = bus
        self.clock = clock
        self._calls: dict[str, Call] = {}
        self._lock = threading.Lock()
        if bus is not None:
            bus.subscribe("help.requested", self.on_event)

    def on_event(self, event: Event) -> None:
        """A call another part opened (the identity step, a certification request)."""
        if event.kind != "help.requested" or "call" in event.detail:
            return  # opened here: already registered
        detail = event.detail
        self._add(
            Call(
                id=f"e{event.id}",
                source=event.source,
                screen=str(detail.get("screen", "")),
                reason=str(detail.get("reason", "")),
                opened_at=event.at,
            )
        )

    def call(self, *, screen: str, reason: str) -> Call:
        """A citizen asks for staff on the screen: one call, one help.requested event."""
        found = Call(secrets.token_hex(6), "ui", screen, reason, self.clock())
        self._add(found)
        self._post("help.requested", found, {})
        return found

    def get(self, call_id: Any) -> Call | None:
        with self._lock:
            return self._calls.get(call_id) if isinstance(call_id, str) else None

    def calls(self) -> list[dict[str, Any]]:
        """Open calls first (oldest first), then the closed ones (newest first)."""
        now = self.clock()
        with self._lock:
            calls = list(self._calls.values())
        open_ = sorted((c for c in calls if c.state == "open"), key=lambda c: c.opened_at)
        done = sorted((c for c in calls if c.state != "open"), key=lambda c: -c.opened_at)
        return [c.as_dict(now) for c in open_ + done]

    def claim(self, source: str) -> Call | None:
        """The newest open call from `source` no session holds yet (one kiosk, one citizen)."""
        with self._lock:
            free = [c for c in self._calls.values() if c.source == source and c.state == "open"]
            free = [c for c in free if not c.claimed]
            if not free:
                return None
            found = max(free, key=lambda c: c.opened_at)
            found.claimed = True
            return found

    def answer(self, call_id: str, *, actor: str) -> Call | None:
        """A member of staff answered: help.answered (never their name: the audit has it)."""
        found = self._close(call_id, "answered")
        if found is not None:
            waited = round(self.clock() - found.opened_at, 1)
            self._post("help.answered", found, {"waited_s": waited, "by": actor_class(actor)})
        return found

    def cancel(self, call_id: Any) -> Call | None:
        """The citizen gave up waiting (Cancel, back to the start, the call's own cancel)."""
        found = self._close(call_id, "cancelled")
        if found is not None:
            self._post("help.cancelled", found, {})
        return found

    def _close(self, call_id: Any, state: str) -> Call | None:
        with self._lock:
            found = self._calls.get(call_id) if isinstance(call_id, str) else None
            if found is None or found.state != "open":
                return None
            found.state, found.closed_at = state, self.clock()
            return found

    def _add(self, call: Call) -> None:
        with self._lock:
            self._calls[call.id] = call
            closed = sorted(
                (c for c in self._calls.values() if c.state != "open"), key=lambda c: c.opened_at
            )
            for old in closed[: max(0, len(closed) - KEEP)]:
                del self._calls[old.id]

    def _post(self, kind: str, call: Call, extra: dict[str, Any]) -> None:
        if self.bus is None:
            return
        detail = {"severity": "info", "call": call.id, "screen": call.screen, "reason": call.reason}
        self.bus.post(Event(kind, call.source, {**detail, **extra}))


def desk() -> HelpDesk:
    return current_app.extensions["kiosk_help"]


def session_call() -> Call | None:
    """The citizen's call, open or answered (None: none, or it was cancelled)."""
    found = desk().get(session.get(SESSION_CALL))
    return found if found is not None and found.state != "cancelled" else None


def waiting() -> bool:
    """Staff are called and have not answered: the screen must not idle-wipe."""
    found = session_call()
    return found is not None and found.state == "open"


def cancel_session_call() -> None:
    """The citizen's session ends (Cancel, the start screen, the idle timeout): its call too."""
    call_id = session.pop(SESSION_CALL, None)
    if call_id is not None:
        desk().cancel(call_id)


def audit(actor: str, action: str, *, subject: str = "", kind: str = "") -> None:
    """One audit row (edge/store/staff.py) for what a signed-in member of staff did."""
    store = current_app.extensions["kiosk"].store
    if store is None:
        raise RuntimeError("no store: staff actions cannot be audited")
    with store.transaction() as conn:
        record(conn, at=time.time(), actor=actor, action=action, subject=subject, kind=kind)


def init_app(app: Flask, bus: EventBus | None) -> None:
    app.extensions["kiosk_help"] = HelpDesk(bus)

    @app.after_request
    def remember_screen(response: Any) -> Any:
        """The last citizen screen shown (its path), where Help's "Quay lại" returns."""
        from web_ui.kiosk import SCREEN_BLUEPRINTS

        if (
            request.method == "GET"
            and response.status_code == 200
            and request.blueprint in SCREEN_BLUEPRINTS - {"technician"}
            and request.endpoint not in NOT_BACK
            and session.get(LAST_SCREEN) != request.path
        ):
            session[LAST_SCREEN] = request.path
        return response
