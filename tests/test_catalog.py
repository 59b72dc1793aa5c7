"""The procedure catalog: its data is valid and complete, search finds what people type
(no diacritics, typos, any case), and updates are validated, atomic and reversible."""

from __future__ import annotations

import contextlib
import copy
import json
import unicodedata
from pathlib import Path

import pytest

from edge.services.catalog import (
    BUNDLED_CATALOG,
    Catalog,
    CatalogInvalid,
    CatalogService,
    ProcedureNotFound,
    fold,
)
from tests.mqtt_broker import schema_validator

# What citizens type, without diacritics, with typos, in any case -> the procedure meant.
SEARCH_TABLE = [
    ("giay khai sinh", "HT-001"),
    ("khai sin", "HT-001"),
    ("dang ky khai sinh", "HT-001"),
    ("khai sinhh", "HT-001"),
    ("Giấy Khai Sinh", "HT-001"),
    ("thủ tục làm giấy khai sinh cần giấy tờ gì", "HT-001"),
    ("ket hon", "HT-002"),
    ("dang ki ket hon", "HT-002"),
    ("ket hno", "HT-002"),
    ("khai tu", "HT-003"),
    ("khai tư", "HT-003"),
    ("giay chung tu", "HT-003"),
    ("giay doc than", "HT-004"),
    ("GIAY DOC THAN", "HT-004"),
    ("xac nhan tinh trang hon nhan", "HT-004"),
    ("tinh trang hon nhan", "HT-004"),
    ("trich luc khai sinh", "HT-005"),
    ("ban sao giay khai sinh", "HT-005"),
    ("nhan cha me con", "HT-006"),
    ("giam ho", "HT-008"),
    ("cham dut giam ho", "HT-009"),
    ("cai chinh ho tich", "HT-010"),
    ("doi ten", "HT-010"),
    ("mat giay khai sinh", "HT-011"),
    ("dang ky lai ket hon", "HT-012"),
    ("sao y ban chinh", "CT-001"),
    ("chung thuc ban sao", "CT-001"),
    ("chứng thưc bản sao", "CT-001"),
    ("cong chung giay to", "CT-001"),
    ("chung thuc chu ky", "CT-002"),
    ("chung thuc chu ki", "CT-002"),
    ("hop dong chuyen nhuong dat", "CT-003"),
    ("chia thua ke", "CT-007"),
    ("khai nhan di san", "CT-008"),
    ("di chuc", "CT-009"),
    ("di chuk", "CT-009"),
    ("dang ky thuong tru", "CTR-001"),
    ("thuong tu", "CTR-001"),
    ("nhap ho khau", "CTR-001"),
    ("tam tru", "CTR-002"),
    ("dang ky tam tru", "CTR-002"),
    ("gia han tam tru", "CTR-003"),
    ("tam vang", "CTR-004"),
    ("tach ho", "CTR-005"),
    ("tach ho khau", "CTR-005"),
    ("xac nhan cu tru", "CTR-006"),
    ("tranh chap dat dai", "DD-001"),
    ("giay phep kinh doanh", "KD-001"),
    ("tam ngung kinh doanh", "KD-003"),
    ("tro cap xa hoi", "XH-001"),
    ("ho tro mai tang", "XH-002"),
    ("xac nhan khuyet tat", "XH-003"),
]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.from_file(BUNDLED_CATALOG)


def test_search_quality_table(catalog: Catalog) -> None:
    assert len(SEARCH_TABLE) >= 30
    wrong = []
    for query, expected in SEARCH_TABLE:
        hits = catalog.search(query)
        top = hits[0].procedure.id if hits else None
        if top != expected:
            wrong.append((query, expected, [(h.procedure.id, round(h.score)) for h in hits[:3]]))
    assert not wrong, f"{len(wrong)} of {len(SEARCH_TABLE)} queries ranked wrong: {wrong}"


