"""Who may talk to the kiosk's web server: the right Host, no other site, and for calls that
change state on /api and /live the kiosk's own page or a holder of the per-boot token."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from typing import Any

from flask import Flask, abort, current_app, jsonify, render_template, request
from flask_babel import gettext as _

from edge.localapi import TOKEN_HEADER

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MACHINE_PREFIXES = ("/api/", "/live/")  # JSON and feeds, not screens
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """Host header values that name this server: loopback names and the configured address,
    each with the port (a browser leaves out :80 on port 80)."""
    names: set[str] = set(LOOPBACK_NAMES)
    names.add(f"[{host}]" if ":" in host else host)
    hosts = {f"{name}:{port}" for name in names}
    if port == 80:
        hosts |= names
    return frozenset(h.lower() for h in hosts)


def wants_json() -> bool:
    return request.path.startswith(MACHINE_PREFIXES)


def _refuse(status: int, code: str, message: str, reason: str) -> Any:
    logger.warning("request refused: %s", reason, extra={"path": request.path[:80]})
    if wants_json():
        response = jsonify({"error": {"code": code, "message": message}})
    else:
        response = current_app.response_class(
            render_template("error.html", code="refused"), mimetype="text/html"
        )
    response.status_code = status
    abort(response)


def same_origin(origins: Iterable[str]) -> bool:
    """The browser says the call comes from a page of this server."""
    return (
        request.headers.get("Origin", "").lower() in origins
        or request.headers.get("Sec-Fetch-Site", "") == "same-origin"
    )


def has_token() -> bool:
    sent = request.headers.get(TOKEN_HEADER, "")
    expected = current_app.config["KIOSK_TOKEN"]
    return secrets.compare_digest(sent.encode("utf-8", "replace"), expected.encode("ascii"))


def require_caller_proof() -> None:
    """For a call that changes something: the kiosk's own page (same origin) or the token."""
    if not (same_origin(current_app.config["KIOSK_ORIGINS"]) or has_token()):
        _refuse(
            403,
            "token_required",
            _("This call needs the kiosk's own page or the kiosk's token."),
            "state-changing call without same origin or token",
        )


def check_request() -> None:
    """Before every request: a wrong Host (DNS rebinding) or another site's page is refused."""
    config = current_app.config
    host = request.headers.get("Host", "").lower()
    if host not in config["KIOSK_HOSTS"]:
        _refuse(421, "wrong_host", _("This address does not belong to the kiosk."), "wrong Host")
    fetch_site = request.headers.get("Sec-Fetch-Site", "")
    origin = request.headers.get("Origin", "").lower()
    # "null" is what Chromium sends for same-origin calls under Referrer-Policy: no-referrer;
    # it proves nothing either way, Sec-Fetch-Site and the token decide then.
    if fetch_site in ("cross-site", "same-site") or origin not in (
        "",
        "null",
        *config["KIOSK_ORIGINS"],
    ):
        _refuse(403, "cross_origin", _("Requests from other sites are refused."), "other origin")
    if request.method not in SAFE_METHODS and wants_json():
        require_caller_proof()


def init_app(app: Flask, *, host: str, port: int, token: str) -> None:
    """Registers the check first, so it runs before CSRF and every view."""
    hosts = allowed_hosts(host, port)
    app.config["KIOSK_HOSTS"] = hosts
    app.config["KIOSK_ORIGINS"] = frozenset(f"http://{h}" for h in hosts)
    app.config["KIOSK_TOKEN"] = token
    app.before_request(check_request)
