"""Live feeds to the page: the camera preview as periodic JPEGs and the physical buttons as
server-sent events; and the other way, the screen's words to the loudspeaker (/live/say)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import cv2
from flask import Blueprint, Flask, Response, current_app, request
from flask_babel import get_locale
from flask_babel import gettext as _

from edge.errors import BadInput
from edge.events import Event
from web_ui.bodies import json_object, optional_str
from web_ui.ports import Kiosk

logger = logging.getLogger(__name__)
bp = Blueprint("live", __name__, url_prefix="/live")

PREVIEW_WIDTH = 640
STREAM_S = 20.0  # a stream ends after this; EventSource reconnects with Last-Event-ID
KEEPALIVE_S = 2.0  # the lock state is sent this often (and a dead socket found by the write)
CHECK_S = 0.1  # how often a stream asks waitress whether its page has gone
MAX_STREAMS = 2  # a new stream past this ends the oldest at once (docs/web-ui.md, "No stalls")
STALE_S = 3.0  # a press older than this is not replayed to a page that (re)connects


class ButtonFeed:
    """The last button presses, numbered, for the pages listening (one screen, few listeners).

    Each open event stream holds one of waitress's few worker threads, so the feed counts them:
    at most MAX_STREAMS live at once; a new one past that ends the oldest at once (woken through
    the condition, its number no longer among the open ones), and a stream ends within CHECK_S
    of its page going away (waitress tells, see web_ui/server.py), not at its next write.
    """

    def __init__(self, size: int = 50, *, max_streams: int = MAX_STREAMS) -> None:
        self._events: deque[tuple[int, float, str, str]] = deque(maxlen=size)
        self._seq = 0
        self._cond = threading.Condition()
        self.max_streams = max_streams
        self._streams: list[int] = []  # the open streams, oldest first
        self._opened = 0
        self.superseded = 0  # streams ended because a newer page connected (for the tests)

    def on_event(self, event: Event) -> None:
        if event.kind == "button.pressed":
            action = event.source
        elif event.kind == "button.long_press":
            action = "call_staff"  # holding Cancel calls staff (the page posts /help)
        else:
            return
        with self._cond:
            self._seq += 1
            self._events.append((self._seq, time.monotonic(), "button", action))
            self._cond.notify_all()

    def recent(self, limit: int = 10) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._cond:
            items = list(self._events)[-limit:]
        return [{"button": a, "ago_s": round(now - at, 1)} for _, at, _, a in reversed(items)]

    def last_id(self) -> int:
        with self._cond:
            return self._seq

    def after(
        self, seq: int, timeout: float, stream: int | None = None
    ) -> list[tuple[int, float, str, str]] | None:
        """Presses after seq, waiting up to timeout for one; None when `stream` was ended."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._seq > seq or (stream is not None and stream not in self._streams),
                timeout,
            )
            if stream is not None and stream not in self._streams:
                return None
            return [e for e in self._events if e[0] > seq]

    def open_stream(self) -> int:
        """A page connected: its stream's number. Past max_streams the oldest are ended."""
        with self._cond:
            self._opened += 1
            self._streams.append(self._opened)
            while len(self._streams) > self.max_streams:
                self._streams.pop(0)
                self.superseded += 1
            self._cond.notify_all()
            return self._opened

    def close_stream(self, stream: int) -> None:
        with self._cond:
            if stream in self._streams:
                self._streams.remove(stream)

    def streams(self) -> int:
        """How many event streams are open (each holds a server thread)."""
        with self._cond:
            return len(self._streams)