def test_search_ranks_and_limits(catalog: Catalog) -> None:
    hits = catalog.search("khai sinh", limit=4)
    assert len(hits) == 4
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all("sinh" in fold(h.procedure.name + " ".join(h.procedure.keywords)) for h in hits)
    assert catalog.search("khai sinh", limit=1)[0].procedure.id == "HT-001"


@pytest.mark.parametrize("noise", ["", "   ", "xyzqw", "a", "ly hon quoc te abc", "!!!"])
def test_search_without_a_match_returns_nothing(catalog: Catalog, noise: str) -> None:
    assert catalog.search(noise) == []


def test_fold_removes_diacritics_and_case() -> None:
    assert fold("Đăng KÝ khai sinh – Giấy tờ!") == "dang ky khai sinh giay to"
    assert fold("ĐỒNG ý") == fold("dong Y")


def test_bundled_catalog_is_valid_complete_and_in_vietnamese(catalog: Catalog) -> None:
    document = json.loads(BUNDLED_CATALOG.read_text(encoding="utf-8"))
    schema_validator("catalog").validate(document)
    assert len(catalog) >= 30
    assert len({p.id for p in catalog.procedures}) == len(catalog)
    for p in catalog.procedures:
        assert p.papers and p.legal_basis and p.where and p.time_text and p.fee_text, p.id
        assert p.online in ("full", "partial")
        for paper in p.papers:
            assert paper.original + paper.copy >= 1, (p.id, paper.name)
        # Written with diacritics, NFC, not stripped ASCII.
        assert p.name != fold(p.name) and unicodedata.is_normalized("NFC", p.name), p.id
    fields = set(catalog.fields())
    assert {"Hộ tịch", "Chứng thực", "Cư trú", "Hộ kinh doanh"} <= fields
    assert catalog.get("ct-001").fee_vnd == 2000  # Circular 226/2016: 2,000 VND per page


def test_unknown_procedure(catalog: Catalog) -> None:
    with pytest.raises(ProcedureNotFound) as err:
        catalog.get("XX-999")
    assert err.value.message_vi.startswith("Không tìm thấy")


# --- updates ----------------------------------------------------------------------------


def _document(version: str = "2027.01.1") -> dict:
    document = json.loads(BUNDLED_CATALOG.read_text(encoding="utf-8"))
    document["version"] = version
    return document


def test_update_is_validated_atomic_and_keeps_the_previous(tmp_path: Path) -> None:
    service = CatalogService(tmp_path / "catalog")
    bundled_version = service.version
    new = _document()
    new["procedures"][0]["name"] = "Đăng ký khai sinh (cập nhật)"
    result = service.update(new)
    assert result == {
        "version": "2027.01.1",
        "previous": bundled_version,
        "procedures": len(new["procedures"]),
    }
    assert service.get("HT-001").name == "Đăng ký khai sinh (cập nhật)"
    assert json.loads(service.previous_path.read_text())["version"] == bundled_version
    assert not list((tmp_path / "catalog").glob("*.tmp"))

    # A new service (a restart) serves the installed update.
    assert CatalogService(tmp_path / "catalog").version == "2027.01.1"

    # Another update: the first one becomes previous; rollback brings it back.
    service.update(_document("2027.02.1"))
    assert json.loads(service.previous_path.read_text())["version"] == "2027.01.1"
    assert service.rollback()["version"] == "2027.01.1"
    assert service.version == "2027.01.1"
    assert CatalogService(tmp_path / "catalog").version == "2027.01.1"


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.pop("version"),
        lambda d: d.update(schema="catalog/2"),
        lambda d: d["procedures"][0].update(online="sometimes"),
        lambda d: d["procedures"][0]["papers"][0].update(original=-1),
        lambda d: d["procedures"][1].update(id=d["procedures"][0]["id"]),
        lambda d: d["procedures"][0].update(extra="x"),
        lambda d: d.update(procedures=[]),
    ],
)
def test_an_invalid_update_changes_nothing(tmp_path: Path, breakage) -> None:
    service = CatalogService(tmp_path / "catalog")
    service.update(_document("2027.01.1"))
    before = service.current_path.read_bytes()
    bad = copy.deepcopy(_document("2099.1"))
    breakage(bad)
    with pytest.raises(CatalogInvalid) as err:
        service.update(bad)
    assert err.value.problems and err.value.message_vi == "Danh mục thủ tục không hợp lệ."
    assert service.version == "2027.01.1"
    assert service.current_path.read_bytes() == before


