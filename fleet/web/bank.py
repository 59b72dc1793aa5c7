"""The bank's payment notifications (payOS's webhook): outside the operators' login and CSRF,
the raw body read up to [payments] max_body_bytes, the signature checked by
fleet.payments.PaymentService.notification."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, request

from fleet.web.auth import console

logger = logging.getLogger(__name__)


def payos_webhook() -> Any:
    limit = console().config.payments.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        logger.warning("bank notification too large", extra={"bytes": request.content_length})
        return jsonify(success=False, error="too large"), 413
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        logger.warning("bank notification too large", extra={"bytes": len(body)})
        return jsonify(success=False, error="too large"), 413
    service = getattr(console(), "payments", None)
    if service is None:
        return jsonify(success=False, error="not configured"), 503
    answer = service.notification(body)
    return jsonify(answer.body), answer.status


def register(app: Flask, csrf: Any) -> None:
    """At [payments] webhook_path (default /bank/payos), POST only."""
    path = app.extensions["fleet_console"].config.payments.webhook_path
    app.add_url_rule(path, "bank.payos", csrf.exempt(payos_webhook), methods=["POST"])
