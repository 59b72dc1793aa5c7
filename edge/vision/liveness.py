"""Active liveness: a random challenge (blink, turn left, turn right) checked on FaceMesh landmarks.

Frames go in one at a time with their capture time; each gets a LivenessState back. Passive
checks run on the way: a face that never moves at all (a frozen feed, an injected still image),
and a face framed by a phone- or paper-like rectangle. What this does and does not stop is
written down in docs/face.md. Nothing here keeps a frame: per frame, only a few numbers survive,
plus one grey face patch used as the "has anything moved" reference (RAM only, dropped on close).
"""

from __future__ import annotations

import enum
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.texts import N_, Text, vietnamese
from edge.vision.face import Box, Face, FaceTemplate, FaceVerifier, box_iou, shared_verifier
from edge.vision.models import FACE_LANDMARKS, Lazy, model_file, open_tflite

__all__ = [
    "INSTRUCTIONS",
    "ChallengeKind",
    "FaceLandmarker",
    "FaceReading",
    "Landmarks",
    "LivenessChallenge",
    "LivenessState",
    "Status",
    "new_challenge",
]

logger = logging.getLogger(__name__)

_MESH_INPUT = 192
_ROI_SCALE = 1.5  # MediaPipe's crop: the detector box enlarged 1.5x, square, eyes level

# Eye contour points for the eye aspect ratio: outer corner, two upper, inner corner, two lower.
EYE_RIGHT = (33, 160, 158, 133, 153, 144)  # the person's right eye (image left, unmirrored)
EYE_LEFT = (362, 385, 387, 263, 373, 380)
NOSE_TIP = 1
CHEEK_RIGHT = 234  # face contour beside the person's right eye
CHEEK_LEFT = 454


class ChallengeKind(enum.StrEnum):
    BLINK = "blink"
    TURN_LEFT = "turn_left"  # the citizen's own left
    TURN_RIGHT = "turn_right"


class Status(enum.StrEnum):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


# What the citizen is asked to do (English msgids; Vietnamese in the catalog, edge.texts).
INSTRUCTIONS = {
    ChallengeKind.BLINK: N_("Please blink"),
    ChallengeKind.TURN_LEFT: N_("Please turn your head to your left"),
    ChallengeKind.TURN_RIGHT: N_("Please turn your head to your right"),
}

# Why a challenge failed: reason code -> what the citizen reads.
FAILURES = {
    "timeout": N_("Time is up. Please try again."),
    "no_face": N_("No face found. Please look straight at the camera."),
    "no_motion": N_("The picture does not move. Please use your real face in front of the camera."),
    "framed": N_("Something like a phone or a printed photo was seen. Please use your real face."),
    "different_face": N_("The face does not match the photo on the card."),
}
PASSED = N_("Check complete.")


@dataclass(frozen=True, slots=True)
class Landmarks:
    """FaceMesh output for one face. points: 468x3 in image pixels; roi: 468x2 in 0..1 of the
    level, square crop around the face (the frame for geometry: roll and scale removed)."""

    points: np.ndarray = field(repr=False)
    roi: np.ndarray = field(repr=False)
    presence: float
    patch: np.ndarray = field(repr=False)  # the 192x192 grey crop the points came from


