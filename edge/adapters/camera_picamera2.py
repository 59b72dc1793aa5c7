"""The Raspberry Pi camera (Camera Module 3) through picamera2, imported only here."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edge.errors import HardwareUnavailable
from edge.ports.camera import Camera

logger = logging.getLogger(__name__)


def is_usable() -> tuple[bool, str]:
    """picamera2 needs Raspberry Pi OS's libcamera bindings; say why not when absent."""
    try:
        import picamera2  # noqa: F401
    except ImportError as err:
        return False, f"picamera2 is not importable here ({err}); install python3-picamera2"
    return True, ""


class Picamera2Camera(Camera):
    kind = "picamera2"

    def __init__(self, *, width: int, height: int, fps: float) -> None:
        self.width = width
        self.height = height
        self.fps = fps
        self._camera: Any = None

    def open(self) -> None:
        usable, why = is_usable()
        if not usable:
            raise HardwareUnavailable(why)
        from picamera2 import Picamera2

        self.close()
        try:
            camera = Picamera2()
            config = camera.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls={"FrameRate": self.fps},
            )
            camera.configure(config)
            camera.start()
        except (RuntimeError, IndexError, OSError) as err:
            # IndexError: no camera attached (Picamera2's camera list is empty).
            raise HardwareUnavailable(f"Pi camera not available: {err}") from err
        self._camera = camera

    def read(self) -> np.ndarray:
        if self._camera is None:
            raise HardwareUnavailable("camera is not open")
        try:
            # picamera2's "RGB888" is laid out B, G, R per pixel: what OpenCV expects.
            return self._camera.capture_array("main")
        except (RuntimeError, OSError) as err:
            raise HardwareUnavailable(f"Pi camera stopped giving frames: {err}") from err

    def close(self) -> None:
        if self._camera is not None:
            try:
                self._camera.stop()
                self._camera.close()
            except Exception:
                logger.warning("Pi camera did not close cleanly", exc_info=True)
            self._camera = None
