"""The certification book: one gap-free number per approval, per agency and year, taken in the
approval's transaction. SQLite and a real PostgreSQL; a process killed with SIGKILL at random
moments while it approves; two officers at once; the register's CSV and PDF."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fleet.certify.service import CertifyRefused
from fleet.store import FleetStore
from fleet.store.schema import cert_audit, cert_book, cert_requests
from protocol.crypto import DataKey
from tests.certify_helpers import (
    AGENCY,
    TestSigner,
    add_officer,
    certifier_for_tests,
    page_jpeg,
    seed_requests,
)
from tests.fleet_console_helpers import Postgres, database_url, running_postgres
from tests.softhsm import PIN

REPO = Path(__file__).resolve().parent.parent
TZ = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")
OFFICER = "tran.thi.binh"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> TestSigner:
    return TestSigner(tmp_path_factory.mktemp("signer"))


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return page_jpeg()


def _url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _url(request, tmp_path)


@pytest.fixture
def store(url: str, tmp_path: Path) -> Iterator[FleetStore]:
    s = FleetStore(url, data_key=DataKey.load_or_create(tmp_path / "data.key")).create()
    add_officer(s)
    yield s
    s.close()


def _local(*args: int) -> float:
    return dt.datetime(*args, tzinfo=TZ).timestamp()  # type: ignore[misc]


def _book_numbers(store: FleetStore, year: int) -> list[int]:
    return [r["number"] for r in store.cert_book(AGENCY, year)]


def _check_book(store: FleetStore, year: int) -> int:
    """The book is 1..N, each approved request has exactly one row, nothing approved without a
    row, the counter says N, and every stored copy is the one its hash names."""
    with store.engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(cert_requests.c.id, cert_requests.c.status)).all())
        rows = conn.execute(
            sa.select(cert_book.c.number, cert_book.c.request_id, cert_book.c.pdf_sha256)
        ).all()
    numbers = sorted(r.number for r in rows)
    assert numbers == list(range(1, len(numbers) + 1)), f"gap or repeat: {numbers}"
    booked = [r.request_id for r in rows]
    assert len(booked) == len(set(booked)), "a request has two numbers"
    approved = {k for k, v in statuses.items() if v == "approved"}
    assert approved == set(booked), "approved without a book row, or a row not approved"
    assert store.cert_counter(AGENCY, year) == len(numbers)
    audited = [a["request_id"] for a in store.cert_audit() if a["action"] == "approve"]
    assert sorted(audited) == sorted(booked), "an approval audited but not booked, or not audited"
    for r in rows:
        copy = store.cert_copy(r.request_id)
        assert copy is not None
        assert hashlib.sha256(copy["book"]["pdf"]).hexdigest() == r.pdf_sha256
    return len(numbers)


# --- kill -9 ---------------------------------------------------------------------------------


def _lines(proc: subprocess.Popen[str], out: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.put(line.strip())


def test_kill_9_while_approving_leaves_no_gap_and_no_repeat(
    url: str, store: FleetStore, tmp_path: Path, signer: TestSigner, jpeg: bytes
) -> None:
    n = 40  # more than 8 short runs approve (about 0.25 s a copy with SoftHSM2 here)
    codes = seed_requests(store, n, start=time.time() - 600, jpeg=jpeg)
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    seed_note = f"seed {rng.random():.6f}"
    cmd = [
        sys.executable,
        "-m",
        "tests.certify_helpers",
        "approve-loop",
        url,
        str(tmp_path / "data.key"),
        str(signer.root),
        OFFICER,
    ]
    env = {"PYTHONPATH": str(REPO)}
    kills_mid_run = 0
    done_at_kills: list[int] = []
    for run in range(8):
        tokens = TestSigner.private_tokens(tmp_path / f"run-{run}")
        proc = subprocess.Popen(
            cmd, cwd=REPO, env={**tokens, **env}, stdout=subprocess.PIPE, text=True
        )
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_lines, args=(proc, lines), daemon=True)
        reader.start()
        try:
            lines.get(timeout=60)  # one approval done: the loop is running
        except queue.Empty:
            proc.kill()
            proc.wait(30)
            raise AssertionError("the approve loop approved nothing in 60 s") from None
        time.sleep(rng.uniform(0.0, 0.6))  # then somewhere in the next approval(s)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills_mid_run += 1
        proc.wait(30)
        reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
        done_at_kills.append(_check_book(store, dt.datetime.now(TZ).year))
    print(f"\n[kill -9, {store.dialect}] book size after each kill: {done_at_kills} ({seed_note})")
    assert kills_mid_run == 8, f"the loop ended before every kill ({seed_note})"
    done = _check_book(store, dt.datetime.now(TZ).year)
    assert 0 < done < n, f"kills should land mid-run ({done} of {n}, {seed_note})"
    # Restarted once more without a kill: it finishes the book.
    tokens = TestSigner.private_tokens(tmp_path / "run-last")
    last = subprocess.run(
        cmd, cwd=REPO, env={**tokens, **env}, capture_output=True, text=True, timeout=300
    )
    assert last.returncode == 0, last.stderr[-2000:]
    assert _check_book(store, dt.datetime.now(TZ).year) == n
    assert {r["request_id"] for r in store.cert_book(AGENCY, dt.datetime.now(TZ).year)} == set(
        codes
    )


# --- two officers at once --------------------------------------------------------------------


@pytest.mark.parametrize("url", ["postgresql"], indirect=True)
def test_two_officers_approving_at_once_get_unique_contiguous_numbers(
    store: FleetStore, signer: TestSigner, jpeg: bytes
) -> None:
    add_officer(store, "le.van.cuong", full_name="Lê Văn Cường")
    n = 16
    codes = seed_requests(store, n, start=time.time() - 600, jpeg=jpeg)
    todo: queue.Queue[str] = queue.Queue()
    for code in codes:
        todo.put(code)
    clashes: list[str] = []
    timings: list[float] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def officer(username: str, order: list[str]) -> None:
        certifier = certifier_for_tests(store, signer)
        start.wait()
        try:
            for code in order:
                t = time.monotonic()
                try:
                    certifier.approve(code, username, pin=PIN, remote_addr="10.0.0.1")
                    timings.append(time.monotonic() - t)
                except CertifyRefused:
                    clashes.append(code)  # the other officer had it: no number taken
        except BaseException as err:
            errors.append(err)

    # Both walk the same queue, one from each end: they meet in the middle on the same requests.
    threads = [
        threading.Thread(target=officer, args=(OFFICER, codes)),
        threading.Thread(target=officer, args=("le.van.cuong", list(reversed(codes)))),
    ]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    wall = time.monotonic() - began
    assert not errors, errors
    assert _check_book(store, dt.datetime.now(TZ).year) == n
    assert len(clashes) == n  # each request approved once; the other officer's try refused
    officers = {r["officer"] for r in store.cert_book(AGENCY, dt.datetime.now(TZ).year)}
    assert officers == {OFFICER, "le.van.cuong"}
    print(
        f"\n[two officers, PostgreSQL] {n} approvals in {wall:.2f} s wall; one approval "
        f"(render + 2 signatures, counter row locked) {sorted(timings)[len(timings) // 2]:.3f} s "
        f"median, {max(timings):.3f} s max"
    )


# --- what takes a number and what does not ---------------------------------------------------


def test_year_rollover_starts_at_one(store: FleetStore, signer: TestSigner, jpeg: bytes) -> None:
    codes = seed_requests(store, 4, start=_local(2026, 12, 31, 9, 0), jpeg=jpeg)
    now = [_local(2026, 12, 31, 16, 59, 58)]
    certifier = certifier_for_tests(store, signer, clock=lambda: now[0])
    a = certifier.approve(codes[0], OFFICER, pin=PIN, remote_addr="")
    b = certifier.approve(codes[1], OFFICER, pin=PIN, remote_addr="")
    now[0] = _local(2027, 1, 1, 0, 0, 1)  # local midnight, still 2026 in UTC
    c = certifier.approve(codes[2], OFFICER, pin=PIN, remote_addr="")
    d = certifier.approve(codes[3], OFFICER, pin=PIN, remote_addr="")
    assert [(e.year, e.number) for e in (a, b, c, d)] == [
        (2026, 1),
        (2026, 2),
        (2027, 1),
        (2027, 2),
    ]
    assert a.book == "01/2026-SCTĐT/BS" and c.book == "01/2027-SCTĐT/BS"
    assert _book_numbers(store, 2026) == [1, 2] and _book_numbers(store, 2027) == [1, 2]


def test_refusal_and_see_staff_take_no_number(
    store: FleetStore, signer: TestSigner, jpeg: bytes
) -> None:
    published: list[tuple[str, dict[str, Any]]] = []
    certifier = certifier_for_tests(store, signer, published=published)
    codes = seed_requests(store, 4, start=time.time() - 60, jpeg=jpeg)
    year = dt.datetime.now(TZ).year
    certifier.refuse(codes[0], OFFICER, reason_code="secret", remote_addr="10.1.1.1")
    certifier.see_staff(codes[1], OFFICER, note="Mời gặp cán bộ", remote_addr="10.1.1.1")
    assert store.cert_counter(AGENCY, year) == 0 and _book_numbers(store, year) == []
    entry = certifier.approve(codes[2], OFFICER, pin=PIN, remote_addr="10.1.1.1")
    assert entry.number == 1
    with pytest.raises(CertifyRefused):
        certifier.approve(codes[0], OFFICER, pin=PIN, remote_addr="10.1.1.1")  # refused already
    with pytest.raises(CertifyRefused):
        certifier.refuse(codes[3], OFFICER, reason_code="no-such-reason", remote_addr="")
    with pytest.raises(CertifyRefused):
        certifier.refuse(codes[3], OFFICER, reason_code="other", remote_addr="")  # needs text
    assert store.cert_counter(AGENCY, year) == 1
    assert [m["status"] for _, m in published] == ["refused", "see_staff", "approved"]
    refused = published[0][1]
    assert refused["reason_code"] == "secret" and "dấu mật" in refused["reason_vi"]
    audit = [(a["action"], a["request_id"], a["remote_addr"]) for a in store.cert_audit()]
    assert audit == [
        ("refuse", codes[0], "10.1.1.1"),
        ("see_staff", codes[1], "10.1.1.1"),
        ("approve", codes[2], "10.1.1.1"),
    ]


def test_a_signing_failure_commits_nothing(
    store: FleetStore, signer: TestSigner, jpeg: bytes
) -> None:
    codes = seed_requests(store, 2, start=time.time() - 60, jpeg=jpeg)

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("token removed")

    published: list[tuple[str, dict[str, Any]]] = []
    certifier = certifier_for_tests(store, signer, published=published)
    certifier.make_copy = broken
    with pytest.raises(RuntimeError):
        certifier.approve(codes[0], OFFICER, pin=PIN, remote_addr="")
    year = dt.datetime.now(TZ).year
    assert store.cert_counter(AGENCY, year) == 0
    assert [i.id for i in certifier.queue(AGENCY)] == codes  # still waiting
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cert_audit)).scalar() == 0
    assert published == []
    certifier.make_copy = signer.make_copy
    assert certifier.approve(codes[1], OFFICER, pin=PIN, remote_addr="").number == 1


def test_only_an_officer_of_the_agency_decides(
    store: FleetStore, signer: TestSigner, jpeg: bytes
) -> None:
    add_officer(store, "other.agency", agency="HCM-Q1")
    add_officer(store, "gone", active=False)
    add_officer(store, "centre.admin", role="admin")
    certifier = certifier_for_tests(store, signer)
    (code,) = seed_requests(store, 1, start=time.time() - 60, jpeg=jpeg)
    for who in ("other.agency", "gone", "centre.admin", "nobody"):
        with pytest.raises(CertifyRefused):
            certifier.approve(code, who, pin=PIN, remote_addr="")
        with pytest.raises(CertifyRefused):
            certifier.refuse(code, who, reason_code="damaged", remote_addr="")
    assert [i.id for i in certifier.queue(AGENCY)] == [code]
    assert store.cert_counter(AGENCY, dt.datetime.now(TZ).year) == 0


# --- the register ----------------------------------------------------------------------------


def test_register_export_csv_pdf_and_cli(
    store: FleetStore, url: str, signer: TestSigner, jpeg: bytes, tmp_path: Path
) -> None:
    codes = seed_requests(store, 3, start=_local(2026, 3, 2, 8, 0), jpeg=jpeg)
    now = [_local(2026, 3, 2, 9, 15)]
    certifier = certifier_for_tests(store, signer, clock=lambda: now[0])
    certifier.approve(codes[0], OFFICER, pin=PIN, remote_addr="")
    now[0] = _local(2026, 3, 3, 10, 0)
    certifier.approve(codes[1], OFFICER, pin=PIN, remote_addr="")
    now[0] = _local(2026, 4, 1, 0, 30)
    certifier.approve(codes[2], OFFICER, pin=PIN, remote_addr="")

    data = certifier.export(AGENCY, year=2026, month=3, day=None, fmt="csv")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:8] == [
        "Số chứng thực",
        "Quyển số",
        "Ngày chứng thực",
        "Người yêu cầu",
        "Giấy tờ",
        "Số trang",
        "Người ký chứng thực",
        "Lệ phí (đồng)",
    ]
    assert [r[0] for r in rows[1:]] == ["1", "2"]  # April's number 3 is not in March
    assert rows[1][1:8] == [
        "01/2026-SCTĐT/BS",
        "02/03/2026 09:15",
        "Nguyễn Văn An",
        "birth_certificate",
        "1",
        "Trần Thị Bình (Công chức Tư pháp - Hộ tịch)",
        "2000",
    ]
    one_day = certifier.export(AGENCY, year=2026, month=3, day=3, fmt="csv")
    assert [r[0] for r in csv.reader(io.StringIO(one_day.decode("utf-8-sig")))][1:] == ["2"]

    # The CLI, on the same database, writes the PDF register.
    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[store]\nurl = "{url}"\ndata_key_file = "{tmp_path / "data.key"}"\n'
        f'[certify]\nagency_id = "{AGENCY}"\nagency_name = "UBND phường Ba Đình"\n',
        encoding="utf-8",
    )
    out = tmp_path / "book.pdf"
    run = subprocess.run(
        [sys.executable, "-m", "fleet.cli", "-c", str(config), "certify", "book",
         "--year", "2026", "--format", "pdf", "--out", str(out)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "3 entries" in run.stdout
    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "SỔ CHỨNG THỰC BẢN SAO ĐIỆN TỬ TỪ BẢN CHÍNH" in text
    assert "UBND PHƯỜNG BA ĐÌNH" in text
    assert text.count("Nguyễn Văn An") == 3 and "Trần Thị Bình" in text
    assert "01/04/2026" in text and "00:30" in text  # the date cell wraps
    bad = subprocess.run(
        [sys.executable, "-m", "fleet.cli", "-c", str(config), "certify", "book",
         "--year", "2026", "--day", "3", "--format", "csv", "--out", str(tmp_path / "x.csv")],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode != 0 and "--day needs --month" in bad.stderr


def test_configured_revocation_data_makes_the_agency_seal_b_lt(
    store: FleetStore, signer: TestSigner, jpeg: bytes, tmp_path: Path
) -> None:
    """[certify] crl_files + trust_root_files: the seal carries the CRL in the document's DSS
    (PAdES B-LT), checked by reading the signed copy back with pyHanko."""
    from cryptography.hazmat.primitives.serialization import Encoding
    from pyhanko.pdf_utils.reader import PdfFileReader

    crl, root = tmp_path / "root.crl", tmp_path / "root.pem"
    crl.write_bytes(signer.pki.crl.public_bytes(Encoding.PEM))  # PEM here, DER also read
    root.write_bytes(signer.pki.root.public_bytes(Encoding.PEM))
    config = signer.config(crl_files=[crl], trust_root_files=[root])
    assert [len(x) for x in config.revocation_data()] == [1, 1]
    code = seed_requests(store, 1, start=time.time() - 60, jpeg=jpeg)[0]
    certifier = certifier_for_tests(store, signer, config=config)
    entry = certifier.approve(code, OFFICER, pin=PIN, remote_addr="")
    found = store.cert_copy(entry.copy_code)
    assert found is not None and found["book"] is not None
    reader = PdfFileReader(io.BytesIO(found["book"]["pdf"]))
    dss = reader.root.get("/DSS")
    dss = dss.get_object() if dss is not None else None
    assert dss is not None and len(dss["/CRLs"]) >= 1
    assert [s.field_name for s in reader.embedded_signatures] == ["OfficerSignature", "AgencySeal"]
    # Without both settings the seal stays B-B/B-T: no DSS.
    assert signer.config(crl_files=[crl]).revocation_data() == ([], [])
