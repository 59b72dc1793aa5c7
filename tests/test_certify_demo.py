"""`kiosk-fleet demo certify`, run as the user runs it (a subprocess): a real Mosquitto, the real
console and Certifier, SoftHSM2 development tokens; the copies checked by pdfsig, pdftotext and
the kiosk's own verifier, which must call them development, never valid."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from edge.copies.code import check_char
from edge.copies.verify import CERTIFICATION_DIR, TrustStore, verify_pdf
from fleet.certify.demo import AGENCY_NAME, KIOSK_ID, OFFICER_NAME, request_code
from tests.copies_helpers import nss_db, pdfsig
from tests.pages import document

REPO = Path(__file__).resolve().parent.parent
BOOK = re.compile(r"^01/\d{4}-SCTĐT/BS$")


def _page(folder: Path, name: str, seed: int, kind: str) -> Path:
    """An invented document page at 150 dpi, as a PNG that says its dpi."""
    doc = document(seed, kind, dpi=150)
    assert doc.image is not None
    path = folder / name
    Image.fromarray(doc.image[:, :, ::-1]).save(path, dpi=(150, 150))
    return path


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Two originals: a one-page birth certificate and a two-page land-use certificate."""
    folder = tmp_path_factory.mktemp("originals")
    p1 = _page(folder, "khai-sinh.png", 11, "birth_certificate")
    p2 = _page(folder, "so-do-1.png", 12, "land_use_certificate")
    p3 = _page(folder, "so-do-2.png", 13, "other")
    return [str(p1), f"{p2},{p3}"]


def _env(tmp: Path) -> dict[str, str]:
    """The demo's temp dir under `tmp` (so the test sees it removed), the tree on the path."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    return {**env, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}


def _demo(args: list[str], tmp: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet.cli", "demo", "certify", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(tmp),
        cwd=tmp,
    )


def _mosquittos(marker: Path) -> list[str]:
    """Running mosquitto processes whose command line names a path under `marker`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "mosquitto" in cmd and str(marker) in cmd:
            found.append(cmd)
    return found


