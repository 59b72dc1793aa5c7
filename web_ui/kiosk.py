"""What every screen shares: the daemon, the flows and the parts they need, the guard that
shows the out-of-service screen, and rendering with the step indicator."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app, render_template, session
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from web_ui.ports import Kiosk
from web_ui.visits import KEEP_ON_FLOW_END, wipe

logger = logging.getLogger(__name__)

# The blueprints of the screens: only they open a session, and a language switch returns only
# to one of them (never /api, /live, /static or the developer panel).
SCREEN_BLUEPRINTS = frozenset(
    {"home", "ecopy", "ticket", "dossier", "guide", "verify", "post", "technician"}
)


@dataclass(frozen=True)
class Flow:
    key: str
    endpoint: str  # first screen
    title: Any  # lazy string
    hint: Any
    icon: str  # name of an inline SVG in templates/icons.html
    needs: tuple[str, ...]  # parts without which the flow cannot work: "camera"
    services: tuple[str, ...]  # names in SERVICES the flow calls (None: that part is not built)
    steps: tuple[Any, ...] = ()


FLOWS: dict[str, Flow] = {
    f.key: f
    for f in (
        Flow(
            "ecopy",
            "ecopy.start",
            _l("Certified e-copy"),
            _l("Copy an original paper, certified electronically"),
            "copy",
            ("camera",),
            ("copies",),
            (_l("Identify"), _l("Face"), _l("Pages"), _l("Check"), _l("Fee"), _l("Receipt")),
        ),
        Flow(
            "ticket",
            "ticket.start",
            _l("Queue ticket"),
            _l("Take a number for a service counter"),
            "ticket",
            (),
            ("tickets",),
            (_l("Service area"), _l("Ticket")),
        ),
        Flow(
            "dossier",
            "dossier.start",
            _l("Dossier status"),
            _l("See how far your dossier has come"),
            "dossier",
            (),
            ("dossiers",),
            (_l("Dossier code"), _l("Status")),
        ),
        Flow(
            "guide",
            "guide.start",
            _l("Procedure guide"),
            _l("Which papers a procedure needs"),
            "guide",
            (),
            ("catalog",),
            (_l("Search"), _l("Procedure")),
        ),
        Flow(
            "verify",
            "verify.start",
            _l("Verify a copy"),
            _l("Check a certified copy by its QR code"),
            "verify",
            ("camera",),
            ("copies",),
            (_l("Scan the QR"), _l("Result")),
        ),
        Flow(
            "post",
            "post.start",
            _l("Results by post"),
            _l("Have the result sent to your address"),
            "post",
            (),
            ("post",),
            (_l("Record"), _l("Address"), _l("Confirm")),
        ),
    )
}

PART_NAMES = {"camera": _l("the camera"), "printer": _l("the printer")}


def kiosk() -> Kiosk:
    return current_app.extensions["kiosk"]


def ui_config() -> Any:
    return kiosk().config.ui


def part_ok(name: str) -> bool:
    k = kiosk()
    if name == "camera":
        return k.camera is not None and k.camera.state().ok
    if name == "printer":
        try:
            return k.printer is not None and k.printer.status().can_print
        except Exception:
            logger.warning("printer status failed", exc_info=True)
            return False
    raise ValueError(name)


# The citizen services a flow can need (Flow.services), by name.
SERVICES: dict[str, Callable[[Kiosk], Any]] = {
    "copies": lambda k: k.copies,
    "tickets": lambda k: k.tickets,
    "dossiers": lambda k: k.dossiers,
    "catalog": lambda k: k.catalog,
    "post": lambda k: k.post,
}


def service(name: str) -> Any:
    """One of the daemon's citizen services (SERVICES), or None when that part is not running."""
    return SERVICES[name](kiosk())


def service_ready(name: str) -> bool:
    part = service(name)
    # CopyService says why it cannot sign (no identity); the others are there or not.
    return part is not None and getattr(part, "unavailable", None) is None


def flow_state(flow: Flow) -> tuple[str, Any]:
    """("ok", None), ("locked", None), ("down", part label) or ("unavailable", None)."""
    if kiosk().locked:
        return "locked", None
    for name in flow.services:
        if not service_ready(name):
            return "unavailable", None
    for part in flow.needs:
        if not part_ok(part):
            return "down", PART_NAMES[part]
    return "ok", None


def out_of_service(state: str, flow: Flow | None, part: Any = None, status: int = 503) -> Any:
    if state == "locked":
        logger.info("screen refused: kiosk locked")
    else:
        logger.warning(
            "flow not available", extra={"flow": flow.key if flow else None, "why": state}
        )
    return render_template(
        "out_of_service.html", why=state, flow=flow, part=part, locked_screen=state == "locked"
    ), status


def guard(flow_key: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The view runs only while its flow can work; otherwise the out-of-service screen."""
    flow = FLOWS[flow_key]

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            state, part = flow_state(flow)
            if state != "ok":
                return out_of_service(state, flow, part)
            return view(*args, **kwargs)

        return guarded

    return wrap


def screen(template: str, *, flow: str | None = None, step: int | None = None, **ctx: Any) -> str:
    """Render a citizen screen with its flow's step indicator (step counts from 1)."""
    f = FLOWS.get(flow) if flow else None
    return render_template(template, flow=f, step=step, **ctx)


def end_flow(flow_key: str) -> None:
    """The flow is over: every value the citizen gave and every live object go."""
    wipe(session, keep=KEEP_ON_FLOW_END)
    session.modified = True
    logger.info("flow ended", extra={"flow": flow_key})


def scan_qr(no_qr: str) -> tuple[str | None, dict[str, str]]:
    """One look for a QR code in the camera's latest frame: (its text, {}) or (None, the
    message the scan screen shows: waiting for the camera, or no_qr, where to put the paper)."""
    from edge.vision.qr import decode_qr

    frame = kiosk().camera.latest()
    if frame is None:
        return None, {"message": _("Waiting for the camera…")}
    codes = decode_qr(frame, thorough=False)
    if not codes:
        return None, {"message": no_qr}
    return codes[0].text, {}
