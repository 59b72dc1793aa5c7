"""Live capture: PageCapture watches the preview and says when to take the shot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from edge.texts import N_, Text
from edge.vision.page.common import (
    DPI,
    MESSAGES,
    QUALITY_WIDTH,
    PageCheck,
    PageRejected,
    Quality,
    ScannedPage,
)
from edge.vision.page.flatten import scan
from edge.vision.page.judge import check_page

Status = Literal["no_page", "adjust", "hold_still", "capture", "captured"]
HOLD_STILL = N_("Hold the page still.")
CAPTURED = N_("Page captured. Place the next page, or press “Done, read the pages”.")


@dataclass(frozen=True, slots=True)
class CaptureState:
    """One frame's answer: capture is True on exactly the frame that should be taken."""

    status: Status
    check: PageCheck
    steady_frames: int
    text: Text  # what the citizen is told

    @property
    def capture(self) -> bool:
        return self.status == "capture"

    @property
    def message_vi(self) -> str:
        return self.text.vi

    @property
    def message_en(self) -> str:
        return self.text.en

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "capture": self.capture,
            "steady_frames": self.steady_frames,
            "message_vi": self.message_vi,
            "message_en": self.message_en,
            "check": self.check.as_dict(),
        }


class PageCapture:
    """Auto-capture over the live preview: fires once the page has been found, free of problems
    and still (every corner moved less than still_px, in a 1280-wide frame) for `frames` frames
    in a row. After firing it waits for the page to go away or move before firing again, so one
    placement gives one capture. Not thread-safe: feed it from the camera thread only."""

    def __init__(
        self,
        *,
        frames: int = 3,
        still_px: float = 4.0,
        moved_px: float = 40.0,
        checker: Callable[[np.ndarray], PageCheck] = check_page,
    ) -> None:
        self.frames = frames
        self.still_px = still_px
        self.moved_px = moved_px
        self._check = checker
        self.reset()

    def reset(self) -> None:
        """Forget the page (a new session, or the citizen asked to retake)."""
        self._last_quad: np.ndarray | None = None
        self._captured_quad: np.ndarray | None = None
        self._steady = 0
        self._last_frame: np.ndarray | None = None
        self._last_check: PageCheck | None = None

    def feed(self, frame: np.ndarray) -> CaptureState:
        check = self._check(frame)
        self._last_frame, self._last_check = frame, check
        quad = (
            None
            if check.quad is None
            else np.array(check.quad, dtype=np.float32) * (QUALITY_WIDTH / check.frame_size[0])
        )
        moved = self._moved(self._last_quad, quad)
        self._last_quad = quad
        if quad is None:
            self._steady = 0
            self._captured_quad = None
            return self._state("no_page", check)
        if self._captured_quad is not None:
            if self._moved(self._captured_quad, quad) < self.moved_px:
                self._steady = 0
                return self._state("captured", check)
            self._captured_quad = None  # the next page (or the same one moved): arm again
        if check.problems:
            self._steady = 0
            return self._state("adjust", check)
        self._steady = self._steady + 1 if moved < self.still_px else 1
        if self._steady >= self.frames:
            self._captured_quad = quad
            return self._state("capture", check)
        return self._state("hold_still", check)

    def capture(self, frame: np.ndarray | None = None, *, dpi: int = DPI) -> ScannedPage:
        """Manual capture (the citizen pressed OK): scan this frame, or the last one fed, whatever
        its blur or glare. PageRejected when no page can be cut out of it."""
        if frame is None:
            if self._last_frame is None:
                raise PageRejected(PageCheck(False, None, Quality(), ("no_page",), (0, 0)))
            frame, check = self._last_frame, self._last_check
        else:
            check = None
        page = scan(frame, dpi=dpi, check=check)
        assert page.check.quad is not None  # scan() raises PageRejected without one
        quad = np.array(page.check.quad, dtype=np.float32) * (
            QUALITY_WIDTH / page.check.frame_size[0]
        )
        self._captured_quad = quad
        self._steady = 0
        return page

    @staticmethod
    def _moved(a: np.ndarray | None, b: np.ndarray | None) -> float:
        if a is None or b is None:
            return float("inf")
        return float(np.abs(a - b).max())

    def _state(self, status: Status, check: PageCheck) -> CaptureState:
        if status in ("no_page", "adjust"):
            msgid = MESSAGES[check.problems[0] if check.problems else "no_page"]
        elif status == "captured":
            msgid = CAPTURED
        else:
            msgid = HOLD_STILL
        return CaptureState(status, check, self._steady, Text(msgid))
