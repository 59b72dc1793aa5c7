"""The kiosk's local web UI: a Flask app factory, configured and given services by the caller."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from edge.localapi import new_token
from web_ui import api, guard, helpcalls, i18n, live, pages, rating, technician
from web_ui.flows import dossier, ecopy, guide, home, post, ticket, verify
from web_ui.kiosk import SCREEN_BLUEPRINTS
from web_ui.ports import Kiosk
from web_ui.visits import VisitStore

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


def create_app(*, services: Kiosk, test_config: dict[str, Any] | None = None) -> Flask:
    """services is the daemon (edge.app.App) behind its façade, web_ui.ports.Kiosk."""
    app = Flask(__name__)
    ui = services.config.ui
    app.config.update(
        JSON_AS_ASCII=False,
        MAX_CONTENT_LENGTH=64 * 1024,
        SECRET_KEY=secrets.token_bytes(32),  # per process: sessions live in RAM anyway
        WTF_CSRF_TIME_LIMIT=None,  # the token dies with the session
        WTF_CSRF_HEADERS=["X-CSRFToken"],
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.json.ensure_ascii = False
    if test_config:
        app.config.update(test_config)
    app.extensions["kiosk"] = services
    app.session_interface = VisitStore(idle_s=ui.idle_timeout_s, blueprints=SCREEN_BLUEPRINTS)
    web = services.config.web
    # Before CSRF: Host, other sites, and same origin or the token on /api and /live.
    guard.init_app(app, host=web.host, port=web.port, token=new_token())
    csrf = CSRFProtect(app)
    # No forms and no sessions there: the guard's same-origin-or-token rule stands instead.
    csrf.exempt(api.bp)
    csrf.exempt(live.bp)
    i18n.init_app(app, default=ui.default_language)
    live.init_app(app, services)
    helpcalls.init_app(app, services.bus)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(live.bp)
    app.register_blueprint(home.bp)
    for flow in (ecopy, ticket, dossier, guide, verify, post):
        app.register_blueprint(flow.bp)
    app.register_blueprint(technician.bp)
    app.register_blueprint(rating.bp)  # the one-tap satisfaction rating at a flow's end
    app.jinja_env.globals.update(
        rating_open=rating.rating_open, rating_choices=rating.rating_choices
    )
    api.register_error_handlers(app)
    home.register_error_pages(app)

    @app.context_processor
    def screen_context() -> dict[str, Any]:
        from flask_babel import get_locale

        return {
            "ui": services.config.ui,
            "lang": str(get_locale() or ui.default_language),
            "kiosk_id": services.config.kiosk.id,
            "site": services.config.kiosk.site,
            "kiosk_token": app.config["KIOSK_TOKEN"],
        }

    @app.after_request
    def security_headers(response: Any) -> Any:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"
        return response

    return app