class FaceLandmarker:
    """FaceMesh (468 points) on ai_edge_litert, run on the crop MediaPipe would use."""

    def __init__(self, *, models_dir: Path | None = None, num_threads: int = 2) -> None:
        self._model: Lazy[tuple[Any, int, int, int]] = Lazy(
            lambda: self._load(models_dir, num_threads)
        )
        self._lock = threading.Lock()

    @staticmethod
    def _load(models_dir: Path | None, num_threads: int) -> tuple[Any, int, int, int]:
        started = time.perf_counter()
        interpreter = open_tflite(model_file(FACE_LANDMARKS, models_dir), num_threads=num_threads)
        outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
        logger.info("face landmarker loaded in %.0f ms", (time.perf_counter() - started) * 1000)
        index = interpreter.get_input_details()[0]["index"]
        return interpreter, index, outputs["conv2d_21"], outputs["conv2d_31"]

    def load(self) -> None:
        self._model.get()

    def landmarks(self, bgr: np.ndarray, face: Face) -> Landmarks:
        matrix = roi_matrix(face)
        crop = cv2.warpAffine(bgr, matrix, (_MESH_INPUT, _MESH_INPUT), flags=cv2.INTER_LINEAR)
        tensor = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)[np.newaxis] / 255.0
        interpreter, input_index, mesh_index, presence_index = self._model.get()
        with self._lock:
            interpreter.set_tensor(input_index, tensor)
            interpreter.invoke()
            mesh = interpreter.get_tensor(mesh_index).reshape(468, 3).copy()
            logit = float(interpreter.get_tensor(presence_index).ravel()[0])
        presence = 1.0 / (1.0 + math.exp(-max(-80.0, min(80.0, logit))))
        inverse = cv2.invertAffineTransform(matrix)
        points = mesh.copy()
        points[:, :2] = mesh[:, :2] @ inverse[:, :2].T + inverse[:, 2]
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        return Landmarks(points, mesh[:, :2] / _MESH_INPUT, presence, grey)


def roi_matrix(face: Face) -> np.ndarray:
    """Affine map from the frame to FaceMesh's 192x192 input: box x1.5, square, eyes level."""
    x, y, w, h = face.box
    cx, cy = x + w / 2, y + h / 2
    (rx, ry), (lx, ly) = face.keypoints[0], face.keypoints[1]
    angle = math.degrees(math.atan2(ly - ry, lx - rx))
    side = max(w, h) * _ROI_SCALE
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, _MESH_INPUT / side)
    matrix[0, 2] += _MESH_INPUT / 2 - cx
    matrix[1, 2] += _MESH_INPUT / 2 - cy
    return matrix


def eye_aspect_ratio(roi: np.ndarray) -> float:
    """Mean EAR of both eyes: (|p2-p6| + |p3-p5|) / (2 |p1-p4|)."""
    values = []
    for p1, p2, p3, p4, p5, p6 in (EYE_RIGHT, EYE_LEFT):
        vertical = np.linalg.norm(roi[p2] - roi[p6]) + np.linalg.norm(roi[p3] - roi[p5])
        values.append(vertical / max(2.0 * float(np.linalg.norm(roi[p1] - roi[p4])), 1e-6))
    return float(np.mean(values))


def yaw_ratio(roi: np.ndarray) -> float:
    """Where the nose tip sits between the two cheek contours: 0 centred, +1 at the image-right
    cheek. It grows when the head turns toward the image's right. A flat photo turned on its axis
    moves the nose and cheeks together, so it changes this much less than a real head does."""
    right, left = roi[CHEEK_RIGHT, 0], roi[CHEEK_LEFT, 0]
    half = (left - right) / 2.0
    if abs(half) < 1e-6:
        return 0.0
    return float((roi[NOSE_TIP, 0] - (left + right) / 2.0) / half)


@dataclass(frozen=True, slots=True)
class FaceReading:
    """What one frame says about the face: numbers only, no pixels kept."""

    box: Box | None
    ear: float | None = None
    yaw: float | None = None
    framed: bool = False  # inside a phone- or paper-like rectangle
    shape: np.ndarray | None = field(default=None, repr=False)  # 468x2 roi landmarks
    patch: np.ndarray | None = field(default=None, repr=False)  # 192x192 grey face crop

    @property
    def found(self) -> bool:
        return self.box is not None


@dataclass(frozen=True, slots=True)
class LivenessState:
    status: Status
    kind: ChallengeKind
    reason: str = ""  # failure code (FAILURES keys), "" unless failed
    message_vi: str = ""  # what the screen shows now
    elapsed_s: float = 0.0
    frames: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "kind": self.kind.value,
            "reason": self.reason,
            "message_vi": self.message_vi,
            "elapsed_s": round(self.elapsed_s, 3),
            "frames": self.frames,
        }


