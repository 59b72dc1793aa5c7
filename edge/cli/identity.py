"""`kiosk id ...` and `kiosk face ...`: the identity pipeline on files, for technicians and tests."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.cli.context import Context
from edge.errors import EXIT_FAILED, EXIT_OK, BadInput

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def add_parsers(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    ident = sub.add_parser("id", parents=[common], help="read and validate a CCCD")
    ident.set_defaults(handler=run)
    id_sub = ident.add_subparsers(dest="id_command", required=True, parser_class=parser_class)
    parse = id_sub.add_parser("parse", parents=[common], help="validate a CCCD QR payload")
    parse.add_argument("payload", help="the QR text, fields separated by |")
    read = id_sub.add_parser(
        "read", parents=[common], help="read a card (CCCD or 2024 Căn cước) from one or two photos"
    )
    read.add_argument("image", type=Path, help="a photo of one side (front or back)")
    read.add_argument("other", type=Path, nargs="?", help="a photo of the other side")
    add_chip_parser(id_sub, common)

    face = sub.add_parser("face", parents=[common], help="face verification and liveness")
    face.set_defaults(handler=run)
    face_sub = face.add_subparsers(dest="face_command", required=True, parser_class=parser_class)
    verify = face_sub.add_parser(
        "verify", parents=[common], help="is the card's face the live face? (exit 1 if not)"
    )
    verify.add_argument("card_image", type=Path, help="photo of the card, or of its portrait")
    verify.add_argument("live_image", type=Path)
    live = face_sub.add_parser(
        "liveness", parents=[common], help="run a liveness challenge over frames (exit 1 if failed)"
    )
    live.add_argument("frames", type=Path, help="folder of frames (name order) or a video file")
    live.add_argument(
        "--challenge", choices=["blink", "turn_left", "turn_right"], help="default: random"
    )
    live.add_argument("--fps", type=float, default=5.0, help="frame rate of a folder of frames")
    live.add_argument("--mirrored", action="store_true", help="frames are mirrored (selfie view)")


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Works on files; no kiosk config needed."""
    emit = ctx.emit
    if args.command == "id" and args.id_command == "chip":
        return _id_chip(args, ctx)
    if args.command == "id":
        return _id_parse(args, emit) if args.id_command == "parse" else _id_read(args, emit)
    if args.face_command == "verify":
        return _face_verify(args, emit)
    return _face_liveness(args, emit)


def _id_parse(args: argparse.Namespace, emit: Any) -> int:
    from edge.identity.cccd import parse_cccd

    card = parse_cccd(args.payload)
    data = card.as_dict()
    emit(data, "\n".join(f"{k}: {v if v is not None else '-'}" for k, v in data.items()))
    return EXIT_OK


def _id_read(args: argparse.Namespace, emit: Any) -> int:
    from edge.identity.card import CardSides, read_side
    from edge.vision.face import find_faces

    sides = CardSides()
    for path in (args.image, args.other):
        if path is not None:
            sides.add(read_side(load_image(path), find_face=find_faces))
    needed = sides.needed
    if needed is not None:
        raise NeedMoreInput(needed)
    reading = sides.reading()
    data = {
        **reading.card.as_dict(),
        "face_found": reading.face_found,
        "no_portrait": reading.no_portrait,
        "sides": reading.sides,
        "mrz_found": reading.mrz is not None,
    }
    emit(data, "\n".join(f"{k}: {v if v is not None else '-'}" for k, v in data.items()))
    return EXIT_OK


def add_chip_parser(id_sub: Any, common: argparse.ArgumentParser) -> None:
    chip = id_sub.add_parser(
        "chip",
        parents=[common],
        help="read the card's chip (ICAO 9303, BAC) and check it (passive authentication)",
        description="Reader and trust list from [card_reader]; --simulate: the emulated card. "
        "Exit 1 when passive authentication fails. No portrait is written anywhere.",
    )
    chip.add_argument(
        "--mrz",
        help="the 3 MRZ lines of the card's back (newlines, \\n or spaces between them); "
        "default with --simulate: the emulated card's",
    )
    chip.add_argument(
        "--back",
        type=Path,
        help="a photo of the card's back: its MRZ is read by OCR (every check digit verified)",
    )


