"""The certifier's workstation (officers decide certification requests) and the public
verification page /v/<code>: a Flask app factory; the Certifier and the store are handed in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from flask_wtf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from fleet.certify.accounts import Accounts, Sessions
from fleet.certify.web.views import FILTERS, desk, public
from fleet.store import FleetStore
from protocol.files import secret_key

csrf = CSRFProtect()


@dataclass(frozen=True)
class DeskConfig:
    """The workstation's web settings (the `certify` section's web part when it lands)."""

    secret_key_file: Path = Path("certify-secret.key")
    cookie_secure: bool = True  # false only for plain HTTP on the loopback (tests)
    proxy_hops: int = 0  # TLS proxies in front whose X-Forwarded-For/-Proto are trusted
    idle_minutes: int = 15  # a session (and the token PIN it holds) ends this long idle
    session_hours: int = 10
    lockout_s: float = 900.0  # 5 failed logins lock an account this long
    address_attempts: int = 30  # logins from one address per lockout_s
    queue_refresh_s: int = 15
    zone: str = "Asia/Ho_Chi_Minh"  # dates shown in the centre's local time


def create_app(
    certifier: Any, store: FleetStore, config: DeskConfig, *, testing: bool = False
) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key(config.secret_key_file),
        SESSION_COOKIE_NAME="desk",
        SESSION_COOKIE_SECURE=config.cookie_secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=config.session_hours),
        WTF_CSRF_TIME_LIMIT=None,  # bounded by the session itself
        TESTING=testing,
    )
    if config.proxy_hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=config.proxy_hops, x_proto=config.proxy_hops
        )
    app.extensions["certify_desk"] = Desk(
        certifier=certifier,
        store=store,
        config=config,
        accounts=Accounts(
            store, lockout_s=config.lockout_s, address_attempts=config.address_attempts
        ),
        sessions=Sessions(idle_s=config.idle_minutes * 60, session_s=config.session_hours * 3600),
    )
    csrf.init_app(app)
    app.register_blueprint(desk)
    app.register_blueprint(public)
    app.jinja_env.filters.update(FILTERS)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


@dataclass(frozen=True)
class Desk:
    """What the views share: the Certifier, the store, accounts and in-memory sessions."""

    certifier: Any
    store: FleetStore
    config: DeskConfig
    accounts: Accounts
    sessions: Sessions


__all__ = ["Desk", "DeskConfig", "create_app"]
