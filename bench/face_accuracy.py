"""Measured face-verification accuracy on a folder of photos: FAR, FRR, the EER and the table.

    python -m bench.face_accuracy FOLDER [--metric l2|cosine] [--no-degrade] [--json]

FOLDER holds one sub-folder per person (any names; they are never printed). Inside a person's
folder, files whose name starts with ``card`` are the card side (a CCCD portrait, a chip DG2
image) and the others are the live side (kiosk camera frames); a folder with no ``card*`` file
uses each photo on both sides. Pairs:

- genuine: a person's card-side photo against another photo of the same person on the live side
  (never a photo against itself: that measures augmentation, not recognition);
- impostor: every card-side photo against every live-side photo of every other person.

Each pair runs through the real ``FaceVerifier`` (BlazeFace, dlib 5-point alignment, ResNet);
a pair where either image has no detectable face counts as rejected: a false reject when genuine
(the citizen is refused), never an accept when impostor. With ``--degrade`` (the default) the
whole set runs a second time with each card-side photo made to look like a printed portrait:
downscaled to 160 px high, blurred (sigma 0.8) and JPEG-compressed at quality 40, in memory.

Nothing is written to disk and no image, embedding or folder name is printed or logged: the
output is counts and rates only. The arithmetic (rates, table, EER) is in plain functions that
``tests/test_face_accuracy.py`` checks on synthetic scores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Metric = Literal["l2", "cosine"]
Score = float | None  # None: a face was missing on one side, the pair cannot be accepted

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
CARD_PREFIX = "card"


# --- arithmetic (no faces involved) --------------------------------------------------------


def accepted(score: Score, threshold: float, metric: Metric = "l2") -> bool:
    """The verifier's decision rule: L2 distance <= threshold, or cosine >= threshold."""
    if score is None:
        return False
    return score <= threshold if metric == "l2" else score >= threshold


@dataclass(frozen=True, slots=True)
class Rates:
    threshold: float
    false_accepts: int
    impostor_pairs: int
    false_rejects: int
    genuine_pairs: int

    @property
    def far(self) -> float:
        return self.false_accepts / self.impostor_pairs if self.impostor_pairs else math.nan

    @property
    def frr(self) -> float:
        return self.false_rejects / self.genuine_pairs if self.genuine_pairs else math.nan


def rates(
    genuine: Sequence[Score], impostor: Sequence[Score], threshold: float, metric: Metric = "l2"
) -> Rates:
    """False accepts among impostor pairs and false rejects among genuine pairs at threshold."""
    fa = sum(accepted(s, threshold, metric) for s in impostor)
    fr = sum(not accepted(s, threshold, metric) for s in genuine)
    return Rates(threshold, fa, len(impostor), fr, len(genuine))


def table(
    genuine: Sequence[Score],
    impostor: Sequence[Score],
    thresholds: Iterable[float],
    metric: Metric = "l2",
) -> list[Rates]:
    return [rates(genuine, impostor, t, metric) for t in thresholds]


@dataclass(frozen=True, slots=True)
class Eer:
    """Equal error rate: the threshold where FAR and FRR are closest, and their mean there."""

    threshold: float
    rate: float
    far: float
    frr: float


def eer(genuine: Sequence[Score], impostor: Sequence[Score], metric: Metric = "l2") -> Eer:
    """Sweep every observed score as the threshold; keep the one where |FAR - FRR| is smallest.

    On ties the stricter threshold wins (the lower one for l2, the higher for cosine). Missing
    scores (None) count as rejected at every threshold.
    """
    if not genuine or not impostor:
        raise ValueError("the EER needs at least one genuine and one impostor pair")
    seen = sorted({s for s in (*genuine, *impostor) if s is not None})
    if not seen:
        raise ValueError("no pair has a score (no face found anywhere)")
    if metric == "cosine":
        seen.reverse()
    best: Rates | None = None
    for t in seen:
        r = rates(genuine, impostor, t, metric)
        if best is None or abs(r.far - r.frr) < abs(best.far - best.frr):
            best = r
    assert best is not None
    return Eer(best.threshold, (best.far + best.frr) / 2, best.far, best.frr)


def closest_impostor(impostor: Sequence[Score], metric: Metric = "l2") -> float | None:
    """The impostor score nearest to a match: any threshold strictly below it (l2; above it for
    cosine) accepts no impostor pair of the set (the rule that chose 0.53). None without scores.
    """
    scores = [s for s in impostor if s is not None]
    if not scores:
        return None
    return min(scores) if metric == "l2" else max(scores)


