"""Flow D, procedure guide: accent-insensitive search -> papers, fee, time; print a checklist."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint

from web_ui.kiosk import guard, screen

logger = logging.getLogger(__name__)
bp = Blueprint("guide", __name__, url_prefix="/d")


@bp.get("/")
@guard("guide")
def start() -> Any:
    return screen("unavailable.html", flow="guide", step=1)
