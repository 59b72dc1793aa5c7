"""The one-tap satisfaction rating at the end of a flow: optional, never in the way.

The end screen of each flow shows three faces (templates/_rating.html). A tap adds one to a
counter of (hour, flow, rating) and nothing else: no session id, ticket or code is kept with
it (edge/services/ratings.py). The answer is 204, so the page stays as it is (rating.js
replaces the faces with a thank-you); a second tap at the same flow end is not counted.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, request, session

from edge.errors import BadInput
from edge.services.ratings import FLOWS, RATINGS, RatingService
from web_ui.kiosk import kiosk

logger = logging.getLogger(__name__)
bp = Blueprint("rating", __name__, url_prefix="/rating")
RATED = "rated"  # session key: the flow rated at this flow end (wiped when the flow ends)


def rating_choices() -> list[tuple[str, str]]:
    """(code, English msgid) of the answers, best first; the template translates."""
    return list(RATINGS.items())


def _ratings() -> RatingService | None:
    services = getattr(kiosk(), "services", None)  # a test double may leave it out
    return services.ratings if services is not None else None


def rating_open(flow: str) -> bool:
    """The faces show at this flow end: a rating service runs and none was given yet."""
    return flow in FLOWS and _ratings() is not None and session.get(RATED) != flow


@bp.post("/<flow>")
def rate(flow: str) -> Any:
    ratings = _ratings()
    if ratings is None:
        return "", 204
    if session.get(RATED) == flow:  # a double tap, or a second rating of the same end
        return "", 204
    try:
        ratings.record(flow, request.form.get("rating", ""))
    except BadInput as err:
        logger.warning("rating refused: %s", type(err).__name__)
        return "", 400
    session[RATED] = flow
    return "", 204
