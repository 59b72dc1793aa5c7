"""Keeping the catalog current: a province's list (real XLSX and CSV files) merged by official
code with `kiosk-fleet catalog import`, the diff, validity dates on the kiosk, and `catalog
push` through a real Mosquitto and the running console to the real daemon.

The codes 9.0000xx are made up for these tests (not the national database's); 2.000815 is the
copy-certification code the issue names."""

from __future__ import annotations

import base64
import copy
import csv
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edge.services.catalog import CatalogService, ProcedureNotFound
from fleet import cli
from fleet.catalog_import import CatalogImportError, packed_args
from fleet.console import Console, build_console
from fleet.operators import _decrypt, create_operator
from tests.conftest import start_daemon
from tests.mqtt_broker import Broker, FleetPki, Peer, wait_until
from tests.test_daemon_fleet import KIOSK, OPERATOR, fleet_config
from tests.test_fleet_console import PASSWORD, console_config

REPO = Path(__file__).resolve().parents[1]
HEADER = [
    "STT",
    "Mã thủ tục (Mã TTHC)",
    "Tên thủ tục hành chính",
    "Lĩnh vực",
    "Cấp thực hiện",
    "Cơ quan thực hiện",
    "Thời hạn giải quyết",
    "Phí, lệ phí",
    "Căn cứ pháp lý",
    "Mức độ DVC (toàn trình / một phần)",
]
# The list's rows after the header: a column-number row, sections, a blank line, a footnote.
ROWS: list[list[Any]] = [
    ["(1)", "(2)", "(3)", "(4)", "(5)", "(6)", "(7)", "(8)", "(9)", "(10)"],
    ["I. LĨNH VỰC HỘ TỊCH"],
    [
        1,
        "9.000001",
        "Đăng ký khai sinh (tên trong danh mục)",
        "",
        "Cấp xã",
        "Ủy ban nhân dân cấp xã",
        "Ngay trong ngày tiếp nhận hồ sơ",
        "Miễn lệ phí",
        "Luật Hộ tịch số 60/2014/QH13 ngày 20/11/2014\n- Nghị định thử số 1/2099/NĐ-CP",
        "Toàn trình",
    ],
    [
        2,
        "9.000002",
        "Đăng ký kết hôn",
        "",
        "Cấp xã",
        "Ủy ban nhân dân cấp xã",
        "03 ngày làm việc",
        "Lệ phí: 30.000 đồng/việc",
        "Luật Hộ tịch số 60/2014/QH13 ngày 20/11/2014",
        "Một phần",
    ],
    [],
    ["II. LĨNH VỰC CHỨNG THỰC"],
    [
        3,
        2.000815,  # typed as a number in the sheet
        "Chứng thực bản sao từ bản chính giấy tờ, văn bản",
        "Chứng thực",
        "Cấp xã",
        "Ủy ban nhân dân cấp xã",
        "Trong ngày; 0,5 ngày làm việc nếu nhận sau 15 giờ",
        "2.000 đồng/trang; từ trang thứ ba 1.000 đồng/trang",
        "Nghị định thử số 2/2099/NĐ-CP",
        "Một phần",
    ],
    [
        4,
        "9.000099",
        "Thủ tục mới chưa có trong danh mục của kiosk",
        "Chứng thực",
        "Cấp xã",
        "Ủy ban nhân dân cấp xã",
        "02 ngày làm việc",
        "Không",
        "Nghị định thử số 3/2099/NĐ-CP",
        "Một phần",
    ],
    ["Ghi chú: (*) thủ tục được tiếp nhận không phụ thuộc địa giới hành chính trong tỉnh."],
    ["B. DANH MỤC THỦ TỤC HÀNH CHÍNH BỊ BÃI BỎ"],
    [1, "9.000003", "Thủ tục đã bỏ khỏi danh mục", "Hộ tịch", "Cấp xã"],
]


def procedure(pid: str, name: str, code: str | None, **extra: Any) -> dict[str, Any]:
    entry = {
        "id": pid,
        "name": name,
        "field": "Hộ tịch",
        "area": "A",
        "papers": [{"name": "Tờ khai theo mẫu", "original": 1, "copy": 0}],
        "fee": {"amount_vnd": 5000, "text": "Lệ phí cũ"},
        "processing_time": {"text": "05 ngày làm việc", "working_days": 5},
        "where": "Bộ phận Một cửa UBND xã",
        "online": "partial",
        "legal_basis": ["Văn bản cũ"],
        "keywords": [f"từ khóa {pid.lower()}"],
        "aliases": [f"tên khác {pid.lower()}"],
        "sources": ["Nguồn kiểm tra trước"],
        **extra,
    }
    if code is not None:
        entry["code"] = code
    return entry