def test_a_damaged_installed_catalog_falls_back_to_the_bundled_one(tmp_path: Path) -> None:
    service = CatalogService(tmp_path / "catalog")
    service.update(_document("2027.01.1"))
    service.current_path.write_text("{ not json", encoding="utf-8")
    again = CatalogService(tmp_path / "catalog")
    assert again.version == Catalog.from_file(BUNDLED_CATALOG).version


# --- the update-catalog fleet command's handler ----------------------------------------------


def test_update_catalog_command_handler(tmp_path: Path) -> None:
    import base64
    import gzip
    from types import SimpleNamespace

    from edge.fleet import BadArgs
    from edge.fleet.handlers import MAX_CATALOG_BYTES, fleet_commands

    app = SimpleNamespace(catalog=CatalogService(tmp_path / "catalog"), fleet=None)
    handler = fleet_commands(app)["update-catalog"]
    assert handler({"catalog": _document("2027.01.1")})["version"] == "2027.01.1"
    packed = base64.b64encode(gzip.compress(json.dumps(_document("2027.02.1")).encode())).decode()
    assert handler({"catalog_gzip_b64": packed}) == {
        "version": "2027.02.1",
        "previous": "2027.01.1",
        "procedures": len(_document()["procedures"]),
    }
    assert handler({"rollback": True})["version"] == "2027.01.1"
    bomb = base64.b64encode(gzip.compress(b" " * (MAX_CATALOG_BYTES + 1))).decode()
    refusals = [
        {},
        {"catalog": "not an object"},
        {"catalog": _document(), "rollback": True},
        {"catalog_gzip_b64": "!!!"},
        {"catalog_gzip_b64": base64.b64encode(b"not gzip").decode()},
        {"catalog_gzip_b64": bomb},
        {"catalog": {**_document("2099.1"), "procedures": [{"id": "bad"}]}},
    ]
    for args in refusals:
        with pytest.raises(BadArgs):
            handler(args)
    assert app.catalog.version == "2027.01.1"


# --- the printed checklist, read back by Tesseract (Vietnamese) --------------------------------


@pytest.mark.parametrize(("width", "profile"), [(80, "TM-T88V"), (58, "POS-5890")])
def test_checklist_slip_reads_back_in_vietnamese(
    catalog: Catalog, width: int, profile: str
) -> None:
    import datetime as dt

    import numpy as np
    from rapidfuzz import fuzz

    from edge.services.printouts import checklist_slip
    from edge.vision.ocr import Ocr
    from tests.escpos_readback import paper

    procedure = catalog.get("HT-001")
    data = checklist_slip(
        procedure,
        site="Phường Thử nghiệm",
        catalog_version=catalog.version,
        now=dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC),
        paper_width_mm=width,
        profile=profile,
    )
    sheet = paper(data)
    assert sheet.width - 32 == (512 if width == 80 else 384)
    with Ocr() as ocr:
        text = ocr.read(np.array(sheet), dpi=203).text
    for expected in (
        "Giấy tờ cần chuẩn bị",
        "Đăng ký khai sinh",
        "Tờ khai đăng ký khai sinh",
        "Giấy chứng sinh: 1 bản chính",
        "Phí, lệ phí: Miễn lệ phí",
        "Dịch vụ công trực tuyến: Toàn trình",
    ):
        assert fuzz.partial_ratio(expected, text) >= 88, (expected, text)


