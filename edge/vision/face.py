"""Face detection (BlazeFace), 128-d embedding (dlib ResNet) and 1:1 card-vs-live verification.

Privacy: nothing here writes an image, a crop or an embedding to disk or to a log. Embeddings are
numpy arrays in RAM, owned by the caller (FaceTemplate.drop() wipes one); verify() keeps none.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from edge.vision.models import (
    FACE_DETECTOR,
    FACE_EMBEDDING,
    FACE_SHAPE_5,
    Lazy,
    ModelUnavailable,
    import_dlib,
    model_file,
    open_tflite,
)

__all__ = [
    "Face",
    "FaceDetector",
    "FaceEmbedder",
    "FaceInfo",
    "FaceMatch",
    "FaceTemplate",
    "FaceVerifier",
    "ModelUnavailable",
    "box_iou",
    "find_faces",
    "verify",
]

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x, y, w, h in pixels of the image given
Metric = Literal["l2", "cosine"]

# Thresholds: the largest value that gave no false accept on the measured pairs in docs/face.md
# (augmented public-domain photos, not a real accuracy figure); tests/test_face.py rebuilds them.
L2_THRESHOLD = 0.53
COSINE_THRESHOLD = 0.94

_INPUT = 128  # BlazeFace short range takes 1x128x128x3 RGB in [-1, 1]
# Real faces, card-degraded ones included, scored 0.78-0.97 in our photos; a cat's face and a
# coffee cup reached 0.60 and 0.56 in the finer search windows.
_MIN_SCORE = 0.7
_NMS_IOU = 0.3
# Keypoint order of BlazeFace, as the person sees it (their right eye is on the image's left).
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")


def _anchors() -> np.ndarray:
    """The 896 SSD anchor centres of the short-range model: 16x16x2 at stride 8, 8x8x6 at 16."""
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = _INPUT // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


_ANCHORS = _anchors()


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face: box (x, y, w, h), score in [0, 1], the 6 BlazeFace keypoints (x, y)."""

    box: Box
    score: float
    keypoints: tuple[tuple[float, float], ...]

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


class FaceDetector:
    """BlazeFace short range on ai_edge_litert, with its own anchor decoder and weighted NMS.

    Works on a BGR frame of any size (letterboxed to 128x128). It is meant for faces within about
    2 m of the camera; when the whole frame shows none, it looks again in overlapping square
    windows so that a small face (an ID card's portrait, a face far off) is still found.
    """

    def __init__(self, *, models_dir: Path | None = None, num_threads: int = 2) -> None:
        self._model: Lazy[tuple[Any, int, int, int]] = Lazy(
            lambda: self._load(models_dir, num_threads)
        )
        self._lock = threading.Lock()

    @staticmethod
    def _load(models_dir: Path | None, num_threads: int) -> tuple[Any, int, int, int]:
        started = time.perf_counter()
        interpreter = open_tflite(model_file(FACE_DETECTOR, models_dir), num_threads=num_threads)
        outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
        logger.info("face detector loaded in %.0f ms", (time.perf_counter() - started) * 1000)
        index = interpreter.get_input_details()[0]["index"]
        return interpreter, index, outputs["regressors"], outputs["classificators"]

    def load(self) -> None:
        """Open the model now rather than on first use (raises ModelUnavailable)."""
        self._model.get()

    def detect(self, bgr: np.ndarray, *, min_score: float = _MIN_SCORE) -> list[Face]:
        """Faces in bgr, best first (highest score, then largest)."""
        image = _as_bgr(bgr)
        h, w = image.shape[:2]
        for windows in _window_levels(w, h):
            found: list[Face] = []
            for window in windows:
                found += self._detect_window(image, window, min_score)
            if found:
                merged = _nms_faces(found) if len(windows) > 1 else found
                return sorted(merged, key=lambda f: (-round(f.score, 2), -f.area))
        return []

    def _detect_window(
        self, image: np.ndarray, window: tuple[int, int, int, int], min_score: float
    ) -> list[Face]:
        x0, y0, ww, wh = window
        tensor, scale, pad_x, pad_y = _letterbox(image[y0 : y0 + wh, x0 : x0 + ww])
        interpreter, input_index, boxes_index, scores_index = self._model.get()
        with self._lock:
            interpreter.set_tensor(input_index, tensor)
            interpreter.invoke()
            raw = interpreter.get_tensor(boxes_index)[0].copy()
            logits = interpreter.get_tensor(scores_index)[0, :, 0].astype(np.float64)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
        keep = scores >= min_score
        if not keep.any():
            return []
        faces = []
        h, w = image.shape[:2]
        for coords, score in _weighted_nms(_decode(raw[keep], _ANCHORS[keep]), scores[keep]):
            # 0..1 of the 128x128 input -> window pixels -> image pixels
            pts = (coords.reshape(-1, 2) * _INPUT - (pad_x, pad_y)) / scale + (x0, y0)
            box = _clip_box(pts[0], pts[1], w, h)
            if box is not None:
                kps = tuple((float(px), float(py)) for px, py in pts[2:])
                faces.append(Face(box, float(score), kps))
        return faces


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise ValueError("expected a non-empty numpy image")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected a BGR, BGRA or grey image, got shape {image.shape}")


