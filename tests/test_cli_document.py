"""`kiosk doc scan` and `kiosk ocr` on files: JSON shapes, exit codes, the citizen's messages.

The commands are run through edge.cli_document's own add_parsers/run, the way edge/cli.py runs
them; once edge/cli.py wires them, the last test also runs the real `kiosk` entry point.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import pytest

from edge.cli import document as cli_document
from edge.errors import EXIT_BAD_INPUT, EXIT_OK, BadInput, KioskError
from edge.texts import vietnamese
from edge.vision.page import DPI, MESSAGES
from tests import pages


def run(*argv: str) -> tuple[int, dict[str, Any] | None, KioskError | None]:
    """(exit code, the JSON printed, the error raised) of one command."""
    parser = argparse.ArgumentParser(prog="kiosk")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_document.add_parsers(sub, common, argparse.ArgumentParser)
    args = parser.parse_args(argv)
    printed: list[dict[str, Any]] = []

    def emit(data: Any, text: str) -> None:
        assert isinstance(text, str) and text
        printed.append(json.loads(json.dumps(data, ensure_ascii=False)))

    try:
        code = cli_document.run(args, emit)
        error = None
    except KioskError as err:
        code, error = err.exit_code, err
    return code, printed[0] if printed else None, error


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("doc")
    images = {
        "sheet.jpg": pages.cached_shot(pages.KINDS.index("residence_confirmation")).image,
        "blurred.jpg": pages.cached_shot(3, size=pages.PREVIEW, problem="blurred").image,
        "empty.jpg": pages.cached_shot(3, size=pages.PREVIEW, problem="empty").image,
        "card.png": pages.flat(pages.cached_document(pages.KINDS.index("cccd_front")), DPI),
    }
    out = {}
    for name, image in images.items():
        cv2.imwrite(str(folder / name), image)
        out[name] = folder / name
    out["dir"] = folder
    return out


def test_doc_scan_writes_the_flat_page(files: dict[str, Path]) -> None:
    target = files["dir"] / "flat.png"
    code, data, error = run("doc", "scan", str(files["sheet.jpg"]), "--out", str(target), "--json")
    assert code == EXIT_OK and error is None
    assert data is not None and data["found"] is True and data["usable"] is True
    assert len(data["quad"]) == 4 and data["messages"] == [] and data["problems"] == []
    assert set(data["quality"]) >= {"sharpness", "laplacian_var", "glare", "paper_level", "area"}
    assert data["paper"] == "A4" and data["dpi"] == DPI and data["rotation"] in (0, 90, 180, 270)
    written = cv2.imread(str(target))
    assert written.shape[1::-1] == tuple(data["size_px"]) == (1654, 2339)


@pytest.mark.parametrize(("name", "code"), [("blurred.jpg", "blurred"), ("empty.jpg", "no_page")])
def test_doc_scan_refuses_with_the_citizen_message(
    files: dict[str, Path], name: str, code: str
) -> None:
    target = files["dir"] / f"refused-{code}.png"
    exit_code, data, error = run("doc", "scan", str(files[name]), "--out", str(target), "--json")
    assert exit_code == EXIT_BAD_INPUT
    assert error is not None and error.code == "page_rejected"
    assert error.message_vi == vietnamese(MESSAGES[code]) and str(error) == MESSAGES[code]
    assert data is not None and data["problems"][0] == code
    assert data["messages"][0] == {
        "code": code,
        "vi": vietnamese(MESSAGES[code]),
        "en": MESSAGES[code],
    }
    assert not target.exists()


def test_doc_scan_force_writes_a_blurred_page_with_its_warning(files: dict[str, Path]) -> None:
    target = files["dir"] / "forced.png"
    argv = ("doc", "scan", str(files["blurred.jpg"]), "--out", str(target), "--force")
    code, data, _ = run(*argv)
    assert code == EXIT_OK and target.exists()
    assert data is not None and data["problems"] == ["blurred"]
    # --force cannot make a page out of an empty platen.
    argv = ("doc", "scan", str(files["empty.jpg"]), "--out", str(target), "--force")
    assert run(*argv)[0] == EXIT_BAD_INPUT


def test_ocr_of_a_photographed_sheet_with_the_name_check(files: dict[str, Path]) -> None:
    doc = pages.document(pages.KINDS.index("residence_confirmation"), render=False)
    holder = doc.names[0]
    code, data, _ = run("ocr", str(files["sheet.jpg"]), "--name", holder.upper(), "--json")
    assert code == EXIT_OK and data is not None
    assert data["rectified"] is True and data["doc_type"] == "residence_confirmation"
    assert pages.cer(doc.text, data["text"]) < 0.05
    assert data["fields"]["date_of_birth"] == doc.fields["date_of_birth"]
    assert data["lines"][0].keys() == {"text", "box", "confidence"}
    assert 0 < data["mean_confidence"] <= 100
    assert data["name_check"]["result"] == "match"
    assert data["name_check"]["message_vi"].startswith("Họ tên trên giấy tờ khớp")
    _, other, _ = run("ocr", str(files["sheet.jpg"]), "--name", "Người Khác Hẳn", "--json")
    assert other is not None and other["name_check"]["result"] == "mismatch"


def test_ocr_of_a_flat_card_scan_reads_its_qr(files: dict[str, Path]) -> None:
    doc = pages.document(pages.KINDS.index("cccd_front"), render=False)
    code, data, _ = run("ocr", str(files["card.png"]), "--json")
    assert code == EXIT_OK and data is not None
    assert data["rectified"] is False  # a scan: read as it is
    assert data["doc_type"] == "cccd_front" and data["page"]["paper"] == "ID-1"
    assert data["qr"] == [doc.qr_text]
    assert data["fields"]["number"] == doc.fields["number"]
    assert "name_check" not in data


def test_bad_arguments(files: dict[str, Path]) -> None:
    with pytest.raises(BadInput, match="cannot read"):
        cli_document.run(_args("ocr", str(files["dir"] / "missing.jpg")), lambda *a: None)
    with pytest.raises(BadInput, match="--name"):
        cli_document.run(_args("ocr", str(files["card.png"]), "--name", " "), lambda *a: None)
    target = str(files["dir"] / "x.png")
    with pytest.raises(BadInput, match="--dpi"):
        cli_document.run(
            _args("doc", "scan", str(files["sheet.jpg"]), "--out", target, "--dpi", "5000"),
            lambda *a: None,
        )


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kiosk")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_document.add_parsers(sub, argparse.ArgumentParser(add_help=False), argparse.ArgumentParser)
    return parser.parse_args(argv)


def test_the_kiosk_command_once_wired(files: dict[str, Path]) -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "edge", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    if not re.search(r"\bocr\b", help_text):
        pytest.skip("edge/cli.py does not wire cli_document yet")
    done = subprocess.run(
        [sys.executable, "-m", "edge", "ocr", str(files["card.png"]), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["doc_type"] == "cccd_front"
    target = files["dir"] / "wired.png"
    argv = ["doc", "scan", str(files["empty.jpg"]), "--out", str(target), "--json"]
    refused = subprocess.run(
        [sys.executable, "-m", "edge", *argv], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert json.loads(refused.stderr)["error"]["message_vi"] == vietnamese(MESSAGES["no_page"])