def upper_bound_95(errors: int, trials: int) -> float:
    """One-sided 95% upper bound of a rate seen as errors/trials.

    For 0 errors the exact binomial bound 1 - 0.05**(1/n) (about 3/n, the "rule of three");
    otherwise the Wilson score bound. NaN when there were no trials.
    """
    if trials <= 0:
        return math.nan
    if errors <= 0:
        return 1.0 - 0.05 ** (1.0 / trials)
    z = 1.6448536269514722  # one-sided 95%
    p = errors / trials
    denom = 1 + z * z / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return min(1.0, (centre + spread) / denom)


def thresholds_between(low: float, high: float, step: float) -> list[float]:
    count = round((high - low) / step)
    return [round(low + i * step, 6) for i in range(count + 1)]


# --- the photo set -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    card: tuple[Path, ...]
    live: tuple[Path, ...]


def load_folder(root: Path) -> list[Person]:
    """One Person per sub-folder of root that holds images (files starting with '.' skipped)."""
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    people = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(
            p
            for p in sub.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if not images:
            continue
        card = tuple(p for p in images if p.name.lower().startswith(CARD_PREFIX))
        if card:
            live = tuple(p for p in images if p not in card)
            people.append(Person(card, live))
        else:
            people.append(Person(tuple(images), tuple(images)))
    if len(people) < 2:
        raise ValueError(f"{root} needs at least two person sub-folders with photos")
    return people


def pairs(people: Sequence[Person]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """(genuine, impostor) pairs of (card-side path, live-side path); a photo never meets itself."""
    genuine = [(c, v) for p in people for c in p.card for v in p.live if c != v]
    impostor = [
        (c, v)
        for i, p in enumerate(people)
        for j, q in enumerate(people)
        if i != j
        for c in p.card
        for v in q.live
    ]
    return genuine, impostor


def degrade(bgr: np.ndarray, *, height: int = 160, blur: float = 0.8, quality: int = 40):
    """A printed-portrait look: downscale to `height` px, Gaussian blur, JPEG in memory."""
    import cv2

    h, w = bgr.shape[:2]
    if h > height:
        bgr = cv2.resize(bgr, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)
    bgr = cv2.GaussianBlur(bgr, (0, 0), blur)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


@dataclass(slots=True)
class Scored:
    variant: str
    genuine: list[Score]
    impostor: list[Score]
    no_face: int  # images (card or live side) where no face was found


def score_set(
    people: Sequence[Person],
    *,
    metric: Metric = "l2",
    degraded: bool = False,
    card_height: int = 160,
    verifier=None,
) -> Scored:
    """Every genuine and impostor pair's score from the real FaceVerifier (templates in RAM)."""
    import cv2

    from edge.vision.face import FaceVerifier, distance

    verifier = verifier or FaceVerifier(metric=metric)
    genuine_pairs, impostor_pairs = pairs(people)
    card_paths = {c for c, _ in genuine_pairs + impostor_pairs}
    live_paths = {v for _, v in genuine_pairs + impostor_pairs}
    vectors: dict[tuple[str, Path], np.ndarray | None] = {}
    try:
        for side, paths in (("card", card_paths), ("live", live_paths)):
            for number, path in enumerate(sorted(paths), 1):
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:  # the path is not named: folders may carry people's names
                    raise ValueError(
                        f"cannot read {side}-side image {number} of {len(paths)} (sorted by path)"
                    )
                if side == "card" and degraded:
                    image = degrade(image, height=card_height)
                template = verifier.template(image)
                vectors[(side, path)] = None if template.vector is None else template.vector.copy()
                template.drop()

        def score(card: Path, live: Path) -> Score:
            a, b = vectors[("card", card)], vectors[("live", live)]
            return None if a is None or b is None else distance(a, b, metric)

        return Scored(
            f"card side degraded ({card_height} px high, blur 0.8, JPEG q40)"
            if degraded
            else "photos as they are",
            [score(c, v) for c, v in genuine_pairs],
            [score(c, v) for c, v in impostor_pairs],
            sum(v is None for v in vectors.values()),
        )
    finally:
        for vector in vectors.values():
            if vector is not None:
                vector.fill(0.0)
        vectors.clear()


# --- report --------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}%"


def summary(scored: Scored, current: float, grid: Sequence[float], metric: Metric) -> dict:
    at = rates(scored.genuine, scored.impostor, current, metric)
    out: dict = {
        "variant": scored.variant,
        "metric": metric,
        "genuine_pairs": len(scored.genuine),
        "impostor_pairs": len(scored.impostor),
        "images_without_face": scored.no_face,
        "current_threshold": {
            **asdict(at),
            "far": at.far,
            "frr": at.frr,
            "far_upper_95": upper_bound_95(at.false_accepts, at.impostor_pairs),
            "frr_upper_95": upper_bound_95(at.false_rejects, at.genuine_pairs),
        },
        "table": [
            {**asdict(r), "far": r.far, "frr": r.frr}
            for r in table(scored.genuine, scored.impostor, grid, metric)
        ],
        "closest_impostor": closest_impostor(scored.impostor, metric),
    }
    try:
        out["eer"] = asdict(eer(scored.genuine, scored.impostor, metric))
    except ValueError as exc:
        out["eer"] = {"error": str(exc)}
    return out


def print_summary(s: dict, out=sys.stdout) -> None:
    cur = s["current_threshold"]
    print(f"\n== {s['variant']} ({s['metric']})", file=out)
    print(
        f"genuine pairs {s['genuine_pairs']}, impostor pairs {s['impostor_pairs']}, "
        f"images without a detectable face {s['images_without_face']}",
        file=out,
    )
    print("| threshold | false accepts | FAR | false rejects | FRR |", file=out)
    print("|---|---|---|---|---|", file=out)
    rows = s["table"]
    marked = {r["threshold"] for r in rows}
    if cur["threshold"] not in marked:
        rows = sorted([*rows, cur], key=lambda r: r["threshold"])
    for r in rows:
        mark = " (current)" if r["threshold"] == cur["threshold"] else ""
        print(
            f"| {r['threshold']:.3f}{mark} | {r['false_accepts']}/{r['impostor_pairs']} | "
            f"{_pct(r['far'])} | {r['false_rejects']}/{r['genuine_pairs']} | {_pct(r['frr'])} |",
            file=out,
        )
    e = s["eer"]
    if "error" in e:
        print(f"EER: {e['error']}", file=out)
    else:
        print(
            f"EER {_pct(e['rate'])} at threshold {e['threshold']:.4f} "
            f"(FAR {_pct(e['far'])}, FRR {_pct(e['frr'])})",
            file=out,
        )
    print(
        f"at the current threshold {cur['threshold']}: FAR {_pct(cur['far'])} "
        f"(95% upper bound {_pct(cur['far_upper_95'])}), FRR {_pct(cur['frr'])} "
        f"(95% upper bound {_pct(cur['frr_upper_95'])})",
        file=out,
    )
    if s["closest_impostor"] is not None:
        print(f"closest impostor score: {s['closest_impostor']:.4f}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.face_accuracy",
        description="FAR/FRR of the kiosk's face verifier on a folder with one sub-folder per "
        "person (files named card* are the card side). Prints counts and rates only.",
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--metric", choices=("l2", "cosine"), default="l2")
    parser.add_argument("--threshold", type=float, help="the threshold to report (default: ours)")
    parser.add_argument("--from", dest="low", type=float, help="table start")
    parser.add_argument("--to", dest="high", type=float, help="table end")
    parser.add_argument("--step", type=float, default=0.02, help="table step (default 0.02)")
    parser.add_argument(
        "--no-degrade", dest="degrade", action="store_false", help="skip the degraded card run"
    )
    parser.add_argument(
        "--card-height",
        type=int,
        default=160,
        help="height the degraded card side is scaled down to (default 160 px)",
    )
    parser.add_argument("--json", action="store_true", help="machine output on stdout")
    args = parser.parse_args(argv)

    from edge.vision.face import COSINE_THRESHOLD, L2_THRESHOLD, FaceVerifier

    metric: Metric = args.metric
    current = args.threshold
    if current is None:
        current = L2_THRESHOLD if metric == "l2" else COSINE_THRESHOLD
    low = args.low if args.low is not None else (0.40 if metric == "l2" else 0.88)
    high = args.high if args.high is not None else (0.70 if metric == "l2" else 0.98)
    grid = thresholds_between(low, high, args.step)
    try:
        people = load_folder(args.folder)
    except ValueError as exc:
        print(f"face_accuracy: {exc}", file=sys.stderr)
        return 2
    verifier = FaceVerifier(metric=metric, threshold=current)
    variants = [False, True] if args.degrade else [False]
    results = []
    for d in variants:
        try:
            scored = score_set(
                people, metric=metric, degraded=d, card_height=args.card_height, verifier=verifier
            )
        except ValueError as exc:
            print(f"face_accuracy: {exc}", file=sys.stderr)
            return 2
        results.append(summary(scored, current, grid, metric))
    if args.json:
        json.dump({"people": len(people), "results": results}, sys.stdout, indent=1)
        print()
    else:
        photos = len({p for person in people for p in (*person.card, *person.live)})
        print(f"{len(people)} people, {photos} photos")
        for s in results:
            print_summary(s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
