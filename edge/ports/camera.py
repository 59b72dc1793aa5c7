"""The camera port: something that gives BGR frames as numpy arrays."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Camera(ABC):
    """A source of frames. Adapters raise HardwareUnavailable when the source is gone."""

    #: Short name for logs and status ("files", "opencv", "picamera2").
    kind: str = "camera"

    @abstractmethod
    def open(self) -> None:
        """Acquire the device; raise HardwareUnavailable if it is not there."""

    @abstractmethod
    def read(self) -> np.ndarray:
        """Return the next frame, HxWx3 uint8 BGR; raise HardwareUnavailable when lost."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""

    def describe(self) -> str:
        return self.kind