class Heartbeat:
    """When the kiosk browser's page last said it was alive (for the browser watchdog)."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.path = ""

    def beat(self, path: str) -> None:
        self.last, self.path = time.monotonic(), path

    def as_dict(self) -> dict[str, Any]:
        age = None if self.last is None else round(time.monotonic() - self.last, 1)
        return {"heartbeat_age_s": age, "screen": self.path}


def init_app(app: Flask, services: Kiosk) -> None:
    app.extensions["kiosk_heartbeat"] = Heartbeat()
    feed = ButtonFeed()
    app.extensions["kiosk_buttons"] = feed
    if services.bus is not None:
        services.bus.subscribe("button.", feed.on_event)


@bp.get("/frame.jpg")
def frame() -> Response:
    """The newest camera frame, small, for the preview (the page asks a few times a second)."""
    camera = current_app.extensions["kiosk"].camera
    image = camera.latest() if camera is not None else None
    if image is None:
        return Response(status=204, headers={"Cache-Control": "no-store"})
    h, w = image.shape[:2]
    if w > PREVIEW_WIDTH:
        image = cv2.resize(
            image, (PREVIEW_WIDTH, round(h * PREVIEW_WIDTH / w)), interpolation=cv2.INTER_AREA
        )
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 70])
    if not ok:
        return Response(status=204)
    return Response(data.tobytes(), mimetype="image/jpeg", headers={"Cache-Control": "no-store"})


@bp.get("/events")
def events() -> Response:
    """Button presses as server-sent events, plus the kiosk's lock state on every keep-alive."""
    feed: ButtonFeed = current_app.extensions["kiosk_buttons"]
    kiosk = current_app.extensions["kiosk"]
    last = request.headers.get("Last-Event-ID", "")
    seq = int(last) if last.isdigit() else feed.last_id()
    seq = min(seq, feed.last_id())

    # waitress reads ahead on the connection (channel_request_lookahead) and so can tell that
    # the browser closed it; other servers (the tests' Flask client) cannot: never gone.
    gone = request.environ.get("waitress.client_disconnected", lambda: False)

    def stream() -> Iterator[str]:
        nonlocal seq
        number = feed.open_stream()
        try:
            yield "retry: 300\n\n"
            ends = time.monotonic() + STREAM_S
            state_at = 0.0
            while time.monotonic() < ends and not gone():
                if time.monotonic() >= state_at:
                    state_at = time.monotonic() + KEEPALIVE_S
                    yield f"event: state\ndata: {json.dumps({'locked': bool(kiosk.locked)})}\n\n"
                presses = feed.after(seq, CHECK_S, number)
                if presses is None:
                    return  # a newer page took over: this one's worker thread is free again
                for event_id, at, kind, action in presses:
                    seq = event_id
                    if time.monotonic() - at > STALE_S:
                        continue
                    data = json.dumps({"button": action})
                    yield f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n"
        finally:
            feed.close_stream(number)

    return Response(
        stream(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@bp.post("/heartbeat")
def heartbeat() -> Response:
    """The page beats every 10 s; `GET /api/browser` tells the watchdog how long ago."""
    path = optional_str(json_object(), "screen", max_len=200)
    screen_path = path.split("?")[0] if path.startswith("/") and path.isprintable() else ""
    current_app.extensions["kiosk_heartbeat"].beat(screen_path[:80])
    return Response(status=204)


SAY_MAX_CHARS = 600  # edge.ports.speech.MAX_CHARS: one screen's instruction and its errors


@bp.post("/say")
def say() -> Response:
    """Speak the screen's words (speech.js) in the session's language, cutting off what is being
    said; with "queue": true, after it (the next part of a screen's text longer than 600
    characters). The kiosk's page or the token only (web_ui/guard.py); the text is never logged:
    it can hold what the screen shows. An empty text only silences."""
    body = json_object()
    text = body.get("text", "")
    queue = body.get("queue", False) is True
    if not isinstance(text, str) or len(text) > SAY_MAX_CHARS:
        raise BadInput(_("text must be text of at most %(n)d characters.", n=SAY_MAX_CHARS))
    speech = current_app.extensions["kiosk"].speech
    if speech is None:
        return Response(status=204)
    if text.strip():
        speech.say(text, "en" if str(get_locale()) == "en" else "vi", queue=queue)
    else:
        speech.stop()
    return Response(status=204)