def base_catalog() -> dict[str, Any]:
    return {
        "schema": "catalog/1",
        "version": "2026.11.1",
        "updated": "2026-11-01",
        "procedures": [
            procedure("HT-001", "Đăng ký khai sinh", "9.000001", level="commune"),
            procedure("HT-002", "Đăng ký kết hôn", "9.000002"),
            procedure("CT-001", "Chứng thực bản sao từ bản chính", "2.000815", area="B"),
            procedure("HT-003", "Thủ tục đã bỏ khỏi danh mục", "9.000003", level="commune"),
            procedure("DD-001", "Thủ tục cấp tỉnh", "9.000004", level="province"),
            procedure("HT-004", "Thủ tục chưa có mã", None),
            procedure("XN-001", "Hộ chiếu (làm ở công an)", "9.000005", kind="referral"),
        ],
    }


def write_xlsx(path: Path, rows: list[list[Any]] = ROWS, header: list[str] = HEADER) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Danh mục"
    ws.append(["ỦY BAN NHÂN DÂN TỈNH THỬ NGHIỆM"])
    ws.append(["DANH MỤC THỦ TỤC HÀNH CHÍNH CẤP XÃ"])
    ws.append(["(Kèm theo Quyết định thử số 1/QĐ-UBND)"])
    ws.append([])
    ws.append(header)
    for row in rows:
        ws.append(row)
        if len(row) == 1 and str(row[0]).startswith(("I.", "II.", "B.")):
            ws.merge_cells(start_row=ws.max_row, start_column=1, end_row=ws.max_row, end_column=10)
    book.create_sheet("Khác").append(["không phải danh mục"])
    book.save(path)
    return path


def write_csv(path: Path, rows: list[list[Any]] = ROWS) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(["DANH MỤC THỦ TỤC HÀNH CHÍNH CẤP XÃ"])
        w.writerow([])
        w.writerow(HEADER)
        for row in rows:
            w.writerow(["2.000815" if v == 2.000815 else v for v in row])
    return path


def run_cli(*argv: str) -> tuple[int, str, str]:
    """`kiosk-fleet` as the operator runs it (import and diff need no config)."""
    done = subprocess.run(
        [sys.executable, "-m", "fleet.cli", *argv],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "current.json"
    path.write_text(json.dumps(base_catalog(), ensure_ascii=False), encoding="utf-8")
    return path


def by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in document["procedures"]}


# --- import ----------------------------------------------------------------------------------


