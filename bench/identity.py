"""Identity figures (issue 3): QR, card reading, face detect/embed/verify, liveness, memory."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from bench.registry import BenchError, figure

REPO = Path(__file__).resolve().parent.parent
FACES = REPO / "tests" / "data" / "faces"
INNER = 10  # timed calls per sample; the sample is their median
DECODER_SCENES = 30


def _ms(call: Callable[[], object], inner: int = INNER) -> float:
    times = []
    for _ in range(inner):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@cache
def _scene() -> np.ndarray:
    from tests import cards  # the seeded generator the tests use: same scenes, same sizes

    return cards.scene(1, "moderate").image


@cache
def _face(name: str = "obama2.jpg") -> np.ndarray:
    image = cv2.imread(str(FACES / name))
    if image is None:
        raise BenchError(f"missing test photo {name}")
    return image


@cache
def _verifier():
    from edge.vision.face import FaceVerifier

    verifier = FaceVerifier()
    verifier.load()
    return verifier


@figure("QR decode, 1280x960 card scene", unit="ms", below=100.0)
def qr_decode() -> float:
    from edge.vision.qr import decode_qr

    frame = _scene()
    if not decode_qr(frame):
        raise BenchError("no QR decoded in the bench scene")
    return _ms(lambda: decode_qr(frame))


@cache
def _decoder_scenes() -> list[np.ndarray]:
    """The 30 moderate scenes tests/test_qr.py compares the two decoders on, in grey."""
    from tests import cards

    return [
        cv2.cvtColor(cards.cached_scene(seed, "moderate").image, cv2.COLOR_BGR2GRAY)
        for seed in range(DECODER_SCENES)
    ]


def _decoder_ms(decode: Callable[[np.ndarray], object]) -> float:
    """Median over the 30 scenes of one call each (the decoder choice in edge/vision/qr.py)."""
    times = []
    for gray in _decoder_scenes():
        started = time.perf_counter()
        decode(gray)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@figure(f"QR decoder zxing-cpp (primary), median of {DECODER_SCENES} scenes", unit="ms")
def qr_decoder_zxing() -> float:
    from edge.vision import qr

    return _decoder_ms(qr._zxing)


@figure(f"QR decoder OpenCV Aruco (fallback), median of {DECODER_SCENES} scenes", unit="ms")
def qr_decoder_opencv() -> float:
    from edge.vision import qr

    return _decoder_ms(qr._opencv)


@figure("card read (find, flatten, QR, validate)", unit="ms")
def card_read() -> float:
    from edge.identity.card import read_card

    frame = _scene()
    return _ms(lambda: read_card(frame))


@figure("face detect, 640x480 frame", unit="ms")
def face_detect() -> float:
    frame = cv2.resize(_face(), (640, 480))
    detector = _verifier().detector
    if not detector.detect(frame):
        raise BenchError("no face found in the bench photo")
    return _ms(lambda: detector.detect(frame))


@figure("face embed, one face", unit="ms")
def face_embed() -> float:
    frame = _face()
    verifier = _verifier()
    face = verifier.detector.detect(frame)[0]
    return _ms(lambda: verifier.embedder.embed(frame, face))


@figure("face verify (detect + embed both + compare)", unit="ms", below=1000.0)
def face_verify() -> float:
    card, live = _face("obama.jpg"), _face("obama2.jpg")
    verifier = _verifier()
    if not verifier.verify(card, live).match:
        raise BenchError("the bench pair did not match")
    return _ms(lambda: verifier.verify(card, live), inner=5)


@figure("liveness, per frame", unit="ms")
def liveness_frame() -> float:
    from edge.vision.liveness import LivenessChallenge

    frame = _face()
    rng = np.random.default_rng(0)
    frames = [
        np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8) for _ in range(8)
    ]
    challenge = LivenessChallenge("blink", time_limit_s=1e9)
    count = iter(range(10**6))

    def one_frame() -> None:
        i = next(count)
        challenge.feed(frames[i % len(frames)], i * 0.2)  # 5 fps, as the kiosk feeds it

    return _ms(one_frame, inner=20)


@figure("identity models on disk", unit="MB")
def model_sizes() -> float:
    manifest = json.loads((REPO / "models" / "manifest.json").read_text())
    return sum((REPO / "models" / m["file"]).stat().st_size for m in manifest["models"]) / 2**20


_PEAK = """
import resource, cv2
from edge.vision.face import FaceVerifier
from edge.vision.liveness import LivenessChallenge
from edge.identity.card import read_card
from tests import cards
v = FaceVerifier(); v.load()
a, b = cv2.imread("tests/data/faces/obama.jpg"), cv2.imread("tests/data/faces/obama2.jpg")
assert v.verify(a, b).match
c = LivenessChallenge("blink")
for i in range(10): c.feed(b, i * 0.2)
read_card(cards.scene(1).image)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


@figure("identity pipeline peak RSS (own process)", unit="MB", below=400.0)
def identity_peak_rss() -> float:
    done = subprocess.run(
        [sys.executable, "-c", _PEAK], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise BenchError(f"identity pipeline failed: {done.stderr.strip()[-300:]}")
    return float(done.stdout.strip().splitlines()[-1])
