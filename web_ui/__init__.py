"""The kiosk's local web UI: a Flask app factory, configured and given services by the caller."""

from __future__ import annotations

from typing import Any

from flask import Flask

from web_ui import api, pages


def create_app(*, services: Any, test_config: dict[str, Any] | None = None) -> Flask:
    """services is the daemon (edge.app.App): status(), selftest(), printer, sim_pins, config."""
    app = Flask(__name__)
    app.config.update(JSON_AS_ASCII=False, MAX_CONTENT_LENGTH=64 * 1024)
    app.json.ensure_ascii = False
    if test_config:
        app.config.update(test_config)
    app.extensions["kiosk"] = services
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    api.register_error_handlers(app)
    return app