def test_xlsx_list_is_merged_by_code_keeping_what_the_list_does_not_carry(
    tmp_path: Path, base: Path
) -> None:
    xlsx = write_xlsx(tmp_path / "danh-muc.xlsx")
    out = tmp_path / "new.json"
    code, stdout, stderr = run_cli(
        "catalog", "import", str(xlsx), "--base", str(base), "--out", str(out),
        "--version", "2026.12.1", "--checked", "2026-12-05",
        "--source", "Quyết định thử số 1/QĐ-UBND",
    )  # fmt: skip
    assert code == 0, stderr
    new = json.loads(out.read_text(encoding="utf-8"))
    old = by_id(base_catalog())
    entries = by_id(new)
    assert new["version"] == "2026.12.1" and new["updated"] == "2026-12-05"

    birth = entries["HT-001"]
    assert birth["name"] == "Đăng ký khai sinh (tên trong danh mục)"
    assert birth["field"] == "Hộ tịch"  # from the merged section row "I. LĨNH VỰC HỘ TỊCH"
    assert (birth["level"], birth["agency"]) == ("commune", "Ủy ban nhân dân cấp xã")
    assert birth["processing_time"] == {
        "text": "Ngay trong ngày tiếp nhận hồ sơ",
        "working_days": 0,
    }
    assert birth["fee"] == {"amount_vnd": 0, "text": "Miễn lệ phí"}
    assert birth["legal_basis"] == [
        "Luật Hộ tịch số 60/2014/QH13 ngày 20/11/2014",
        "Nghị định thử số 1/2099/NĐ-CP",
    ]
    assert (birth["online"], birth["checked"]) == ("full", "2026-12-05")
    for kept in ("papers", "keywords", "aliases", "area", "where", "code"):
        assert birth[kept] == old["HT-001"][kept], kept
    assert birth["sources"] == ["Nguồn kiểm tra trước", "Quyết định thử số 1/QĐ-UBND"]

    marriage = entries["HT-002"]
    assert marriage["fee"] == {"amount_vnd": 30000, "text": "Lệ phí: 30.000 đồng/việc"}
    assert marriage["processing_time"]["working_days"] == 3 and marriage["online"] == "partial"

    copy_ = entries["CT-001"]  # its code was a number in the sheet: 2.000815 kept whole
    assert copy_["name"] == "Chứng thực bản sao từ bản chính giấy tờ, văn bản"
    assert copy_["field"] == "Chứng thực" and copy_["processing_time"]["working_days"] == 0.5
    # Two amounts in the fee text: the amount is kept and a reviewer is told.
    assert copy_["fee"]["amount_vnd"] == 5000 and copy_["fee"]["text"].startswith("2.000 đồng")
    assert "CT-001" in stdout and "fee amount not one figure" in stdout

    # Not in the list: untouched; the new code is reported, not added (it has no papers).
    for untouched in ("HT-003", "DD-001", "HT-004", "XN-001"):
        assert entries[untouched] == old[untouched]
    assert "9.000099" not in {p.get("code") for p in new["procedures"]}
    assert "1 new in the list: needs its papers before it can be shown" in stdout
    assert "+ 9.000099 Thủ tục mới chưa có trong danh mục của kiosk (row 13)" in stdout
    # Missing: the commune procedure, not the province's (the list is the communes') nor the
    # referral; the one without a code cannot be matched and is said so.
    assert "1 listed as abolished (bãi bỏ): not updated" in stdout
    assert "x 9.000003 Thủ tục đã bỏ khỏi danh mục (row 16)" in stdout
    assert "- HT-003 9.000003 Thủ tục đã bỏ khỏi danh mục" in stdout
    assert "DD-001" not in stdout.split("---")[0] and "XN-001" not in stdout
    assert "no code and cannot be matched: HT-004" in stdout
    assert "ignored row 14: note: Ghi chú" in stdout
    # The diff is printed before the file is written.
    diff = stdout.split("--- ")[1]
    assert "~ HT-001 Đăng ký khai sinh (tên trong danh mục)" in diff
    assert "name: Đăng ký khai sinh -> Đăng ký khai sinh (tên trong danh mục)" in diff
    assert "  - Văn bản cũ" in diff and "checked: (none) -> 2026-12-05" in diff
    assert stdout.index("~ HT-001") < stdout.index(f"written: {out}")


