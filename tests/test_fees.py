"""Fee rules as data (edge/fee_rules.py, edge/config/fee_rules.toml, docs/fees.md): the rule in
force on the day for the kiosk's area and channel, Hanoi's support for online procedures, the
cap, one page limit for quote and issue, and "phí" (not "lệ phí") for copy certification."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pytest
from flask import render_template

from edge import config as cfg
from edge.app import App
from edge.certify.requests import RequestState
from edge.config import CopiesSection
from edge.copies.code import CopyRefused
from edge.errors import BadInput, ConfigError
from edge.fee_rules import DEFAULT_RULES, load_rules
from edge.fees import MAX_PAGES, Fee, quote
from edge.services.printouts import cert_receipt, cert_slip
from tests.copies_helpers import CITIZEN_QR, copy_service
from tests.ecopy_helpers import cert_request
from tests.web_ui_helpers import kiosk_config
from web_ui import create_app
from web_ui.forms import ContactForm

HANOI, HCM = "HN-TAYHO-01", "HCM-Q1-01"
AT_KIOSK, ONLINE = CopiesSection(), CopiesSection(fee_channel="online")
CITIZEN = {"id_number": CITIZEN_QR.split("|")[0], "name": "Nguyễn Văn An"}


def test_the_rule_in_force_on_the_day_and_its_wording() -> None:
    before_law = quote(3, AT_KIOSK, HCM, on=dt.date(2016, 12, 31))
    assert (before_law.rule_id, before_law.kind, before_law.word_vi) == (
        "VN-TTLT-2015-copy",
        "lệ phí",
        "Lệ phí",
    )
    after = quote(3, AT_KIOSK, HCM, on=dt.date(2017, 1, 1))
    assert (after.rule_id, after.kind, after.word_vi, after.fee_vnd) == (
        "VN-TT226-2016-copy",
        "phí",
        "Phí",
        5000,
    )
    assert after.basis_vi == "Thông tư 226/2016/TT-BTC, Điều 4"
    assert after.as_dict()["rule"] == {
        "id": after.rule_id,
        "basis_vi": after.basis_vi,
        "kind": "phí",
    }
    with pytest.raises(CopyRefused, match=r"no fee rule for 2\.000815"):
        quote(3, AT_KIOSK, HCM, on=dt.date(2015, 11, 29))  # before any rule in the file


@pytest.mark.parametrize(
    ("kiosk_id", "channel", "day", "payable"),
    [
        (HANOI, "online", dt.date(2025, 12, 31), 5000),  # the day before Resolution 77/2025
        (HANOI, "online", dt.date(2026, 1, 1), 0),
        (HANOI, "at-kiosk", dt.date(2026, 1, 1), 5000),  # not online: not supported
        (HANOI, "at-counter", dt.date(2026, 6, 1), 5000),
        (HCM, "online", dt.date(2026, 6, 1), 5000),  # another province
        ("HNX-01", "online", dt.date(2026, 6, 1), 5000),  # "HN" is a prefix up to a dash
    ],
)
def test_hanoi_support_by_date_channel_and_site(
    kiosk_id: str, channel: str, day: dt.date, payable: int
) -> None:
    fee = quote(3, AT_KIOSK, kiosk_id, on=day, channel=channel)
    assert (fee.fee_vnd, fee.payable_vnd, fee.exempt) == (5000, payable, payable == 0)
    if payable == 0:
        assert fee.label_vi == "Miễn phí"
        assert fee.support_id == "HN-NQ77-2025-online"
        assert fee.support_basis_vi == "Nghị quyết 77/2025/NQ-HĐND TP Hà Nội"
        assert fee.payer_vi.startswith("Ngân sách Thành phố Hà Nội")
        assert fee.as_dict()["support"]["id"] == "HN-NQ77-2025-online"
    else:
        assert fee.support_id == "" and "support" not in fee.as_dict()


def test_the_channel_comes_from_the_config_unless_given() -> None:
    on = dt.date(2026, 3, 1)
    assert quote(1, ONLINE, HANOI, on=on).payable_vnd == 0
    assert quote(1, AT_KIOSK, HANOI, on=on).payable_vnd == 2000
    assert quote(1, ONLINE, HANOI, on=on, channel="at-counter").payable_vnd == 2000


@pytest.mark.parametrize(
    ("pages", "vnd"), [(1, 2000), (2, 4000), (3, 5000), (197, 199000), (198, 200000), (200, 200000)]
)
def test_per_page_tiers_and_the_cap(pages: int, vnd: int) -> None:
    assert quote(pages, AT_KIOSK, HCM, on=dt.date(2026, 3, 1)).fee_vnd == vnd


def small_page(n: int) -> np.ndarray:
    page = np.full((120, 85, 3), 250, np.uint8)
    page[10 + n % 90 : 20 + n % 90, 10:70] = 30
    return page


def test_quote_succeeds_iff_issue_accepts_the_page_count(tmp_path: Path) -> None:
    with copy_service(tmp_path) as service:
        for pages in (MAX_PAGES + 1, 500):
            with pytest.raises(CopyRefused, match=f"at most {MAX_PAGES} pages"):
                service.quote(pages)
            with pytest.raises(CopyRefused, match=f"at most {MAX_PAGES} pages"):
                service.issue([small_page(n) for n in range(pages)], CITIZEN)
        for bad in (0, -1):
            with pytest.raises(BadInput):
                service.quote(bad)
        with pytest.raises(BadInput):
            service.issue([], CITIZEN)
        assert service.list() == []  # no number burnt by a refusal
        fee = service.quote(MAX_PAGES)
        issued = service.issue([small_page(n) for n in range(MAX_PAGES)], CITIZEN)
        assert (issued.pages, issued.fee.fee_vnd) == (MAX_PAGES, fee.fee_vnd) == (200, 200000)


RULES = """
[[fee]]
id = "VN-copy"
procedure = "2.000815"
name_vi = "Phí chứng thực bản sao từ bản chính"
kind = "phí"
area = "*"
channels = ["online", "at-kiosk", "at-counter"]
valid_from = 2017-01-01
basis_vi = "Thông tư 226/2016/TT-BTC"
source = "https://example.vn/226"
tiers = [{ from_page = 1, vnd = 2000 }, { from_page = 3, vnd = 1000 }]
cap_vnd = 200000
"""
SITE_RULE = """
[[fee]]
id = "HN-TAYHO-copy"
procedure = "2.000815"
name_vi = "Phí chứng thực bản sao từ bản chính"
kind = "phí"
area = "HN-TAYHO"
channels = ["at-kiosk"]
valid_from = 2027-01-01
valid_to = 2027-12-31
basis_vi = "Thông tư giả định cho thử nghiệm"
source = "https://example.vn/test"
tiers = [{ from_page = 1, vnd = 3000 }]
"""


def test_a_site_rule_wins_over_the_national_one_within_its_dates(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES + SITE_RULE, encoding="utf-8")
    copies = CopiesSection(fee_rules=path)
    assert quote(3, copies, HANOI, on=dt.date(2027, 5, 1)).fee_vnd == 9000  # 3 x 3,000 đ
    assert quote(3, copies, "HN-BADINH-01", on=dt.date(2027, 5, 1)).fee_vnd == 5000
    assert quote(3, copies, HANOI, on=dt.date(2028, 1, 1)).rule_id == "VN-copy"  # expired
    assert quote(3, copies, HANOI, on=dt.date(2027, 5, 1), channel="online").rule_id == "VN-copy"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (RULES + RULES.replace('"VN-copy"', '"VN-copy-2"'), "overlap"),
        (
            RULES.replace(
                "valid_from = 2017-01-01", "valid_from = 2017-01-01\nvalid_to = 2016-01-01"
            ),
            "before",
        ),
        (RULES.replace('kind = "phí"', 'kind = "tip"'), "kind"),
        (RULES.replace('"at-counter"', '"by-phone"'), "channels"),
        (RULES.replace("from_page = 1,", "from_page = 2,"), "tiers must start at page 1"),
        (RULES.replace('procedure = "2.000815"', 'procedure = "copy"'), "procedure"),
        (RULES.replace("cap_vnd = 200000", "cap_vnd = -1"), "cap_vnd"),
        (RULES + "\nsurprise = 1\n", "surprise"),
        ("[[fee]\n", "fee rules"),
    ],
)
def test_a_broken_rules_file_is_refused_with_the_reason(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=problem):
        load_rules(path)
    # The config (on the device) refuses it too: never a kiosk running on half a rules file.
    config = kiosk_config(tmp_path / "kiosk")
    config.write_text(
        config.read_text(encoding="utf-8").replace("[copies]", f'[copies]\nfee_rules = "{path}"'),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="fee_rules"):
        cfg.load(config)


def test_the_shipped_rules_cite_a_source_for_each_rule() -> None:
    rules = load_rules(DEFAULT_RULES)
    text = (Path(__file__).parents[1] / "docs" / "fees.md").read_text(encoding="utf-8")
    for rule in (*rules.fee, *rules.support):
        assert rule.source.startswith("https://") and rule.source in text, rule.id
        assert f"`{rule.id}`" in text, rule.id


def fee_screen(tmp_path: Path, fee: Fee, lang: str) -> str:
    path = kiosk_config(tmp_path / "kiosk")
    app = create_app(
        services=App(cfg.load(path), config_path=path), test_config={"WTF_CSRF_ENABLED": False}
    )
    with app.test_request_context("/a/fee"):
        from flask import session

        session["lang"] = lang
        return render_template(
            "ecopy/fee.html",
            form=ContactForm(),
            quote=fee,
            pages=fee.pages,
            originals=[{"n": 1, "pages": [1, 2, 3], "fee": fee.label_vi}],
            qr_image=None,
            paid=False,
            simulated=False,
        )


def test_the_fee_screen_says_phi_and_names_the_legal_basis(tmp_path: Path) -> None:
    day = dt.date(2026, 3, 1)
    payable = fee_screen(tmp_path, quote(3, AT_KIOSK, HANOI, on=day), "vi")
    assert "Phí chứng thực bản sao" in payable and "Lệ phí" not in payable
    assert re.search(r'id="fee-amount">5\.000 đ<', payable)
    assert "Căn cứ pháp lý: Thông tư 226/2016/TT-BTC, Điều 4" in payable
    waived = fee_screen(tmp_path / "w", quote(3, ONLINE, HANOI, on=day), "vi")
    assert re.search(r'id="fee-amount">Miễn phí<', waived) and "Lệ phí" not in waived
    assert "Nghị quyết 77/2025/NQ-HĐND TP Hà Nội" in waived
    assert "chi trả bởi: Ngân sách Thành phố Hà Nội" in waived
    english = fee_screen(tmp_path / "e", quote(3, ONLINE, HANOI, on=day), "en")
    assert "Legal basis: Thông tư 226/2016/TT-BTC" in english and "Paid for you by" in english


def slip_request(status: str) -> RequestState:
    now = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
    return cert_request(
        status,
        code="HN-TAYHO-01-260302-000001-K",
        created_at=now,
        due_at=now.replace(hour=10),
        pages=3,
    )


def test_the_slip_and_the_receipt_name_the_legal_basis_read_back_by_ocr() -> None:
    from edge.vision.ocr import shared_ocr
    from tests.escpos_readback import paper

    waived = quote(3, ONLINE, HANOI, on=dt.date(2026, 3, 2))
    slip = cert_slip([slip_request("queued")], site="", fee=waived, native_qr=False)
    receipt = cert_receipt(slip_request("approved"), site="", fee=waived)
    for job in (slip, receipt):
        text = shared_ocr().read(np.asarray(paper(job))).text
        assert "Phí: Miễn phí" in text and "Lệ phí" not in text, text
        assert "226/2016/TT-BTC" in text and "77/2025" in text, text
