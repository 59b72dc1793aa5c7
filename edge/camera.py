"""Keeps the camera running: reads frames on its own thread, notices loss, recovers."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from edge.errors import HardwareUnavailable
from edge.events import Event, EventBus
from edge.ports.camera import Camera

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CameraState:
    ok: bool
    state: str  # "starting", "streaming", "lost", "stopped"
    detail: str
    frames: int
    last_frame_at: float | None
    shape: tuple[int, ...] | None


class CameraFeed:
    """The one owner of the camera: callers take the latest frame, never the device."""

    def __init__(
        self,
        camera: Camera,
        *,
        bus: EventBus,
        fps: float,
        retry_s: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        self.camera = camera
        self.bus = bus
        self.interval = 1.0 / fps
        self.retry_min, self.retry_max = retry_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._frame: np.ndarray | None = None
        self._frames = 0
        self._last_at: float | None = None
        self._state = "stopped"
        self._detail = ""
        self._new_frame = threading.Condition(self._lock)

    def start(self) -> None:
        self._stop.clear()
        self._set_state("starting", "")
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.camera.close()
        self._set_state("stopped", "")

    def latest(self) -> np.ndarray | None:
        """The newest frame, or None while the camera is lost."""
        with self._lock:
            return None if self._state != "streaming" else self._frame

    def wait_frame(self, timeout: float) -> np.ndarray | None:
        """Block until a frame newer than now arrives (or timeout)."""
        with self._new_frame:
            seen = self._frames
            self._new_frame.wait_for(lambda: self._frames > seen, timeout)
            return self._frame if self._frames > seen else None

    def state(self) -> CameraState:
        with self._lock:
            return CameraState(
                ok=self._state == "streaming",
                state=self._state,
                detail=self._detail,
                frames=self._frames,
                last_frame_at=self._last_at,
                shape=None if self._frame is None else tuple(self._frame.shape),
            )

    def _set_state(self, state: str, detail: str) -> None:
        with self._lock:
            self._state, self._detail = state, detail

    def _run(self) -> None:
        backoff = self.retry_min
        was_lost = False
        while not self._stop.is_set():
            try:
                self.camera.open()
                while not self._stop.is_set():
                    started = time.monotonic()
                    frame = self.camera.read()
                    with self._new_frame:
                        self._frame = frame
                        self._frames += 1
                        self._last_at = time.time()
                        first = self._state != "streaming"
                        self._state, self._detail = "streaming", self.camera.describe()
                        self._new_frame.notify_all()
                    if first:
                        backoff = self.retry_min
                        if was_lost:
                            logger.info("camera recovered", extra={"camera": self.camera.kind})
                            self.bus.post(Event("camera.recovered", "camera"))
                            was_lost = False
                        else:
                            logger.info("camera streaming", extra={"camera": self.camera.kind})
                    self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
            except Exception as err:
                if isinstance(err, HardwareUnavailable):
                    reason = str(err)
                else:  # a driver bug must not kill the feed for good
                    logger.exception("camera failed unexpectedly")
                    reason = f"unexpected: {err}"
                self.camera.close()
                if not was_lost:
                    logger.warning("camera lost: %s", reason, extra={"camera": self.camera.kind})
                    self.bus.post(Event("camera.lost", "camera", {"reason": reason}))
                    was_lost = True
                self._set_state("lost", reason)
                self._stop.wait(backoff)
                backoff = min(self.retry_max, backoff * 2)