def test_csv_with_bom_gives_the_same_catalog_as_the_xlsx(tmp_path: Path, base: Path) -> None:
    results = []
    for path in (write_xlsx(tmp_path / "l.xlsx"), write_csv(tmp_path / "l.csv")):
        out = tmp_path / f"{path.suffix[1:]}.json"
        code, _, stderr = run_cli(
            "catalog", "import", str(path), "--base", str(base), "--out", str(out),
            "--version", "2026.12.1", "--checked", "2026-12-05",
        )  # fmt: skip
        assert code == 0, stderr
        results.append(json.loads(out.read_text(encoding="utf-8")))
    assert (tmp_path / "l.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert results[0] == results[1]
    assert by_id(results[1])["CT-001"]["code"] == "2.000815"


def test_expire_missing_sets_valid_to_on_commune_procedures_only(
    tmp_path: Path, base: Path
) -> None:
    out = tmp_path / "new.json"
    code, stdout, stderr = run_cli(
        "catalog", "import", str(write_xlsx(tmp_path / "l.xlsx")), "--base", str(base),
        "--out", str(out), "--expire-missing", "2026-12-31",
    )  # fmt: skip
    assert code == 0, stderr
    entries = by_id(json.loads(out.read_text(encoding="utf-8")))
    assert entries["HT-003"]["valid_to"] == "2026-12-31"
    assert "(valid_to set)" in stdout
    for kept in ("DD-001", "XN-001", "HT-004", "HT-001"):
        assert "valid_to" not in entries[kept], kept
    # The version defaults to the day (it must differ from the base's).
    assert json.loads(out.read_text(encoding="utf-8"))["version"] != "2026.11.1"


def _bad_rows(change: Callable[[list[list[Any]]], None]) -> list[list[Any]]:
    rows = copy.deepcopy(ROWS)
    change(rows)
    return rows


BAD_LISTS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("png", lambda p: _write(p / "x.xlsx", b"\x89PNG\r\n\x1a\n" + bytes(64)), "not a CSV or XLSX"),
    ("xls", lambda p: _write(p / "x.xls", bytes.fromhex("d0cf11e0a1b11ae1") + bytes(64)),
     "not a CSV or XLSX file (an old .xls?"),
    ("broken zip", lambda p: _write(p / "x.xlsx", b"PK\x03\x04" + b"junk" * 20),
     "not a readable XLSX file"),
    ("cp1252 csv", lambda p: _write(p / "x.csv", "Mã,Tên\n".encode("cp1252")),
     "must be UTF-8"),
    ("no header", lambda p: write_xlsx(p / "x.xlsx", header=["STT", "Nội dung", "Ghi chú"]),
     "no header row in the first 40 rows"),
    ("no code", lambda p: write_xlsx(p / "x.xlsx", _bad_rows(lambda r: r[2].__setitem__(1, ""))),
     "row 8: no procedure code ('Đăng ký khai sinh (tên trong danh mục)')"),
    ("name alone", lambda p: write_xlsx(p / "x.xlsx", [*ROWS, ["", "", "Một thủ tục không mã"]]),
     "row 17: no procedure code ('Một thủ tục không mã')"),
    ("bad code", lambda p: write_xlsx(
        p / "x.xlsx", _bad_rows(lambda r: r[3].__setitem__(1, "2-000815"))),
     "row 9: '2-000815' is not a procedure code"),
    ("no name", lambda p: write_xlsx(p / "x.xlsx", _bad_rows(lambda r: r[3].__setitem__(2, ""))),
     "row 9: procedure 9.000002 has no name"),
    ("duplicate", lambda p: write_xlsx(
        p / "x.xlsx", _bad_rows(lambda r: r[7].__setitem__(1, "9.000002"))),
     "row 13: code 9.000002 is already on row 9"),
    ("csv no rows", lambda p: _write(p / "x.csv", ",".join(HEADER).encode() + b"\n"),
     "no procedure rows"),
]  # fmt: skip


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "message"), [b[1:] for b in BAD_LISTS], ids=[b[0] for b in BAD_LISTS]
)
def test_bad_lists_are_refused_naming_the_row_and_nothing_is_written(
    tmp_path: Path, base: Path, make: Callable[[Path], Path], message: str
) -> None:
    out = tmp_path / "new.json"
    code, stdout, stderr = run_cli(
        "catalog", "import", str(make(tmp_path)), "--base", str(base), "--out", str(out)
    )
    assert code == 2, (stdout, stderr)
    assert message in stderr and "Traceback" not in stderr
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_a_merged_catalog_that_would_not_validate_is_not_written(
    tmp_path: Path, base: Path
) -> None:
    out = tmp_path / "new.json"
    out.write_text("the previous output", encoding="utf-8")
    code, _, stderr = run_cli(
        "catalog", "import", str(write_xlsx(tmp_path / "l.xlsx")), "--base", str(base),
        "--out", str(out), "--version", "not a version!",
    )  # fmt: skip
    assert code == 2 and "the merged catalog is not valid: version" in stderr
    assert out.read_text(encoding="utf-8") == "the previous output"
    # A base that is not a catalog is refused too.
    base.write_text('{"schema": "catalog/1"}', encoding="utf-8")
    code, _, stderr = run_cli(
        "catalog", "import", str(tmp_path / "l.xlsx"), "--base", str(base), "--out", str(out)
    )
    assert code == 2 and "required property" in stderr