@pytest.fixture(scope="module")
def demo_run(originals: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("demo")
    out, tmp = root / "copies", root / "tmp"
    started = time.monotonic()
    result = _demo(
        ["--original", originals[0], "--original", originals[1], "--out", str(out), "--json"], tmp
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-4000:]
    return {"result": result, "out": out, "tmp": tmp, "seconds": seconds, "root": root}


def test_two_originals_come_back_as_two_numbered_copies(demo_run: dict[str, Any]) -> None:
    result, out = demo_run["result"], demo_run["out"]
    body = json.loads(result.stdout)  # stdout holds the JSON only; the logs are on stderr
    assert list(body) == ["copies"]
    copies = body["copies"]
    assert [sorted(c) for c in copies] == [["book", "number", "pdf"]] * 2
    assert [c["number"] for c in copies] == [1, 2]
    assert copies[0]["book"] == copies[1]["book"] and BOOK.match(copies[0]["book"])
    pdfs = [Path(c["pdf"]) for c in copies]
    assert all(p.parent == out.resolve() and p.is_file() for p in pdfs)
    # <out>/<code>.pdf, the codes the kiosk's own rule makes (the check character included).
    codes = [p.stem for p in pdfs]
    for n, code in enumerate(codes, 1):
        body_part = code.rsplit("-", 1)[0]
        assert code.startswith(f"{KIOSK_ID}-") and body_part.endswith(f"-{n:06d}")
        assert code[-1] == check_char(body_part)
        assert request_code(KIOSK_ID, _date(code.split("-")[-3]), n) == code
    assert "kiosk sent" in result.stderr and "officer approved" in result.stderr
    assert "OCR" in result.stderr  # says that OCR was not run
    print(f"demo wall time: {demo_run['seconds']:.1f} s")


def _date(yymmdd: str) -> Any:
    import datetime as dt

    return dt.datetime.strptime(yymmdd, "%y%m%d").date()


def test_each_original_is_one_copy_with_its_pages_and_the_statement(
    demo_run: dict[str, Any],
) -> None:
    copies = json.loads(demo_run["result"].stdout)["copies"]
    pages = []
    for c in copies:
        info = subprocess.run(["pdfinfo", c["pdf"]], capture_output=True, text=True, timeout=60)
        pages.append(int(re.search(r"Pages:\s+(\d+)", info.stdout)[1]))  # type: ignore[index]
    assert pages == [2, 3]  # the original's pages and the certification page
    for c in copies:
        text = subprocess.run(
            ["pdftotext", c["pdf"], "-"], capture_output=True, text=True, timeout=60
        ).stdout
        assert "LỜI CHỨNG CHỨNG THỰC BẢN SAO TỪ BẢN CHÍNH" in text
        assert f"Số chứng thực: {c['number']:02d}" in text
        assert f"Quyển số: {c['book']}" in text
        assert OFFICER_NAME in text and AGENCY_NAME in text
        assert Path(c["pdf"]).stem in text


def test_pdfsig_sees_two_signatures_chaining_to_the_development_root(
    demo_run: dict[str, Any],
) -> None:
    out: Path = demo_run["out"]
    root_pem = out / "development-root.pem"
    assert root_pem.is_file()
    nss = nss_db(demo_run["root"] / "nss", root_pem)
    for c in json.loads(demo_run["result"].stdout)["copies"]:
        plain = pdfsig(Path(c["pdf"]))
        assert plain.count("Signature is Valid.") == 2, plain
        assert "Signature #3" not in plain
        trusted = pdfsig(Path(c["pdf"]), nss)
        assert trusted.count("Signature is Valid.") == 2, trusted
        assert trusted.count("Certificate is Trusted.") == 2, trusted
        assert trusted.count("DEVELOPMENT") >= 2  # the officer's and the seal's names say so


def test_the_kiosk_calls_the_copies_development_never_valid(
    demo_run: dict[str, Any], tmp_path: Path
) -> None:
    copies = json.loads(demo_run["result"].stdout)["copies"]
    # A kiosk that trusts nothing, and one told (wrongly) to trust the demo's root.
    bare = TrustStore(tmp_path / "bare")
    fooled_dir = tmp_path / "fooled"
    (fooled_dir / CERTIFICATION_DIR).mkdir(parents=True)
    (fooled_dir / CERTIFICATION_DIR / "demo.pem").write_bytes(
        (demo_run["out"] / "development-root.pem").read_bytes()
    )
    fooled_dir.joinpath("demo.pem").write_bytes(
        (demo_run["out"] / "development-root.pem").read_bytes()
    )
    for c in copies:
        data = Path(c["pdf"]).read_bytes()
        for trust in (bare, TrustStore(fooled_dir)):
            verdict = verify_pdf(data, trust)
            assert verdict.status == "development", verdict
            assert not verdict.ok and verdict.development
            assert verdict.message_vi.startswith("Bản sao KHÔNG hợp lệ")
            facts = verdict.as_dict()
            assert (facts["code"], facts["number"], facts["book"]) == (
                Path(c["pdf"]).stem,
                f"{c['number']:02d}",
                c["book"],
            )
            assert facts["officer"] == OFFICER_NAME


def test_the_demo_leaves_no_temp_dir_and_no_broker(demo_run: dict[str, Any]) -> None:
    tmp: Path = demo_run["tmp"]
    assert list(tmp.iterdir()) == []  # its temp dir (CA keys, tokens, database) is gone
    assert _mosquittos(tmp) == []


def test_a_missing_image_is_refused_before_anything_starts(
    originals: list[str], tmp_path: Path
) -> None:
    out, tmp = tmp_path / "copies", tmp_path / "tmp"
    missing = tmp_path / "khong-co.png"
    started = time.monotonic()
    result = _demo(
        ["--original", originals[0], "--original", f"{originals[0]},{missing}", "--out", str(out)],
        tmp,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"no image file {missing}" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not out.exists() and list(tmp.iterdir()) == []  # nothing made, nothing started
    assert time.monotonic() - started < 30

    not_image = tmp_path / "notes.png"
    not_image.write_text("not a picture")
    result = _demo(["--original", str(not_image), "--out", str(out)], tmp, timeout=60)
    assert result.returncode == 2 and "not an image" in result.stderr
    assert not out.exists()


def test_without_mosquitto_it_says_what_to_install(
    originals: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fleet import cli
    from fleet.certify import demo

    monkeypatch.setattr(demo.shutil, "which", lambda name: None)
    monkeypatch.setattr(demo, "MOSQUITTO_PATHS", ())
    out = tmp_path / "copies"
    code = cli.main(["demo", "certify", "--original", originals[0], "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "mosquitto and SoftHSM2" in err and "sudo apt install mosquitto softhsm2" in err
    assert not out.exists()


def test_ctrl_c_stops_the_broker_and_removes_the_temp_dir(
    originals: list[str], tmp_path: Path
) -> None:
    out, tmp = tmp_path / "copies", tmp_path / "tmp"
    command = [sys.executable, "-m", "fleet.cli", "demo", "certify", "--original", originals[1]]
    proc = subprocess.Popen(
        [*command, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp),
        cwd=tmp,
    )
    try:
        # Interrupted once the broker runs (the first log line names its port).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _mosquittos(tmp):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.02)
        assert _mosquittos(tmp), "the demo's broker never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, err[-3000:]
    assert _mosquittos(tmp) == []
    assert list(tmp.iterdir()) == []
