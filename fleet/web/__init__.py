"""The console's web dashboard (Flask app factory; the Console is handed in)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import Flask, Response, request
from flask_wtf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from fleet.alerts import LABELS, RULES
from fleet.console import Console
from fleet.web import bank
from fleet.web.auth import auth
from fleet.web.filters import FILTERS
from fleet.web.views import views
from protocol.errors import ConfigError
from protocol.files import secret_key

csrf = CSRFProtect()


def create_app(console: Console, *, testing: bool = False) -> Flask:
    app = Flask(__name__)
    web = console.config.web
    app.config.update(
        SECRET_KEY=secret_key(web.secret_key_file),
        SESSION_COOKIE_SECURE=web.cookie_secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(minutes=web.session_minutes),
        WTF_CSRF_TIME_LIMIT=None,  # the session's own lifetime bounds the token
        TESTING=testing,
        METRICS_TOKEN=_metrics_token(web.metrics_token_file),
    )
    if web.proxy_hops:
        # The client's address (login throttling) and scheme as the TLS proxy saw them.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=web.proxy_hops, x_proto=web.proxy_hops
        )
    app.extensions["fleet_console"] = console
    csrf.init_app(app)
    app.register_blueprint(auth)
    app.register_blueprint(views)
    bank.register(app, csrf)  # payOS's webhook: no login, no CSRF, its own signature
    app.jinja_env.filters.update(FILTERS)
    app.jinja_env.globals.update(RULES=RULES, RULE_LABELS=LABELS)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "static":
            # Pages show fleet state and operators' names: never kept by a browser or proxy.
            response.headers["Cache-Control"] = "no-store"
        return response

    return app


def _metrics_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"web.metrics_token_file: cannot read {path}: {err}") from err
    if not token:
        raise ConfigError(f"web.metrics_token_file: {path} is empty")
    return token
