"""`kiosk doc scan` and `kiosk ocr`: the document pipeline on files, for technicians and tests."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import cv2

from edge.cli.context import Context
from edge.errors import EXIT_OK, BadInput

logger = logging.getLogger(__name__)


def add_parsers(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    from edge.vision.page import DPI

    doc = sub.add_parser("doc", parents=[common], help="scan document pages")
    doc.set_defaults(handler=handle)
    doc_sub = doc.add_subparsers(dest="doc_command", required=True, parser_class=parser_class)
    scan = doc_sub.add_parser(
        "scan",
        parents=[common],
        help="find the page in a photo of the platen, judge the shot, write the flat page "
        "(exit 2 with what to fix when it is not usable)",
    )
    scan.add_argument("image", type=Path, help="a camera frame (PNG, JPEG ...)")
    scan.add_argument("--out", type=Path, required=True, help="the flat page to write (.png, .jpg)")
    scan.add_argument("--dpi", type=int, default=DPI, help=f"of the flat page (default {DPI})")
    scan.add_argument(
        "--force",
        action="store_true",
        help="write the page despite blur, glare or a finger, as a manual capture does",
    )
    ocr = sub.add_parser(
        "ocr", parents=[common], help="read a document (Vietnamese): text, type, key fields"
    )
    ocr.set_defaults(handler=handle)
    ocr.add_argument("image", type=Path, help="a camera frame of the platen, or a flat scan")
    ocr.add_argument("--name", help="the identified citizen's name, to compare with the document's")


def handle(args: argparse.Namespace, ctx: Context) -> int:
    return run(args, ctx.emit)  # works on files; no kiosk config needed


def run(args: argparse.Namespace, emit: Any) -> int:
    if args.command == "doc":
        return _scan(args, emit)
    return _ocr(args, emit)


def _scan(args: argparse.Namespace, emit: Any) -> int:
    from edge.vision.ocr import OcrUnavailable, shared_ocr
    from edge.vision.page import PageRejected, check_page, scan
    from edge.vision.qr import read_image

    if not 50 <= args.dpi <= 600:
        raise BadInput("--dpi must be between 50 and 600")
    image = read_image(args.image)
    check = check_page(image)
    data: dict[str, Any] = {
        "found": check.found,
        "usable": check.usable,
        "quad": check.as_dict()["quad"],
        "quality": check.quality.as_dict(),
        "problems": list(check.problems),
        "messages": check.messages(),
        "glare_boxes": [list(b) for b in check.glare_boxes],
        "finger_box": None if check.finger_box is None else list(check.finger_box),
    }
    if not (check.usable or (args.force and check.capturable)):
        emit(data, _messages_text(check.messages()) or "no page")
        raise PageRejected(check)
    page = scan(image, dpi=args.dpi, check=check)
    try:
        page = shared_ocr().upright(page)
    except OcrUnavailable as err:  # the flat page is still worth writing, as it lies
        logger.warning("page left as it lies: %s", err)
    if not cv2.imwrite(str(args.out), page.image):
        raise BadInput(f"cannot write an image to {args.out} (use .png or .jpg)")
    data.update(
        out=str(args.out),
        dpi=page.dpi,
        paper=page.paper,
        size_mm=list(page.size_mm),
        size_px=[page.image.shape[1], page.image.shape[0]],
        rotation=page.rotation * 90,
        skew_deg=round(page.skew_deg, 2),
        qr=[code.text for code in page.qr],
    )
    text = f"page written to {args.out}: {page.paper}, {page.dpi} dpi"
    if check.messages():
        text += "\n" + _messages_text(check.messages())
    emit(data, text)
    return EXIT_OK


def _ocr(args: argparse.Namespace, emit: Any) -> int:
    from edge.documents.doctype import check_name, recognise
    from edge.vision.ocr import shared_ocr
    from edge.vision.page import check_page, flat_page, scan
    from edge.vision.qr import read_image

    if args.name is not None and not args.name.strip():
        raise BadInput("--name is empty")
    image = read_image(args.image)
    check = check_page(image)
    # A photographed sheet is cut out and flattened; anything else (a scan, a sheet filling the
    # picture, a page cut off) is read as it is.
    rectified = check.capturable
    page = scan(image, check=check) if rectified else flat_page(image)
    page, reading = shared_ocr().read_page(page)
    recognition = recognise(reading.text, lines=reading.lines, page_size_mm=page.size_mm)
    data: dict[str, Any] = {
        "text": reading.text,
        "lines": [line.as_dict() for line in reading.lines],
        "mean_confidence": round(reading.mean_confidence, 1),
        "doc_type": recognition.doc_type,
        "doc_label_vi": recognition.label_vi,
        "fields": recognition.fields,
        "qr": [code.text for code in page.qr],
        "rectified": rectified,
        "page": {
            "paper": page.paper,
            "dpi": page.dpi,
            "size_mm": list(page.size_mm),
            "rotation": page.rotation * 90,
        },
        "problems": list(check.problems) if rectified else [],
    }
    summary = [reading.text, "", f"type: {recognition.doc_type} ({recognition.label_vi})"]
    summary += [f"{key}: {value}" for key, value in recognition.fields.items()]
    if args.name is not None:
        verdict = check_name(recognition, args.name, text=reading.text)
        data["name_check"] = verdict.as_dict()
        summary.append(f"name check: {verdict.result} - {verdict.message_vi}")
    emit(data, "\n".join(summary))
    return EXIT_OK


def _messages_text(messages: list[dict[str, str]]) -> str:
    return "\n".join(f"{m['vi']} ({m['en']})" for m in messages)