def _letterbox(bgr: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """128x128 RGB tensor in [-1, 1], the scale used and the padding (in 128-space pixels)."""
    h, w = bgr.shape[:2]
    scale = _INPUT / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(bgr, (nw, nh), interpolation=interp)
    pad_x, pad_y = (_INPUT - nw) // 2, (_INPUT - nh) // 2
    canvas = np.zeros((_INPUT, _INPUT, 3), np.uint8)
    canvas[pad_y : pad_y + nh, pad_x : pad_x + nw] = small
    rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32)
    return (rgb / 127.5 - 1.0)[np.newaxis], scale, float(pad_x), float(pad_y)


def _decode(raw: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Rows of [x1, y1, x2, y2, kx0, ky0, ... kx5, ky5] in 0..1 of the 128x128 input."""
    ax, ay = anchors[:, 0], anchors[:, 1]
    cx = raw[:, 0] / _INPUT + ax
    cy = raw[:, 1] / _INPUT + ay
    half_w = raw[:, 2] / _INPUT / 2
    half_h = raw[:, 3] / _INPUT / 2
    out = np.empty((raw.shape[0], 16), np.float32)
    out[:, 0], out[:, 1] = cx - half_w, cy - half_h
    out[:, 2], out[:, 3] = cx + half_w, cy + half_h
    out[:, 4::2] = raw[:, 4::2] / _INPUT + ax[:, None]
    out[:, 5::2] = raw[:, 5::2] / _INPUT + ay[:, None]
    return out


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (a, b)], float)
    return float(_iou(xyxy[0], xyxy[1:])[0])


def _weighted_nms(
    coords: np.ndarray, scores: np.ndarray, iou: float = _NMS_IOU
) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's blending NMS: overlapping candidates are averaged, weighted by score."""
    order = np.argsort(-scores)
    coords, scores = coords[order], scores[order]
    out = []
    remaining = np.arange(len(scores))
    while remaining.size:
        best = remaining[0]
        overlap = _iou(coords[best, :4], coords[remaining, :4]) > iou
        group = remaining[overlap]
        weights = scores[group][:, None]
        out.append(((coords[group] * weights).sum(0) / weights.sum(), float(scores[best])))
        remaining = remaining[~overlap]
    return out


def _nms_faces(faces: list[Face]) -> list[Face]:
    """Merge faces found in overlapping windows (the same face seen twice keeps its best view)."""
    faces = sorted(faces, key=lambda f: -f.score)
    boxes = np.array([[x, y, x + bw, y + bh] for x, y, bw, bh in (f.box for f in faces)], float)
    keep: list[int] = []
    for i in range(len(faces)):
        if not keep or (_iou(boxes[i], boxes[keep]) <= _NMS_IOU).all():
            keep.append(i)
    return [faces[i] for i in keep]


def _clip_box(top_left: np.ndarray, bottom_right: np.ndarray, w: int, h: int) -> Box | None:
    x1, y1 = max(0, round(top_left[0])), max(0, round(top_left[1]))
    x2, y2 = min(w, round(bottom_right[0])), min(h, round(bottom_right[1]))
    if x2 - x1 < 8 or y2 - y1 < 8:
        return None
    return (x1, y1, x2 - x1, y2 - y1)


def _window_levels(w: int, h: int) -> list[list[tuple[int, int, int, int]]]:
    """Where to look, coarse to fine: the whole frame; squares of the short side; half those."""
    levels = [[(0, 0, w, h)]]
    short = min(w, h)
    for side in (short, short // 2):
        if side < 96 or (side == short and w == h):
            continue
        step = side // 2
        xs = list(range(0, w - side + 1, step)) or [0]
        ys = list(range(0, h - side + 1, step)) or [0]
        if xs[-1] != w - side:
            xs.append(w - side)
        if ys[-1] != h - side:
            ys.append(h - side)
        levels.append([(x, y, side, side) for y in ys for x in xs])
    return levels


# --- embedding ------------------------------------------------------------------------------


class FaceEmbedder:
    """dlib's 5-point alignment and ResNet (128-d), given a detector box."""

    def __init__(self, *, models_dir: Path | None = None) -> None:
        self._models: Lazy[tuple[Any, Any, Any]] = Lazy(lambda: self._load(models_dir))
        self._lock = threading.Lock()

    @staticmethod
    def _load(models_dir: Path | None) -> tuple[Any, Any, Any]:
        dlib = import_dlib()
        started = time.perf_counter()
        shape_file = model_file(FACE_SHAPE_5, models_dir)
        net_file = model_file(FACE_EMBEDDING, models_dir)
        try:
            predictor = dlib.shape_predictor(str(shape_file.path))
            net = dlib.face_recognition_model_v1(str(net_file.path))
        except RuntimeError as err:
            raise ModelUnavailable(f"dlib cannot open the face models: {err}") from err
        logger.info("face embedder loaded in %.0f ms", (time.perf_counter() - started) * 1000)
        return dlib, predictor, net

    def load(self) -> None:
        self._models.get()

    def embed(self, bgr: np.ndarray, face: Face) -> np.ndarray:
        """The 128-d descriptor (float32) of face in bgr; the caller owns it and may drop it."""
        dlib, predictor, net = self._models.get()
        rgb = np.ascontiguousarray(cv2.cvtColor(_as_bgr(bgr), cv2.COLOR_BGR2RGB))
        x, y, w, h = face.box
        rect = dlib.rectangle(int(x), int(y), int(x + w - 1), int(y + h - 1))
        with self._lock:
            shape = predictor(rgb, rect)
            vector = np.asarray(net.compute_face_descriptor(rgb, shape), np.float32)
        del rgb
        return vector


# --- verification ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaceInfo:
    """What was found in one image; no pixels and no embedding."""

    found: bool
    box: Box | None = None
    score: float | None = None  # detection score
    faces: int = 0  # how many faces the detector saw

    def as_dict(self) -> dict[str, Any]:
        return {"found": self.found, "box": self.box, "score": self.score, "faces": self.faces}


@dataclass(frozen=True, slots=True)
class FaceMatch:
    """Outcome of a 1:1 check. For l2, match = score <= threshold; for cosine, score >= it."""

    match: bool
    score: float | None  # None when a face is missing in either image
    threshold: float
    metric: Metric
    card: FaceInfo
    live: FaceInfo
    reason: str = ""  # why there is no match ("" when matched)

    def as_dict(self) -> dict[str, Any]:
        return {
            "match": self.match,
            "score": self.score,
            "threshold": self.threshold,
            "metric": self.metric,
            "card": self.card.as_dict(),
            "live": self.live.as_dict(),
            "reason": self.reason,
        }


@dataclass(slots=True)
class FaceTemplate:
    """A face's embedding, kept in RAM for one session; drop() wipes it. Never printed."""

    info: FaceInfo
    vector: np.ndarray | None = field(default=None, repr=False)

    def drop(self) -> None:
        if self.vector is not None:
            self.vector.fill(0.0)
        self.vector = None


def distance(a: np.ndarray, b: np.ndarray, metric: Metric = "l2") -> float:
    """L2 distance (lower = closer) or cosine similarity (higher = closer) of two embeddings."""
    if metric == "l2":
        return float(np.linalg.norm(a - b))
    return float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))