def test_where_to_go_slip_says_it_is_done_elsewhere(catalog: Catalog) -> None:
    import datetime as dt

    import numpy as np
    from rapidfuzz import fuzz

    from edge.services.printouts import checklist_slip
    from edge.vision.ocr import Ocr
    from tests.escpos_readback import paper

    data = checklist_slip(
        catalog.get("NK-002"),
        site="Phường Thử nghiệm",
        catalog_version=catalog.version,
        now=dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC),
    )
    with Ocr() as ocr:
        text = ocr.read(np.array(paper(data)), dpi=203).text
    for expected in (
        "Cấp hộ chiếu phổ thông",
        "Không làm tại đây. Nơi cần đến:",
        "Cơ quan Quản lý xuất nhập cảnh Công an cấp tỉnh",
        "dichvucong.gov.vn",
    ):
        assert fuzz.partial_ratio(expected, text) >= 88, (expected, text)
    assert "Nơi nộp:" not in text


def test_fuzz_update_catalog_args_never_crash(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from edge.fleet import BadArgs
    from edge.fleet.handlers import fleet_commands

    app = SimpleNamespace(catalog=CatalogService(tmp_path / "catalog"), fleet=None)
    handler = fleet_commands(app)["update-catalog"]
    leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
    values = st.recursive(
        leaf,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=15,
    )
    keys = st.sampled_from(["catalog", "catalog_gzip_b64", "rollback", "x"])
    bundled_version = app.catalog.version

    @settings(max_examples=200, deadline=None)
    @given(st.dictionaries(keys, values, max_size=3))
    def check(args: dict) -> None:
        with contextlib.suppress(BadArgs):
            handler(args)
        assert app.catalog.version == bundled_version

    check()


def test_issue_19_queries_find_the_right_entry(catalog: Catalog) -> None:
    """The queries citizens typed that found nothing or the wrong thing (issue 19)."""
    table = {
        "cap doi can cuoc": "NK-001",
        "căn cước": "NK-001",
        "cccd": "NK-001",
        "ho chieu": "NK-002",
        "ly lich tu phap": "NK-004",
        "giay phep lai xe": "NK-003",
        "doi bang lai xe": "NK-003",
        "so do": "NK-005",
        "tach thua": "NK-006",
        "cap phep xay dung": "XD-001",
        "nhan con nuoi": "HT-014",
        "dang ky the chap": "NK-007",
        "chung thuc": "CT-001",
    }
    got = {q: [h.procedure.id for h in catalog.search(q)][:1] for q in table}
    assert got == {q: [pid] for q, pid in table.items()}
    # Where-to-go entries are marked as such for the guide screen.
    assert catalog.get("NK-002").is_referral and not catalog.get("HT-014").is_referral
    assert catalog.search("ho chieu")[0].as_dict()["kind"] == "referral"


def test_synonyms_rewrite_longest_variant_and_keep_its_stop_words() -> None:
    from edge.services.catalog import Synonyms

    syn = Synonyms([("can cuoc", ["cccd", "the can cuoc"]), ("the chap", ["giai chap"])])
    assert syn.rewrite(["lam", "the", "can", "cuoc"]) == [
        ("lam", False),
        ("can", True),
        ("cuoc", True),
    ]
    assert syn.rewrite(["giai", "chap"]) == [("the", True), ("chap", True)]
    assert syn.rewrite(["cccd"]) == [("can", True), ("cuoc", True)]


def test_browse_by_field_lists_each_fields_procedures(catalog: Catalog) -> None:
    fields = catalog.fields()
    assert "Hộ tịch" in fields and "Đất đai" in fields
    land = [p.id for p in catalog.in_field("Đất đai")]
    assert land[0] == "DD-001"  # handled here first, where-to-go entries after
    assert {"NK-005", "NK-006", "NK-007"} <= set(land)
    assert sum(len(catalog.in_field(f)) for f in fields) == len(catalog)
