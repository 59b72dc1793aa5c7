"""Flow C, dossier status: scan the receipt QR or type the code -> status and timeline."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint

from web_ui.kiosk import guard, screen

logger = logging.getLogger(__name__)
bp = Blueprint("dossier", __name__, url_prefix="/c")


@bp.get("/")
@guard("dossier")
def start() -> Any:
    return screen("unavailable.html", flow="dossier", step=1)
