"""Flow F, results by post: a dossier or copy -> delivery address -> sent to central."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint

from web_ui.kiosk import guard, screen

logger = logging.getLogger(__name__)
bp = Blueprint("post", __name__, url_prefix="/f")


@bp.get("/")
@guard("post")
def start() -> Any:
    return screen("unavailable.html", flow="post", step=1)
