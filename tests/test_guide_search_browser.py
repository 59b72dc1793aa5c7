"""The guide screen in headless Chromium against a simulated daemon (issue 19): what people
type finds the right entry, a where-to-go entry is shown as such, browse by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.app import App
from tests import web_ui_helpers as web
from tests.web_ui_helpers import headline, shoot

if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
if not hasattr(App, "start_services"):
    pytest.skip("the citizen services are not built by App yet (issue 7)", allow_module_level=True)

CATALOG = Path(__file__).resolve().parent.parent / "edge" / "catalog" / "procedures.json"
browser = pytest.fixture(scope="module")(web.browser_session)
kiosk = pytest.fixture(scope="module")(web.kiosk_session)
page = pytest.fixture(web.kiosk_page)


def test_where_to_go_entry_and_browse_by_field(page, kiosk) -> None:
    page.goto("/d/")
    fields = page.locator("#fields a")
    assert "Hộ tịch" in fields.all_inner_texts() and "Đất đai" in fields.all_inner_texts()

    # A procedure handled here: no where-to-go mark.
    page.fill("#q", "nhan con nuoi")
    page.click("#search")
    first = page.locator("#results a").first
    assert first.inner_text().startswith("Đăng ký việc nuôi con nuôi trong nước")
    assert "referral" not in (first.get_attribute("class") or "")

    # Handled elsewhere: marked in the list, and the page says where to go.
    page.fill("#q", "lam ho chieu")
    page.click("#search")
    first = page.locator("#results a").first
    assert first.inner_text().startswith("Cấp hộ chiếu phổ thông")
    assert "referral" in first.get_attribute("class")
    assert "Làm ở nơi khác" in first.inner_text()
    shoot(page, "63-guide-referral-results")
    first.click()
    page.wait_for_url("**/d/p/NK-002")
    assert page.inner_text("#elsewhere").startswith("Thủ tục này không làm tại đây.")
    assert "xuất nhập cảnh" in page.inner_text("#where")
    assert "dichvucong.gov.vn" in page.inner_text("#portal")
    shoot(page, "64-guide-referral")

    # Browse: the land field lists what is done here first, then where to go.
    page.goto("/d/")
    page.locator("#fields a", has_text="Đất đai").click()
    page.wait_for_url("**/d/f/**")
    assert headline(page) == "Đất đai"
    items = page.locator("#results a")
    shipped = json.loads(CATALOG.read_text(encoding="utf-8"))["procedures"]
    land = [p for p in shipped if p["field"] == "Đất đai"]  # all in force today
    assert items.count() == len(land) > 1
    kinds = ["referral" in (a.get_attribute("class") or "") for a in items.all()]
    assert kinds == sorted(kinds) and kinds[-1] and not kinds[0]  # here first, then elsewhere
    names = [a.inner_text() for a in items.all()]
    assert any(n.startswith("Hòa giải tranh chấp đất đai") for n in names)