def test_sheet_option_picks_the_sheet_by_name(tmp_path: Path, base: Path) -> None:
    xlsx = write_xlsx(tmp_path / "l.xlsx")
    out = tmp_path / "new.json"
    code, _, stderr = run_cli(
        "catalog", "import", str(xlsx), "--base", str(base), "--out", str(out), "--sheet", "Khác"
    )
    assert code == 2 and "no header row" in stderr
    code, _, stderr = run_cli(
        "catalog", "import", str(xlsx), "--base", str(base), "--out", str(out), "--sheet", "Nope"
    )
    assert code == 2 and "no sheet 'Nope'; sheets: Danh mục, Khác" in stderr
    assert cli.main(["catalog", "import", str(xlsx), "--base", str(base), "--out", str(out),
                     "--sheet", "Danh mục"]) == 0  # fmt: skip
    assert out.exists()


# --- diff ------------------------------------------------------------------------------------


def test_diff_lists_added_removed_and_changed_fields(tmp_path: Path) -> None:
    old = base_catalog()
    new = copy.deepcopy(old)
    new["version"] = "2026.12.1"
    new["procedures"] = [p for p in new["procedures"] if p["id"] != "HT-003"]
    new["procedures"].append(procedure("HT-009", "Thủ tục thêm", "9.000009"))
    entry = by_id(new)["HT-002"]
    entry["fee"] = {"amount_vnd": 0, "text": "Miễn lệ phí"}
    entry["papers"].append({"name": "Giấy tờ thêm", "original": 0, "copy": 1})
    paths = []
    for name, doc in (("old", old), ("new", new)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    code, stdout, stderr = run_cli("catalog", "diff", *map(str, paths))
    assert code == 0, stderr
    assert stdout.splitlines() == [
        "version: 2026.11.1 -> 2026.12.1",
        "+ HT-009 Thủ tục thêm (added)",
        "- HT-003 Thủ tục đã bỏ khỏi danh mục (removed)",
        "~ HT-002 Đăng ký kết hôn",
        "    papers:",
        '      + {"name": "Giấy tờ thêm", "original": 0, "copy": 1}',
        '    fee: {"amount_vnd": 5000, "text": "Lệ phí cũ"} -> '
        '{"amount_vnd": 0, "text": "Miễn lệ phí"}',
    ]
    code, stdout, _ = run_cli("catalog", "diff", str(paths[0]), str(paths[0]))
    assert (code, stdout) == (0, "same\n")


# --- validity dates on the kiosk -------------------------------------------------------------


def test_entries_out_of_their_dates_are_hidden_by_the_local_day_without_a_restart(
    tmp_path: Path,
) -> None:
    document = base_catalog()
    entries = by_id(document)
    entries["HT-001"]["valid_from"] = "2027-01-01"  # the new rules start on New Year's Day
    entries["HT-002"]["valid_to"] = "2026-12-31"  # the old one ends the day before
    (tmp_path / "bundled.json").write_text(json.dumps(document, ensure_ascii=False), "utf-8")
    clock = {"now": dt.datetime(2026, 12, 31, 16, 59, tzinfo=dt.UTC)}  # 23:59 in Hà Nội
    service = CatalogService(
        tmp_path / "catalog", bundled=tmp_path / "bundled.json", now=lambda: clock["now"]
    )

    def shown() -> set[str]:
        return {p.id for p in service.catalog.procedures}

    assert "HT-002" in shown() and "HT-001" not in shown()
    assert service.search("ket hon")[0].procedure.id == "HT-002"
    assert all(h.procedure.id != "HT-001" for h in service.search("khai sinh"))
    with pytest.raises(ProcedureNotFound):
        service.get("HT-001")
    hoi_tich = {p.id for p in service.catalog.in_field("Hộ tịch")}
    assert "HT-002" in hoi_tich and "HT-001" not in hoi_tich

    clock["now"] = dt.datetime(2026, 12, 31, 17, 0, tzinfo=dt.UTC)  # midnight in Hà Nội
    assert "HT-001" in shown() and "HT-002" not in shown()
    assert service.get("HT-001").name == "Đăng ký khai sinh"
    assert service.search("khai sinh")[0].procedure.id == "HT-001"
    assert all(h.procedure.id != "HT-002" for h in service.search("ket hon"))
    # What is installed is the whole document; the version is the document's.
    assert len(service.whole) == len(document["procedures"]) == len(service.catalog) + 1
    assert service.version == document["version"]
    # Another zone's midnight is not the kiosk's: at 17:00 UTC it is still 31/12 in London.
    london = CatalogService(
        tmp_path / "c2", bundled=tmp_path / "bundled.json", timezone="Europe/London",
        now=lambda: clock["now"],
    )  # fmt: skip
    assert "HT-002" in {p.id for p in london.catalog.procedures}


# --- push ------------------------------------------------------------------------------------


def big_catalog(version: str) -> dict[str, Any]:
    """Some 300 procedures with text that compresses badly: packed, well over 64 KiB."""
    document = base_catalog()
    document["version"] = version
    document["procedures"][1]["valid_to"] = "2000-01-01"  # HT-002: long over, hidden
    for n in range(1, 301):
        extra = procedure(f"TA-{n:03d}", f"Thủ tục thử {n}", None, field="Thử nghiệm")
        extra["keywords"] = [secrets.token_urlsafe(48) for _ in range(4)]
        document["procedures"].append(extra)
    return document


def test_packed_catalog_over_what_a_kiosk_takes_is_refused_before_sending() -> None:
    document = big_catalog("2027.1")
    for p in document["procedures"][7:]:
        p["keywords"] = [secrets.token_urlsafe(75) for _ in range(50)]
    with pytest.raises(CatalogImportError, match="a kiosk accepts"):
        packed_args(document)


@pytest.fixture
def console(tmp_path: Path, broker: Broker, fleet_pki: FleetPki) -> Iterator[Console]:
    made = build_console(console_config(tmp_path, broker, fleet_pki))
    made.start()
    try:
        assert made.ingest.wait_connected(10), "console did not connect"
        yield made
    finally:
        made.stop()


def test_push_reaches_the_daemon_signed_and_the_console_records_its_answer(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki, console: Console
) -> None:
    create_operator(console.store, OPERATOR, "Nguyễn Văn An", PASSWORD)
    key = _decrypt(console.store.operator(OPERATOR)["private_key"], PASSWORD)
    (tmp_path / "kiosk").mkdir()
    daemon = start_daemon(fleet_config(tmp_path / "kiosk", broker, fleet_pki, key))
    try:
        wait_until(
            lambda: (console.store.kiosk(KIOSK) or {}).get("state") == "online", 20, "online"
        )
        document = big_catalog("2027.01.7")
        catalog = tmp_path / "push.json"
        catalog.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        assert len(packed_args(document)["catalog_gzip_b64"]) > 64 * 1024
        pusher = fleet_pki.client("fleet-catalog")
        me = fleet_pki.client("fleet-central")
        config = tmp_path / "fleet.toml"
        config.write_text(
            f'[store]\nurl = "sqlite:///{tmp_path / "fleet.db"}"\n'
            f'data_key_file = "{tmp_path / "data.key"}"\n'
            f'[mqtt]\nhost = "localhost"\nport = {broker.port}\nca_file = "{fleet_pki.ca_file}"\n'
            f'cert_file = "{me.cert}"\nkey_file = "{me.key}"\n'
            f'[web]\nsecret_key_file = "{tmp_path / "secret.key"}"\n',
            encoding="utf-8",
        )
        push = [
            sys.executable, "-m", "fleet.cli", "-c", str(config), "catalog", "push", str(catalog),
            "--all", "--operator", OPERATOR, "--password-stdin",
            "--cert", str(pusher.cert), "--key", str(pusher.key), "--wait", "30",
        ]  # fmt: skip
        done = subprocess.run(
            push, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, input=PASSWORD + "\n",
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert done.returncode == 0, (done.stdout, done.stderr, daemon_log(tmp_path))
        assert f"{KIOSK}\tok\tversion 2027.01.7" in done.stdout
        assert "sent to 1 kiosks by op.hanoi" in done.stdout

        # The console's log has the signed command and the kiosk's result.
        row = next(c for c in console.store.commands() if c["name"] == "update-catalog")
        assert (row["status"], row["operator"], row["kiosk_id"]) == ("ok", OPERATOR, KIOSK)
        assert row["result"] == {
            "version": "2027.01.7",
            "previous": row["result"]["previous"],
            "procedures": len(document["procedures"]),
        }
        packed = row["args"]["catalog_gzip_b64"]
        assert json.loads(_gunzip(packed)) == document
        # The kiosk serves it, its telemetry says so, and the expired entry is hidden.
        wait_until(lambda: _served_version(daemon) == "2027.01.7", 15, "new catalog served")
        assert _served_version(daemon) == "2027.01.7"
        assert _guide(daemon, "TA-300") == (200, "TA-300")
        assert _guide(daemon, "HT-002") == (400, "procedure_not_found")  # as if absent

        # The push's certificate may send update-catalog and nothing else (the ACL).
        peer = Peer(broker, pusher).connect()
        try:
            for topic in (f"kiosk/v1/{KIOSK}/cmd/lock", "fleet/v1/status"):
                assert str(peer.publish(topic, "{}")) == "Not authorized", topic
        finally:
            peer.close()

        # A wrong password sends nothing.
        before = len(console.store.commands())
        done = subprocess.run(
            push, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, input="sai-mật-khẩu\n",
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert done.returncode == 2 and "wrong operator or password" in done.stderr
        assert len(console.store.commands()) == before
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(5)


def _gunzip(packed: str) -> bytes:
    import gzip

    return gzip.decompress(base64.b64decode(packed))


def _served_version(daemon: Any) -> str:
    with urllib.request.urlopen(daemon.base + "/api/services/guide/search?q=x", timeout=10) as r:
        return json.loads(r.read())["version"]


def _guide(daemon: Any, pid: str) -> tuple[int, str]:
    """(HTTP status, the procedure's id or the error's code)."""
    try:
        with urllib.request.urlopen(daemon.base + f"/api/services/guide/{pid}", timeout=10) as r:
            return r.status, json.loads(r.read())["id"]
    except urllib.error.HTTPError as err:
        body = json.loads(err.read())
        return err.code, (body.get("error") or {}).get("code", str(body))


def daemon_log(tmp_path: Path) -> str:
    logs = list(tmp_path.rglob("daemon.log"))
    return logs[0].read_text(errors="replace")[-3000:] if logs else ""


def test_only_update_catalog_may_be_larger_than_64_kib(tmp_path: Path) -> None:
    """The kiosk's envelope limit: 1 MiB for update-catalog, 64 KiB for everything else."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from edge.fleet import CommandProcessor, OperatorKeys, SeenCommands, Topics, sign_command
    from edge.fleet.commands import write_public_key
    from edge.store import Store

    key = ec.generate_private_key(ec.SECP256R1())
    write_public_key(key, tmp_path / "trust", "op.test")
    store = Store(tmp_path / "kiosk.db")
    store.open()
    ran: list[str] = []
    try:
        processor = CommandProcessor(
            kiosk_id=KIOSK,
            topics=Topics("kiosk/v1", KIOSK),
            commands={
                "update-catalog": lambda a: ran.append("update-catalog") or {"ok": True},
                "print-test": lambda a: ran.append("print-test") or {"ok": True},
            },
            keys=OperatorKeys(tmp_path / "trust"),
            seen=SeenCommands(store),
        )

        def run(name: str, size: int) -> dict[str, Any]:
            args = {"catalog_gzip_b64": "A" * size}
            envelope = sign_command(key, "op.test", name, args, 300, target=KIOSK)
            return processor.process(name, json.dumps(envelope).encode()).result

        assert run("update-catalog", 200_000)["status"] == "ok"
        refused = run("print-test", 200_000)
        assert (refused["status"], refused["reason"]) == ("refused", "malformed")
        assert "larger than 65536 bytes" in refused["message"]
        too_big = run("update-catalog", 1_100_000)
        assert (too_big["reason"], ran) == ("malformed", ["update-catalog"])
        assert "larger than 1048576 bytes" in too_big["message"]
    finally:
        store.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.lists(
            st.one_of(st.text(max_size=30), st.sampled_from(["9.000001", "2.000815", "I. X"])),
            max_size=11,
        ),
        max_size=12,
    )
)
def test_any_csv_under_the_header_gives_a_catalog_or_a_clear_refusal(
    tmp_path: Path, rows: list[list[str]]
) -> None:
    from fleet.catalog_import import merge, parse_list

    path = tmp_path / "fuzz.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])
    try:
        parsed = parse_list(path)
        document, _ = merge(base_catalog(), parsed, today=dt.date(2026, 12, 6))
    except CatalogImportError as err:
        assert err.reasons and all(isinstance(r, str) and r for r in err.reasons)
        event("refused")
    else:
        assert {p["id"] for p in document["procedures"]} == set(by_id(base_catalog()))
        event("merged")
