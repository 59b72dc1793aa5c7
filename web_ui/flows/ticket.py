"""Flow B, queue ticket: pick a service area -> a number, people ahead, printed slip."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint

from web_ui.kiosk import guard, screen

logger = logging.getLogger(__name__)
bp = Blueprint("ticket", __name__, url_prefix="/b")


@bp.get("/")
@guard("ticket")
def start() -> Any:
    return screen("unavailable.html", flow="ticket", step=1)
