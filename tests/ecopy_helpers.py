"""Test helpers for the e-copy flow on the kiosk: a certification request's state as the
screens and printouts take it, and a test-only route that hands a client an e-copy session
prepared by the test (so the screens after a step can be driven without walking to it)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from edge.certify.requests import RequestState


def cert_request(
    status: str = "queued",
    *,
    code: str,
    created_at: dt.datetime,
    due_at: dt.datetime,
    pages: int = 1,
    payable_vnd: int = 0,
    channel: str = "kiosk",
) -> RequestState:
    """One original's request (original 1); approved ones carry book number 1."""
    approved = status == "approved"
    return RequestState(
        code=code,
        original=1,
        pages=pages,
        created_at=created_at,
        due_at=due_at,
        payable_vnd=payable_vnd,
        channel=channel,
        status=status,
        position=None,
        wait_min=None,
        reason=None,
        number="1" if approved else None,
        book="01/2026-SCTĐT/BS" if approved else None,
        qr=None,
        printed=False,
    )


def ecopy_session(app: Any, **options: Any) -> Any:
    """A new EcopySession on the in-process kiosk `app`, its identity step not yet done; the
    payment port only cancels. `options` go to EcopySession (wait_s, printer, ...)."""
    from edge.services.consent import ConsentStore
    from edge.services.ecopy import EcopySession
    from edge.services.identify import VerificationSession

    identity = VerificationSession(
        consents=ConsentStore(app.store, app.key, kiosk_id=app.config.kiosk.id),
        verifier=None,
        new_challenge=lambda: None,
    )
    return EcopySession(
        identity,
        copies=app.copies,
        payment=SimpleNamespace(cancel=lambda ref: None),
        bus=app.bus,
        certify=app.certify,
        **options,
    )


def plant_route(flask_app: Any, path: str, prepare: Callable[[], Any]) -> None:
    """A test-only POST `path` that puts prepare()'s e-copy session in the caller's session
    (prepare may read flask.request)."""
    from flask import Blueprint, session

    plant = Blueprint(f"plant{path.replace('/', '_').replace('-', '_')}", __name__)

    @plant.post(path)
    def plant_session() -> str:
        session["ecopy"] = prepare()
        return "ok"

    flask_app.register_blueprint(plant)


def planted_client(flask_app: Any, path: str) -> Any:
    """A browser-like client (cookies, CSRF on) that has posted to the plant route `path`;
    its form token is `client.token`."""
    from tests.web_ui_helpers import LoopbackClient

    flask_app.config["TESTING"] = False
    client = LoopbackClient(flask_app, flask_app.response_class, use_cookies=True)
    page = client.get("/help").get_data(as_text=True)
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found is not None
    token = found.group(1)
    client.environ_base["HTTP_X_CSRFTOKEN"] = token
    assert client.post(path, data={"csrf_token": token}).status_code == 200
    client.token = token  # type: ignore[attr-defined]
    return client