class FaceVerifier:
    """1:1 match of the card's portrait against a live frame: detect, embed both, compare.

    Models load on first use (or on load()); one call runs at a time per model, others wait.
    """

    def __init__(
        self,
        *,
        models_dir: Path | None = None,
        metric: Metric = "l2",
        threshold: float | None = None,
        detector: FaceDetector | None = None,
        embedder: FaceEmbedder | None = None,
    ) -> None:
        if metric not in ("l2", "cosine"):
            raise ValueError(f"metric must be 'l2' or 'cosine', not {metric!r}")
        self.metric: Metric = metric
        default = L2_THRESHOLD if metric == "l2" else COSINE_THRESHOLD
        self.threshold = default if threshold is None else float(threshold)
        self.detector = detector or FaceDetector(models_dir=models_dir)
        self.embedder = embedder or FaceEmbedder(models_dir=models_dir)

    def load(self) -> None:
        self.detector.load()
        self.embedder.load()

    def template(self, bgr: np.ndarray) -> FaceTemplate:
        """Embedding of the best face in bgr (vector None when there is no face)."""
        faces = self.detector.detect(bgr)
        if not faces:
            return FaceTemplate(FaceInfo(found=False))
        best = faces[0]
        info = FaceInfo(True, best.box, round(best.score, 4), len(faces))
        return FaceTemplate(info, self.embedder.embed(bgr, best))

    def compare(self, card: FaceTemplate, live: FaceTemplate) -> FaceMatch:
        """Match two templates (made by template()); neither is changed or kept."""
        common = {"threshold": self.threshold, "metric": self.metric, "card": card.info}
        if card.vector is None or live.vector is None:
            which = "card photo" if card.vector is None else "live image"
            return FaceMatch(
                False, None, **common, live=live.info, reason=f"no face in the {which}"
            )
        score = distance(card.vector, live.vector, self.metric)
        match = score <= self.threshold if self.metric == "l2" else score >= self.threshold
        reason = "" if match else "faces differ"
        return FaceMatch(match, round(score, 4), **common, live=live.info, reason=reason)

    def verify(self, card_image: np.ndarray, live_image: np.ndarray) -> FaceMatch:
        """Is the face on the card the face in front of the camera? Keeps no face data."""
        card = self.template(card_image)
        live = self.template(live_image)
        try:
            return self.compare(card, live)
        finally:
            card.drop()
            live.drop()


# --- module-level helpers sharing one lazily loaded set of models ---------------------------

_shared = Lazy(FaceVerifier)


def shared_verifier() -> FaceVerifier:
    """The process-wide verifier over the default models folder (loads models on first use)."""
    return _shared.get()


def find_faces(bgr_image: np.ndarray) -> list[Box]:
    """Boxes (x, y, w, h) of the faces in a BGR image, best first; for the card reader."""
    return [face.box for face in shared_verifier().detector.detect(bgr_image)]


def verify(card_image: np.ndarray, live_image: np.ndarray) -> FaceMatch:
    """1:1 verification with the shared verifier; see FaceVerifier.verify."""
    return shared_verifier().verify(card_image, live_image)
