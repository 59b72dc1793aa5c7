"""Event types and the thread-safe queue between hardware callbacks and the daemon loop."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)

_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened; callbacks on other threads only build and post these."""

    kind: str  # e.g. "button.pressed", "camera.lost", "tamper.opened"
    source: str = ""  # which part: "ok", "cancel", "camera", ...
    detail: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    id: int = field(default_factory=lambda: next(_ids))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "source": self.source,
            "at": self.at,
            **self.detail,
        }


Handler = Callable[[Event], None]


class Poster(Protocol):
    """What a part that only reports needs of the bus (EventBus, or a stand-in that drops)."""

    def post(self, event: Event) -> None: ...


class EventBus:
    """Callbacks post; one dispatcher thread calls the subscribers in order."""

    def __init__(self, *, history: int = 100) -> None:
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._handlers: list[tuple[str, Handler]] = []
        self._recent: deque[Event] = deque(maxlen=history)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def subscribe(self, prefix: str, handler: Handler) -> None:
        """Call handler for every event whose kind starts with prefix ("" for all)."""
        self._handlers.append((prefix, handler))

    def post(self, event: Event) -> None:
        self._queue.put(event)

    def recent(self, prefix: str = "") -> list[Event]:
        with self._lock:
            return [e for e in self._recent if e.kind.startswith(prefix)]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="event-bus", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def drain(self, timeout: float = 1.0) -> None:
        """Wait until everything posted so far has been dispatched (tests, orderly stop)."""
        done = threading.Event()
        self._queue.put(Event("bus.drain", detail={"_done": done}))
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            if event.kind == "bus.drain":
                event.detail["_done"].set()
                continue
            with self._lock:
                self._recent.append(event)
            for prefix, handler in self._handlers:
                if event.kind.startswith(prefix):
                    try:
                        handler(event)
                    except Exception:
                        # One broken handler must not stop buttons reaching the others.
                        logger.exception("event handler failed", extra={"event": event.kind})