# Thresholds. EAR and yaw are compared with the person's own first frames, not fixed values:
# eye shapes differ (narrower eyes have a lower open EAR), and so does how a face sits.
BLINK_CLOSED = 0.72  # eyes count as shut below this share of the open-eye EAR
BLINK_OPEN = 0.88  # and open again above this share
TURN_DELTA = 0.20  # yaw ratio change in the asked direction
BASELINE_FRAMES = 3
STILL_SECONDS = 1.5  # a face that has not changed at all for this long is a still image
STILL_MIN_FRAMES = 5
STILL_PIXELS = 0.5  # mean absolute grey difference, 0..255, of the face crop
STILL_SHAPE = 0.0015  # largest landmark move, share of the crop side
FRAMED_MIN_FRAMES = 3
# A looser detector cut than for verification (a turned head scores lower), confirmed by
# FaceMesh's own face-presence output, which is near 1.0 on faces and near 0 on most non-faces.
LIVE_MIN_SCORE = 0.6
LIVE_MIN_PRESENCE = 0.9
FRAMED_SHARE = 0.6


class LivenessChallenge:
    """One active challenge. feed(frame, t) with t in seconds (any monotonic clock).

    kind: None picks one at random. time_limit_s: counted from the first frame fed.
    mirrored: set when the frames are mirrored (selfie view), so "left" stays the citizen's left.
    reference: the card's FaceTemplate; when given, the face doing the challenge must match it
    too (checked once the first frontal frames are in and, for a blink, on the frame that
    completes it), so a photo cannot pass the 1:1 check and another person the challenge.
    verifier / landmarker: the model runners to use (detection, identity check; FaceMesh);
    by default the process-wide ones over the bundled models.
    """

    def __init__(
        self,
        kind: ChallengeKind | str | None = None,
        *,
        time_limit_s: float = 8.0,
        mirrored: bool = False,
        reference: FaceTemplate | None = None,
        verifier: FaceVerifier | None = None,
        landmarker: FaceLandmarker | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if kind is None:
            kind = (rng or random.SystemRandom()).choice(list(ChallengeKind))
        self.kind = ChallengeKind(kind)
        self.time_limit_s = float(time_limit_s)
        self.mirrored = mirrored
        self._reference = reference
        self._verifier = verifier
        self._landmarker = landmarker
        self._lock = threading.Lock()
        self._reset_progress()
        self._started: float | None = None
        self._frames = 0
        self._face_frames = 0
        self._framed_frames = 0
        self._result: LivenessState | None = None

    @property
    def instruction(self) -> Text:
        return Text(INSTRUCTIONS[self.kind])

    @property
    def instruction_vi(self) -> str:
        return self.instruction.vi

    @property
    def started(self) -> float | None:
        """Time of the first frame fed (the countdown runs from it), None before."""
        return self._started

    def seconds_left(self, t: float) -> float:
        """Seconds the challenge has left at time t (the whole limit before the first frame)."""
        if self._started is None:
            return self.time_limit_s
        return max(0.0, self.time_limit_s - (t - self._started))

    def feed(self, frame: np.ndarray, t: float) -> LivenessState:
        """Look at one frame taken at time t (seconds); returns where the challenge stands."""
        if self._result is not None:
            return self._result
        reading = self.read(frame)
        return self.observe(reading, t, frame=frame)

    def read(self, frame: np.ndarray) -> FaceReading:
        """Measure one frame: the largest face, its EAR, yaw and the passive checks' inputs."""
        detector = (self._verifier or shared_verifier()).detector
        faces = detector.detect(frame, min_score=LIVE_MIN_SCORE)
        if not faces:
            return FaceReading(None)
        face = max(faces, key=lambda f: f.area)
        marks = (self._landmarker or _shared_landmarker.get()).landmarks(frame, face)
        if marks.presence < LIVE_MIN_PRESENCE:
            return FaceReading(None)
        yaw = yaw_ratio(marks.roi)
        return FaceReading(
            face.box,
            ear=eye_aspect_ratio(marks.roi),
            yaw=-yaw if self.mirrored else yaw,
            framed=face_in_rectangle(frame, face.box),
            shape=marks.roi,
            patch=marks.patch,
        )

    def observe(
        self, reading: FaceReading, t: float, *, frame: np.ndarray | None = None
    ) -> LivenessState:
        """Advance the challenge with one frame's reading (feed() = read() + observe()).

        frame is only needed for the identity check against reference."""
        with self._lock:
            if self._result is not None:
                return self._result
            if self._started is None:
                self._started = t
            self._frames += 1
            elapsed = t - self._started
            if elapsed > self.time_limit_s:  # a frame taken too late cannot complete it
                verdict = "timeout" if self._face_frames or reading.found else "no_face"
            else:
                verdict = self._advance(reading, t, frame)
            if verdict is None:
                return self._state(Status.PENDING, elapsed)
            if verdict == "passed":
                self._result = self._state(Status.PASSED, elapsed)
            else:
                self._result = self._state(Status.FAILED, elapsed, verdict)
                logger.info("liveness %s failed: %s", self.kind.value, verdict)
            self.close()
            return self._result

    def close(self) -> None:
        """Drop everything derived from the face (the reference patch, the card template link)."""
        self._still_patch = None
        self._reference = None

    # --- the state machine ------------------------------------------------------------------

    def _reset_progress(self) -> None:
        self._baseline: list[FaceReading] = []
        self._base_ear: float | None = None
        self._base_yaw: float | None = None
        self._eyes_shut = False
        self._last_box: Box | None = None
        self._still_patch: np.ndarray | None = None
        self._still_shape: np.ndarray | None = None
        self._still_since = 0.0
        self._still_frames = 0

    def _advance(self, r: FaceReading, t: float, frame: np.ndarray | None) -> str | None:
        if not r.found:
            return None
        self._face_frames += 1
        if self._last_box is not None and box_iou(self._last_box, r.box) < 0.2:
            # Another face, or the face jumped: start over so that one face does the whole act.
            self._reset_progress()
        self._last_box = r.box
        still = self._update_still(r, t)
        if still:
            return "no_motion"
        if r.framed:
            self._framed_frames += 1
        if (
            self._framed_frames >= FRAMED_MIN_FRAMES
            and self._framed_frames >= FRAMED_SHARE * self._face_frames
        ):
            return "framed"
        if self._base_ear is None:
            self._baseline.append(r)
            if len(self._baseline) < BASELINE_FRAMES:
                return None
            self._base_ear = float(np.median([b.ear for b in self._baseline]))
            self._base_yaw = float(np.median([b.yaw for b in self._baseline]))
            if not self._same_person(frame):
                return "different_face"
            return None
        if self.kind is ChallengeKind.BLINK:
            return self._blink(r, frame)
        direction = 1.0 if self.kind is ChallengeKind.TURN_LEFT else -1.0
        if (r.yaw - self._base_yaw) * direction >= TURN_DELTA:
            return "passed"
        return None

    def _blink(self, r: FaceReading, frame: np.ndarray | None) -> str | None:
        if not self._eyes_shut:
            if r.ear < BLINK_CLOSED * self._base_ear:
                self._eyes_shut = True
            return None
        if r.ear > BLINK_OPEN * self._base_ear:
            return "passed" if self._same_person(frame) else "different_face"
        return None

    def _update_still(self, r: FaceReading, t: float) -> bool:
        """True once the face has not changed at all for STILL_SECONDS and STILL_MIN_FRAMES."""
        if r.patch is None or r.shape is None:
            return False
        if self._still_patch is None:
            self._still_patch, self._still_shape = r.patch, r.shape
            self._still_since, self._still_frames = t, 1
            return False
        pixels = float(np.mean(cv2.absdiff(r.patch, self._still_patch)))
        shape = float(np.max(np.abs(r.shape - self._still_shape)))
        if pixels > STILL_PIXELS or shape > STILL_SHAPE:
            self._still_patch, self._still_shape = r.patch, r.shape
            self._still_since, self._still_frames = t, 1
            return False
        self._still_frames += 1
        return self._still_frames >= STILL_MIN_FRAMES and t - self._still_since >= STILL_SECONDS

    def _same_person(self, frame: np.ndarray | None) -> bool:
        if self._reference is None or self._reference.vector is None:
            return True
        if frame is None:
            raise ValueError("a challenge with a reference face needs the frame for observe()")
        verifier = self._verifier or shared_verifier()
        live = verifier.template(frame)
        try:
            return verifier.compare(self._reference, live).match
        finally:
            live.drop()

    def _state(self, status: Status, elapsed: float, reason: str = "") -> LivenessState:
        if status is Status.PENDING:
            msgid = INSTRUCTIONS[self.kind]
        elif status is Status.PASSED:
            msgid = PASSED
        else:
            msgid = FAILURES[reason]
        return LivenessState(
            status, self.kind, reason, vietnamese(msgid), max(0.0, elapsed), self._frames
        )


def face_in_rectangle(frame: np.ndarray, box: Box) -> bool:
    """Best effort: is the face inside a closed, roughly rectangular outline (a phone's screen, a
    printed photo's edge) that is not much bigger than the face? A real head in front of a door
    or a window hides the lower edge with its neck and shoulders, so those rarely close."""
    h, w = frame.shape[:2]
    scale = min(1.0, 480.0 / max(h, w))
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    edges = cv2.Canny(cv2.GaussianBlur(grey, (5, 5), 0), 40, 120)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    x, y, bw, bh = (v * scale for v in box)
    face_area = bw * bh
    inner = [(x + bw * 0.2, y + bh * 0.2), (x + bw * 0.8, y + bh * 0.2)]
    inner += [(x + bw * 0.8, y + bh * 0.8), (x + bw * 0.2, y + bh * 0.8)]
    for contour in contours:
        area = cv2.contourArea(contour)
        if not 1.8 * face_area <= area <= 25 * face_area:
            continue
        poly = cv2.approxPolyDP(contour, 0.03 * cv2.arcLength(contour, True), True)
        if len(poly) != 4 or not cv2.isContourConvex(poly):
            continue
        if not all(cv2.pointPolygonTest(poly, p, False) > 0 for p in inner):
            continue
        corners = poly.reshape(4, 2).astype(np.float64)
        if _right_angled(corners) and _sides_on_edges(corners, edges):
            return True
    return False


def _sides_on_edges(corners: np.ndarray, edges: np.ndarray, share: float = 0.85) -> bool:
    """Each side of the quadrilateral runs along edge pixels: a real straight border, not a
    shape the polygon simplification made out of a ragged outline."""
    h, w = edges.shape
    for i in range(4):
        ts = np.linspace(0.05, 0.95, 40)[:, None]
        pts = np.round(corners[i] + (corners[(i + 1) % 4] - corners[i]) * ts).astype(int)
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
        pts = pts[inside]
        if len(pts) < 20 or np.mean(edges[pts[:, 1], pts[:, 0]] > 0) < share:
            return False
    return True


def _right_angled(corners: np.ndarray, tolerance: float = 0.35) -> bool:
    for i in range(4):
        a = corners[i - 1] - corners[i]
        b = corners[(i + 1) % 4] - corners[i]
        cos = abs(float(a @ b)) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-9)
        if cos > tolerance:
            return False
    return True


_shared_landmarker: Lazy[FaceLandmarker] = Lazy(FaceLandmarker)


def new_challenge(
    *,
    time_limit_s: float = 8.0,
    mirrored: bool = False,
    reference: FaceTemplate | None = None,
    verifier: FaceVerifier | None = None,
    landmarker: FaceLandmarker | None = None,
    rng: random.Random | None = None,
) -> LivenessChallenge:
    """A challenge of a random kind (system randomness unless rng is given: not predictable)."""
    return LivenessChallenge(
        None,
        time_limit_s=time_limit_s,
        mirrored=mirrored,
        reference=reference,
        verifier=verifier,
        landmarker=landmarker,
        rng=rng,
    )