def _id_chip(args: argparse.Namespace, ctx: Context) -> int:
    from edge.identity.chip import read_chip
    from edge.identity.chip.wiring import chip_reader_from_config
    from edge.identity.mrz import parse_td1

    chip = chip_reader_from_config(ctx.config)
    if chip is None:
        raise BadInput('no chip reader: [card_reader] adapter = "none" (try --simulate)')
    if args.mrz:
        text = args.mrz.replace("\\n", "\n")
        key = parse_td1(text if "\n" in text else "\n".join(text.split())).key
    elif args.back:
        from edge.identity.card import read_mrz

        mrz = read_mrz(load_image(args.back))
        if mrz is None:
            raise BadInput(f"no MRZ with valid check digits found on {args.back}")
        key = mrz.key
    elif chip.development:
        from edge.sim.icao_card import sample_holder

        key = sample_holder().mrz_key()
    else:
        raise BadInput("--mrz or --back is needed: the MRZ on the card's back")
    reading = read_chip(chip.reader, key, chip.trust, timeout=chip.timeout_s)
    data = reading.as_dict()
    verdict = f"passive_auth: {reading.passive_auth} ({reading.reason})"
    if reading.development:
        verdict += " [development CSCA: not a real card]"
    lines = [f"{k}: {v if v is not None else '-'}" for k, v in data.items() if k != "timings_ms"]
    ctx.emit(data, "\n".join([*lines, verdict]))
    return EXIT_OK if reading.passive_auth == "valid" else EXIT_FAILED


class NeedMoreInput(BadInput):
    """One side of the card is not enough (a 2024 card's back alone, or a front alone)."""

    code = "card_side_needed"

    def __init__(self, side: str) -> None:
        super().__init__(f"the {side} of the card is needed too: give a photo of it")
        self.side = side


def _face_verify(args: argparse.Namespace, emit: Any) -> int:
    from edge.identity.card import read_card
    from edge.identity.cccd import CardError
    from edge.vision.face import find_faces, verify

    card_image = load_image(args.card_image)
    source = "image"
    try:  # a whole card: take its portrait; a portrait photo: use it as it is
        reading = read_card(card_image, find_face=find_faces)
        if reading.flat is not None and reading.portrait_box is not None:  # a portrait()
            card_image, source = _with_margin(reading.flat, reading.portrait_box), "card portrait"
    except CardError:
        pass
    result = verify(card_image, load_image(args.live_image))
    data = {
        "match": result.match,
        "score": result.score,
        "threshold": result.threshold,
        "metric": result.metric,
        "reason": result.reason,
        "faces": {
            "card": {**result.card.as_dict(), "source": source},
            "live": result.live.as_dict(),
        },
    }
    verdict = "match" if result.match else f"no match ({result.reason})"
    emit(data, f"{verdict}: {result.metric} distance {result.score} (threshold {result.threshold})")
    return EXIT_OK if result.match else EXIT_FAILED


def _face_liveness(args: argparse.Namespace, emit: Any) -> int:
    from edge.vision.liveness import LivenessChallenge, Status

    challenge = LivenessChallenge(args.challenge, mirrored=args.mirrored)
    state = None
    try:
        for frame, t in frames_of(args.frames, args.fps):
            state = challenge.feed(frame, t)
            if state.status != Status.PENDING:
                break
    finally:
        challenge.close()
    if state is None:
        raise BadInput(f"no frames in {args.frames}")
    data = state.as_dict()
    emit(data, f"{data['kind']}: {data['status']} {data['reason']}".rstrip())
    return EXIT_OK if state.status == Status.PASSED else EXIT_FAILED


def load_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BadInput(f"cannot read an image from {path}")
    return image


def frames_of(source: Path, fps: float) -> Iterator[tuple[np.ndarray, float]]:
    """(frame, seconds) from a folder of images at fps, or from a video file's own clock."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for i, path in enumerate(files):
            yield load_image(path), i / fps
        return
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise BadInput(f"{source} is neither a folder of frames nor a readable video")
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame, capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
    finally:
        capture.release()


def _with_margin(flat: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return flat[max(0, y - h // 2) : y + h + h // 2, max(0, x - w // 2) : x + w + w // 2]
