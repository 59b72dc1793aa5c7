"""Flow E, verify a copy: scan its QR -> valid / not valid / revoked."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint

from web_ui.kiosk import guard, screen

logger = logging.getLogger(__name__)
bp = Blueprint("verify", __name__, url_prefix="/e")


@bp.get("/")
@guard("verify")
def start() -> Any:
    return screen("unavailable.html", flow="verify", step=1)
