"""A camera that plays image files: one file, or a folder played in name order."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from edge.errors import HardwareUnavailable
from edge.ports.camera import Camera

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


class FilesCamera(Camera):
    """Scenes for simulation and tests; "unplugged" when the path disappears."""

    kind = "files"

    def __init__(self, path: Path, *, loop: bool = True) -> None:
        self.path = path
        self.loop = loop
        self._files: list[Path] = []
        self._index = 0
        self._opened = False

    def open(self) -> None:
        self._files = self._scan()
        self._index = 0
        self._opened = True

    def read(self) -> np.ndarray:
        if not self._opened:
            raise HardwareUnavailable("camera is not open")
        if self._index >= len(self._files):
            if not self.loop:
                raise HardwareUnavailable(f"no more frames in {self.path}")
            self._files = self._scan()  # pick up scenes added or removed meanwhile
            self._index = 0
        path = self._files[self._index]
        self._index += 1
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            if not self.path.exists():  # the whole source went away, not one bad file
                raise HardwareUnavailable(f"camera source {self.path} is not there")
            raise HardwareUnavailable(f"cannot read frame {path.name} (missing or not an image)")
        return frame

    def close(self) -> None:
        self._opened = False
        self._files = []

    def describe(self) -> str:
        return f"files:{self.path}"

    def _scan(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            raise HardwareUnavailable(f"camera source {self.path} is not there")
        files = sorted(
            p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not files:
            raise HardwareUnavailable(f"camera source {self.path} has no images")
        return files
