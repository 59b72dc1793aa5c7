"""A camera read through OpenCV's VideoCapture: a USB webcam on a PC, or a video file."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from edge.errors import HardwareUnavailable
from edge.ports.camera import Camera

logger = logging.getLogger(__name__)


class OpenCVCamera(Camera):
    kind = "opencv"

    def __init__(self, device: int | str, *, width: int, height: int, fps: float) -> None:
        self.device = device
        self.width = width
        self.height = height
        self.fps = fps
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        capture = cv2.VideoCapture(self.device)
        if not capture.isOpened():
            capture.release()
            raise HardwareUnavailable(f"no video device or file at {self.device!r}")
        if isinstance(self.device, int):
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            capture.set(cv2.CAP_PROP_FPS, self.fps)
        self._capture = capture

    def read(self) -> np.ndarray:
        if self._capture is None:
            raise HardwareUnavailable("camera is not open")
        ok, frame = self._capture.read()
        if not ok or frame is None:
            raise HardwareUnavailable(f"camera {self.device!r} gave no frame (unplugged?)")
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def describe(self) -> str:
        return f"opencv:{self.device}"
